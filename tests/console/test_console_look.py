"""What a Nantong duty officer sees and hears, in headless Chromium: Chinese by
default that renders with a CJK font, one local time zone, labels instead of codes,
a chime, a notification and a flashing title for a new red order, and every
action reachable from the keyboard.

Screenshots of the map, an incident and the overview in both languages land in
tests/artifacts/console/ (zh-*.png, en-*.png).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

from citywatch.console.core import Site
from citywatch.sinks.dispatch import Keys

pytestmark = [pytest.mark.browser, pytest.mark.redis, pytest.mark.slow]

NewPage = Callable[..., Any]
SignIn = Callable[[Any, str, str, str], None]
Shot = Callable[[Any, str], None]
WriteOrder = Callable[..., str]

FIRST_SEEN_MS = 1_781_528_720_000  # 2026-06-15T13:05:20Z = 21:05:20 in Asia/Shanghai
EVIDENCE = {"fixes_inside": 3, "zone_kind": "airport_site", "dwell_s": 125, "speed_kmh": 42.5}

# Width of a label as rendered against the same number of missing-glyph boxes (an
# unassigned code point, which no font has): equal when the label's glyphs are missing.
GLYPH_WIDTHS = """(sel) => {
  const e = document.querySelector(sel);
  const ctx = document.createElement("canvas").getContext("2d");
  ctx.font = getComputedStyle(e).font;
  const text = e.textContent.trim();
  return [text, ctx.measureText(text).width, ctx.measureText("\\u0378".repeat(text.length)).width];
}"""

SPIES = """
window.__played = []; window.__notified = [];
const play = HTMLMediaElement.prototype.play;
HTMLMediaElement.prototype.play = function () {
  window.__played.push(this.src); return play.call(this); };
if (window.Notification) window.Notification = new Proxy(window.Notification, {
  construct(target, args) {
    window.__notified.push(args[0]); return Reflect.construct(target, args); } });
"""


def platform_fonts(page: Any, selector: str) -> list[dict[str, Any]]:
    """The fonts Chromium used for the glyphs of an element (DevTools protocol)."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument")["root"]["nodeId"]
    node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
    fonts: list[dict[str, Any]] = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    return fonts


def assert_cjk_rendered(page: Any, selector: str) -> None:
    text, width, missing = page.evaluate(GLYPH_WIDTHS, selector)
    assert any("\u4e00" <= ch <= "\u9fff" for ch in text), text
    assert abs(width - missing) > 1, f"{text!r} renders as missing glyphs ({width} px)"
    families = [f["familyName"] for f in platform_fonts(page, selector)]
    assert any("CJK" in f for f in families), (text, families)


def test_chinese_by_default_with_a_cjk_font_local_time_and_labels(
    new_page: NewPage,
    console_url: str,
    redis_url: str,
    site: Site,
    write_order: WriteOrder,
    browser_sign_in: SignIn,
    screenshot: Shot,
) -> None:
    client = redis.Redis.from_url(redis_url)
    wo_id = write_order(client, Keys(site.prefix), ts_ms=FIRST_SEEN_MS, evidence=EVIDENCE)
    late = write_order(
        client, Keys(site.prefix), severity="yellow", kind="sensor.threshold", lon=120.9, lat=32.0
    )
    client.hset(Keys(site.prefix).wo(late), "sign_due_ms", "1781528000000")  # long overdue
    page = new_page(locale="zh-CN")  # the browser asks for Chinese: no click needed
    browser_sign_in(page, console_url, "lead", "lead-pw")
    page.wait_for_selector("html[lang=zh-CN]")
    row = page.locator(f"li.order[data-wo='{wo_id}']")
    row.wait_for()
    assert "闯入管控区域" in row.inner_text() and "红色" in row.inner_text()  # kind, severity
    assert row.locator(".kind").get_attribute("title") == "geofence.enter"  # code as tooltip
    assert "机场建设指挥部" in row.inner_text()
    for selector in ("nav a[href='/']", "#signout", "li.order .kind"):
        assert_cjk_rendered(page, selector)
    # The offline basemap: the district names are drawn, in Chinese too.
    labels = page.locator(".cw-place-label span")
    assert labels.count() == 7
    assert "崇川区" in labels.all_inner_texts()  # the Chinese name alone
    assert_cjk_rendered(page, ".cw-place-label span")
    assert page.locator(".leaflet-basemap-pane path").count() >= 3  # sea, land, river
    screenshot(page, "zh-map")
    row.click()
    page.wait_for_selector("#panel-title")
    assert page.inner_text("#wo-first_ts").startswith("2026-06-15 21:05:20")  # Asia/Shanghai
    assert "前" in page.inner_text("#wo-first_ts")  # and its age
    assert "内签收" in page.inner_text("#panel .due")  # countdown to sign-off
    evidence = page.inner_text(".evidence")
    for shown in ("区域内定位点数", "3", "2 分钟", "42.5 km/h", "机场场址"):
        assert shown in evidence, evidence
    assert_cjk_rendered(page, "#panel h3")
    screenshot(page, "zh-incident")
    page.click("a[href='/overview']")
    page.wait_for_function("() => document.getElementById('ov-total').textContent === '2'")
    assert_cjk_rendered(page, "#ov-kind .bar-label")
    overdue = page.locator("#ov-overdue-list .due.overdue")  # red, counting up
    assert "签收已超时" in overdue.inner_text() and "天" in overdue.inner_text()
    screenshot(page, "zh-overview")
    page.click("#lang-switch")
    page.wait_for_selector("html[lang=en]")
    assert "Entered a zone" in page.inner_text("#ov-kind")
    screenshot(page, "en-overview")
    page.click("a[href='/']")
    row.wait_for()
    assert "Entered a zone" in row.inner_text() and "red" in row.inner_text()
    row.click()
    page.wait_for_selector("#panel-title")
    assert "positions inside" in page.inner_text(".evidence")
    assert "sign off within" in page.inner_text("#panel .due")
    screenshot(page, "en-incident")


