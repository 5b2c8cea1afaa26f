"""A work order merged into another (its incident joined an older one) in headless
Chromium: the panel says where it went, as text, and opens the surviving order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

from citywatch.flows.config import Config
from citywatch.sinks.dispatch import Keys
from citywatch.sinks.lifecycle import WorkOrders

pytestmark = [pytest.mark.browser, pytest.mark.redis, pytest.mark.slow]


def test_a_merged_order_names_and_opens_the_order_it_went_into(
    new_page: Callable[..., Any],
    console_url: str,
    redis_url: str,
    config: Config,
    write_order: Callable[..., str],
    browser_sign_in: Callable[[Any, str, str, str], None],
) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    keys = Keys(config.redis.prefix)
    survivor = write_order(client, keys, subject="truck-1", ts_ms=1_781_528_720_000)
    absorbed = write_order(client, keys, subject="truck-2", ts_ms=1_781_528_700_000)
    orders = WorkOrders(client, keys)
    orders.sign(absorbed, "air")
    orders.merge(absorbed, survivor, incident="in-" + absorbed[3:])
    client.close()

    page = new_page()
    browser_sign_in(page, console_url, "air", "air-pw")
    page.click(f"li.order[data-wo='{absorbed}']")
    page.wait_for_selector(f"#panel-title:text-is('{absorbed}')")
    assert page.get_attribute("#wo-state", "data-value") == "merged"
    assert page.inner_text("#wo-state") == "merged"
    note = page.inner_text("#wo-merged-into")
    assert note == f"Merged into work order {survivor}"
    timeline = page.inner_text("#timeline")
    assert "merged into another order" in timeline and survivor in timeline
    page.click("#wo-merged-into button")
    page.wait_for_selector(f"#panel-title:text-is('{survivor}')")
    assert page.get_attribute("#wo-state", "data-value") == "signed"  # the sign-off carried
    timeline = page.inner_text("#timeline")
    assert "absorbed another order" in timeline and absorbed in timeline
    assert page.locator("#wo-merged-into").count() == 0
