"""Hostile content in headless Chromium: ids, names and notes are rendered as text.

Every string the console shows comes from events, alerts, work orders, users or
the map layers, so each of them carries markup here: an entity id, a zone, an
evidence field, a feedback note, a return reason, a user's display name, zone
and jurisdiction names. The page is watched for the payload's elements ever
entering the DOM (a MutationObserver installed before any script of the page),
for script running (a global flag the payload sets), for dialogs, and for any
Content-Security-Policy violation (the console must work without one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
import redis

from citywatch.console.auth import User, UserStore
from citywatch.console.core import Site
from citywatch.console.server import ConsoleThread, free_port
from citywatch.console.settings import ConsoleSettings
from citywatch.sinks.dispatch import Keys
from citywatch.sinks.lifecycle import WorkOrders

pytestmark = [pytest.mark.browser, pytest.mark.redis, pytest.mark.slow]
WriteOrder = Callable[..., str]


def payload(tag: str) -> str:
    return (
        f"<img src=x class=cw-injected onerror=\"window.__xss='{tag}';alert(1)\">"
        f"<script>window.__xss='{tag}'</script><b class=cw-injected>{tag}</b>"
    )


WATCH = """
window.__xss = null; window.__injected = []; window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) =>
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
new MutationObserver((records) => { for (const r of records) for (const n of r.addedNodes) {
  if (n.nodeType !== 1) continue;
  for (const e of [n, ...n.querySelectorAll("*")])
    if (e.classList.contains("cw-injected") || e.tagName === "SCRIPT" && !e.src)
      window.__injected.push(e.outerHTML.slice(0, 80));
} }).observe(document, { childList: true, subtree: true });
"""


def hostile_site(site: Site) -> Site:
    zones = orjson.loads(site.zones_geojson)
    for f in zones["features"]:
        f["properties"]["name"] = payload("zone-name")
    juris = orjson.loads(site.jurisdictions_geojson)
    for f in juris["features"]:
        f["properties"]["name"] = payload("jurisdiction-name")
    return Site(
        prefix=site.prefix,
        zones_geojson=orjson.dumps(zones),
        jurisdictions_geojson=orjson.dumps(juris),
        departments=site.departments,
    )


def write_hostile_orders(client: redis.Redis, keys: Keys, write_order: WriteOrder) -> list[str]:
    ids = [
        write_order(
            client,
            keys,
            severity=severity,
            subject=payload(f"entity-{i}"),
            zone=payload(f"zone-{i}"),
            lon=lon,
            lat=lat,
            ts_ms=1_781_500_000_000 + i,
            evidence={payload("evidence-key"): payload("evidence-value"), "n": [payload("list")]},
        )
        for i, (lon, lat, severity) in enumerate([(121.25, 31.95, "red"), (120.6, 32.35, "orange")])
    ]
    orders = WorkOrders(client, keys)
    orders.sign(ids[0], "lead")
    orders.resolve(ids[0], "lead", payload("feedback"))
    orders.return_(ids[1], "lead", payload("return-reason"))
    return ids


@pytest.fixture()
def hostile_console(
    redis_url: str, site: Site, write_order: WriteOrder
) -> Iterator[tuple[str, list[str]]]:
    client = redis.Redis.from_url(redis_url)
    users = UserStore(client, site.prefix)
    users.add(User(name="xss", role="leader", display=payload("display-name")), "xss-pw")
    ids = write_hostile_orders(client, Keys(site.prefix), write_order)
    settings = ConsoleSettings(port=free_port(), refresh_s=0.5)
    server = ConsoleThread(hostile_site(site), redis_url, settings).start()
    try:
        yield server.url, ids
    finally:
        server.stop()
        client.close()


@pytest.fixture()
def watched_page(new_page: Callable[..., Any]) -> tuple[Any, list[str]]:
    dialogs: list[str] = []
    page = new_page(init_script=WATCH)
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    return page, dialogs


def hover_everything(page: Any) -> None:
    """Opens every Leaflet tooltip: a mouse over each interactive shape and marker."""
    page.evaluate(
        """() => { for (const e of document.querySelectorAll(".leaflet-interactive")) {
            const r = e.getBoundingClientRect();
            const at = { bubbles: true, clientX: r.x + r.width / 2, clientY: r.y + r.height / 2 };
            e.dispatchEvent(new MouseEvent("mouseover", at));
            e.dispatchEvent(new MouseEvent("mousemove", at));
        } }"""
    )


def test_hostile_ids_names_and_notes_render_as_text(
    watched_page: tuple[Any, list[str]], hostile_console: tuple[str, list[str]]
) -> None:
    page, dialogs = watched_page
    url, ids = hostile_console
    page.goto(url + "/login")
    page.fill("#username", "xss")
    page.fill("#password", "xss-pw")
    page.click("#login-submit")
    page.wait_for_url(url + "/")
    page.wait_for_selector("li.order")
    assert page.locator("li.order").count() == 2
    hover_everything(page)
    tooltips = page.locator(".leaflet-tooltip").all_inner_texts()
    assert any("entity-0" in t and "<img src=x" in t for t in tooltips), tooltips
    for wo_id in ids:
        page.click(f"li.order[data-wo='{wo_id}']")
        page.wait_for_selector(f"#panel-title:text-is('{wo_id}')")
        page.wait_for_selector("#timeline li")
    panel = page.inner_text("#panel")
    assert "<b class=cw-injected>return-reason</b>" in panel
    assert "<b class=cw-injected>evidence-key</b>" in panel
    assert "display-name" in page.inner_text("#who")
    page.click("a[href='/overview']")
    page.wait_for_selector("#ov-overdue-list")
    page.wait_for_function("() => document.getElementById('ov-total').textContent === '2'")
    state = page.evaluate("() => [window.__xss, window.__injected, window.__csp]")
    assert state == [None, [], []], state
    assert dialogs == []