def tab_to(page: Any, selector: str, limit: int = 80) -> None:
    """Presses Tab until the focused element matches ``selector``."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"{selector} is not reachable with the Tab key")


def test_a_new_red_order_calls_for_attention_and_is_handled_by_keyboard(
    new_page: NewPage,
    console_url: str,
    redis_url: str,
    site: Site,
    write_order: WriteOrder,
    browser_sign_in: SignIn,
) -> None:
    client, keys = redis.Redis.from_url(redis_url), Keys(site.prefix)
    waiting = write_order(client, keys, subject="truck-0", lon=121.0, lat=32.1)
    page = new_page(init_script=SPIES)
    page.context.grant_permissions(["notifications"], origin=console_url)
    browser_sign_in(page, console_url, "air", "air-pw")
    page.wait_for_selector(f"li.order.attention[data-wo='{waiting}']")  # highlighted ...
    page.wait_for_function("() => document.title.startsWith('(1)')")  # ... and counted
    assert page.evaluate("window.__played") == []  # already there: no chime on load

    new = write_order(client, keys, subject="truck-1", ts_ms=FIRST_SEEN_MS + 1)
    page.wait_for_selector(f"li.order.attention[data-wo='{new}']")
    page.wait_for_function("() => window.__notified.length === 1")
    assert page.evaluate("window.__notified") == ["New red work order"]
    assert [src.rsplit("/", 1)[-1] for src in page.evaluate("window.__played")] == ["chime.wav"]
    page.wait_for_function("() => document.title.startsWith('(2)')")

    tab_to(page, f"li.order[data-wo='{new}']")
    page.keyboard.press("Enter")
    page.wait_for_selector(f"#panel-title:text-is('{new}')")
    tab_to(page, "button.act-sign")
    page.keyboard.press("Enter")
    page.wait_for_selector("#wo-state[data-value=signed]")
    page.wait_for_selector(f"li.order[data-wo='{new}']:not(.attention)")
    page.wait_for_function("() => document.title.startsWith('(1)')")
    assert client.hget(keys.wo(new), "state") == b"signed"

    page.click("#mute")
    assert page.get_attribute("#mute", "aria-pressed") == "true"
    third = write_order(client, keys, subject="truck-2", severity="orange", ts_ms=FIRST_SEEN_MS + 2)
    page.wait_for_selector(f"li.order.attention[data-wo='{third}']")
    page.wait_for_function("() => window.__notified.length === 2")
    assert len(page.evaluate("window.__played")) == 1  # muted: notified, no chime


def test_a_live_update_keeps_what_the_officer_is_typing(
    new_page: NewPage,
    console_url: str,
    redis_url: str,
    site: Site,
    write_order: WriteOrder,
    browser_sign_in: SignIn,
) -> None:
    """The open order re-renders when it changes elsewhere; a half-typed note survives."""
    from citywatch.sinks.lifecycle import WorkOrders

    client, keys = redis.Redis.from_url(redis_url), Keys(site.prefix)
    wo_id = write_order(client, keys)
    page = new_page()
    browser_sign_in(page, console_url, "lead", "lead-pw")
    page.locator(f"li.order[data-wo='{wo_id}']").click()
    page.wait_for_selector("#wo-state[data-value=dispatched]")
    note = page.locator("textarea[data-action=resolve]")
    note.fill("escorted off the site by the patrol")
    note.focus()
    WorkOrders(client, keys).sign(wo_id, "another-officer")  # a change from elsewhere
    page.wait_for_selector("#wo-state[data-value=signed]")  # the panel was rebuilt
    assert note.input_value() == "escorted off the site by the patrol"
    assert page.evaluate("document.activeElement.dataset.action") == "resolve"
