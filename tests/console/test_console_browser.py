"""The console in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

Timeline of the live test (replay paced at 200x real time, in a thread):

    t=0            page open, signed in as the airport_construction officer
    t~1.5 s        13:05 geofence.enter (muck truck, airport site) dispatched
                   -> its marker and list row appear through server-sent events
    then           open it: alerts, evidence, timeline; sign off; resolve with
                   feedback; Redis holds state=resolved with the officer's name

Screenshots land in tests/artifacts/console/ (gitignored).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from citywatch.console.auth import UserStore
from citywatch.flows.config import Config
from citywatch.flows.runner import run_recordings
from citywatch.sinks.dispatch import Keys

pytestmark = [pytest.mark.browser, pytest.mark.redis, pytest.mark.slow]
Shot = Callable[[Any, str], None]
SignIn = Callable[[Any, str, str, str], None]


# Records every Content-Security-Policy violation: the console must work without any.
CSP_WATCH = """window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) =>
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));"""


@pytest.fixture()
def browser_page(new_page: Callable[..., Any]) -> Iterator[Any]:
    page = new_page(init_script=CSP_WATCH)
    refused: list[str] = []  # Chromium reports each violation on the console, on every page
    page.on("console", lambda m: refused.append(m.text) if "Security Policy" in m.text else None)
    yield page
    assert page.evaluate("() => window.__csp") == [] and refused == []


def test_incident_appears_live_and_is_signed_off_and_resolved(
    browser_page: Any,
    console_url: str,
    redis_url: str,
    config: Config,
    small_recording: Path,
    screenshot: Shot,
    browser_sign_in: SignIn,
) -> None:
    page = browser_page
    browser_sign_in(page, console_url, "air", "air-pw")
    assert page.locator("li.order").count() == 0
    screenshot(page, "01-signed-in-empty")

    errors: list[BaseException] = []

    def replay() -> None:
        try:
            run_recordings([small_recording], config, redis_url, speed=200.0, progress=False)
        except BaseException as exc:  # reported by the test below
            errors.append(exc)

    feeder = threading.Thread(target=replay, daemon=True)
    feeder.start()
    row = page.locator("li.order").first
    row.wait_for(timeout=30_000)  # the first airport order, pushed over server-sent events
    assert page.locator("#map path.leaflet-interactive, .cw-cluster").count() > 0
    screenshot(page, "02-incident-appeared")
    wo_id = row.get_attribute("data-wo")
    assert wo_id
    # ``.first`` is looked up again on every use: a newer order arriving meanwhile goes on
    # top, so the row is clicked by its id, not by its place.
    page.locator(f'li.order[data-wo="{wo_id}"]').click()
    page.wait_for_selector("#panel-title")
    assert page.inner_text("#panel-title") == wo_id
    assert page.locator(".alerts li").count() >= 1
    assert page.locator(".evidence tr").count() >= 1
    assert page.locator("#timeline li").count() >= 1
    screenshot(page, "03-incident-panel")

    page.click("button.act-sign")
    page.wait_for_selector("#wo-state[data-value=signed]")
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    key = Keys(config.redis.prefix).wo(wo_id)
    assert client.hget(key, "state") == "signed", page.inner_text("#action-msg")
    page.click("button.act-handle")
    page.wait_for_selector("#wo-state[data-value=handling]")
    page.fill("textarea[data-action=resolve]", "truck escorted off the airport site")
    page.click("button.act-resolve")
    page.wait_for_selector("#wo-state[data-value=resolved]")
    screenshot(page, "04-resolved")
    order = client.hgetall(key)
    assert order["state"] == "resolved", order
    assert order.get("feedback") == "truck escorted off the airport site"
    audit = client.xrange(Keys(config.redis.prefix).audit(wo_id))
    assert any(f.get("by") == "air" for _, f in audit)
    feeder.join(60)
    assert not errors
    page.click("a[href='/overview']")
    page.wait_for_selector("#ov-times table")
    assert page.inner_text("#ov-open") != "–"
    screenshot(page, "06-overview")


def test_officer_of_another_department_is_refused_then_changes_password(
    browser_page: Any,
    console_url: str,
    redis_url: str,
    config: Config,
    small_recording: Path,
    screenshot: Shot,
    browser_sign_in: SignIn,
) -> None:
    run_recordings([small_recording], config, redis_url, progress=False)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    keys = Keys(config.redis.prefix)
    airport = [
        k.rsplit("{", 1)[1].rstrip("}")
        for k in client.scan_iter(keys.wo("")[:-1] + "*}")
        if client.hget(k, "department") == "airport_construction"
    ]
    assert airport
    page = browser_page
    browser_sign_in(page, console_url, "fish", "fish-pw")
    page.wait_for_selector("li.order")
    listed = page.locator("li.order").evaluate_all("els => els.map(e => e.dataset.wo)")
    assert listed and not set(listed) & set(airport)
    # Crafted requests from the signed-in page: reading and acting on an airport order.
    got = page.evaluate(
        """async (id) => {
            const read = await fetch(`/api/workorders/${id}`);
            const act = await fetch(`/api/workorders/${id}/actions/sign`, {method: "POST",
                headers: {"Content-Type": "application/json", "X-CSRF-Token": CW.state.csrf},
                body: "{}"});
            return [read.status, act.status, (await act.json()).error];
        }""",
        airport[0],
    )
    assert got[0] == 404 and got[1] == 404 and "not found in your centre" in got[2]
    assert client.hget(keys.wo(airport[0]), "state") == "dispatched"
    # The language switch: the same page in Chinese.
    page.click("#lang-switch")
    page.wait_for_selector("html[lang=zh-CN]")
    assert page.inner_text("#signout") == "退出"
    assert "农业农村" in page.inner_text("#who")  # the department, relabelled
    screenshot(page, "05-other-department-refused-zh")
    # The same officer changes their password; this session goes on.
    page.click("a[href='/password']")
    page.fill("#current", "fish-pw")
    page.fill("#new", "a-new-password")
    page.fill("#again", "a-new-password")
    page.click("#password-submit")
    page.wait_for_selector("#password-msg.ok")
    assert UserStore(client, config.redis.prefix).authenticate("fish", "a-new-password")
    page.click("a[href='/']")
    page.wait_for_selector("#live.on")
