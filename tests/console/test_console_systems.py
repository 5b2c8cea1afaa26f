"""Leaders see the department systems' webhook subscriptions on the overview, with
one that has failed for long marked as failing (Chromium, Playwright)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from citywatch.console.api import api_routes
from citywatch.console.auth import UserStore
from citywatch.console.core import Site
from citywatch.console.server import ConsoleThread, free_port
from citywatch.console.settings import ConsoleSettings
from citywatch.flows.config import Config
from citywatch.flows.console_site import api_site_for
from citywatch.sinks.integrations.settings import WebhookSpec, new_secret
from citywatch.sinks.integrations.webhooks import HookKeys, SubscriptionStore

pytestmark = [pytest.mark.browser, pytest.mark.redis]

CSP_WATCH = """window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(e.violatedDirective));
window.__xss = 0;"""
HOSTILE_ERROR = "ConnectError <img src=x onerror=window.__xss++>"


@pytest.fixture()
def api_console_url(redis_url: str, site: Site, users: UserStore, config: Config) -> Iterator[str]:
    """The console with the token API beside it, as `citywatch console` serves it."""
    api_site = api_site_for(config)
    server = ConsoleThread(
        site,
        redis_url,
        ConsoleSettings(port=free_port(), refresh_s=0.5),
        extra_routes=lambda _con: api_routes(api_site, redis_url),
    )
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def _subscriptions(redis_url: str, config: Config) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    keys = HookKeys(config.redis.prefix)
    store = SubscriptionStore(client, keys)
    for sub in ("water-sys", "transport-sys"):
        store.add(WebhookSpec(id=sub, url=f"https://{sub}.example/hook", secret=new_secret()))
    hour_ago = int(time.time() * 1000) - 3_600_000
    client.hset(
        keys.status("water-sys"),
        mapping={"failing_since_ms": hour_ago, "last_error": HOSTILE_ERROR, "failures": 40},
    )


def test_a_failing_subscription_shows_as_failing_to_leaders(
    new_page: Callable[..., Any],
    api_console_url: str,
    redis_url: str,
    config: Config,
    browser_sign_in: Callable[[Any, str, str, str], None],
    screenshot: Callable[[Any, str], None],
) -> None:
    _subscriptions(redis_url, config)
    page = new_page(init_script=CSP_WATCH)
    browser_sign_in(page, api_console_url, "lead", "lead-pw")
    page.goto(api_console_url + "/overview")
    page.wait_for_selector('#ov-systems [data-sys="water-sys"]')
    failing = page.locator('#ov-systems [data-sys="water-sys"]')
    assert failing.get_attribute("class") == "sys-failing"
    assert failing.text_content() == "FAILING"
    ok = page.locator('#ov-systems [data-sys="transport-sys"]')
    assert ok.get_attribute("class") == "sys-ok" and ok.text_content() == "OK"
    assert page.locator("#ov-systems tr.failing").count() == 1
    row = page.locator("#ov-systems tr.failing").text_content() or ""
    assert "water-sys" in row and HOSTILE_ERROR in row  # shown as text, not as HTML
    assert page.locator("#ov-systems img").count() == 0
    screenshot(page, "overview-systems")
    assert page.evaluate("() => [window.__csp, window.__xss]") == [[], 0]


def test_officers_do_not_see_the_department_systems(
    new_page: Callable[..., Any],
    api_console_url: str,
    redis_url: str,
    config: Config,
    browser_sign_in: Callable[[Any, str, str, str], None],
) -> None:
    _subscriptions(redis_url, config)
    page = new_page(init_script=CSP_WATCH)
    browser_sign_in(page, api_console_url, "air", "air-pw")
    page.goto(api_console_url + "/overview")
    page.wait_for_function("() => document.getElementById('ov-open').textContent !== '–'")
    assert page.locator("#ov-systems-card").is_hidden()
    assert page.locator("#ov-systems [data-sys]").count() == 0
