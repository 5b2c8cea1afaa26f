"""A quiet source's lane runs on behind the wall clock by the transit its events
usually take (a quarter of its recent ones), not the newest event's alone."""

from __future__ import annotations

from citywatch.detectors.state import Snapshot, decode, encode
from citywatch.detectors.watermark import TRANSITS, Watermarker

SLACK = 500
CAUGHT = 1_000_000  # the wall time the partition was read to its end


def _fed(transits: list[tuple[str, int]], *, every_ms: int = 1_000) -> Watermarker:
    """A gateway watermark fed one event per ``every_ms`` of stamp, each arriving its
    transit after its stamp (``(source, transit)``), the last stamped 10 s before CAUGHT."""
    wm = Watermarker(30_000, by="gateway")
    start = CAUGHT - 10_000 - every_ms * (len(transits) - 1)
    for i, (source, transit) in enumerate(transits):
        ts = start + i * every_ms
        wm.observe(ts, source, clock_ms=ts + transit)
    return wm


def test_one_event_held_up_on_the_way_does_not_hold_its_source_back() -> None:
    # 15 events arrive 100-250 ms after their stamps, the newest 2.9 s after it
    wm = _fed([("gw-1", 100 + 10 * i) for i in range(15)] + [("gw-1", 2_900)])
    lane = wm.quiet_lane_ms("gw-1", SLACK, CAUGHT)
    assert CAUGHT - SLACK - 250 <= lane <= CAUGHT - SLACK - 100  # was CAUGHT - SLACK - 2,900


def test_a_source_whose_clock_runs_ahead_is_judged_on_its_own_clock() -> None:
    # every event arrives 5 s before its stamp: its clock runs 5 s ahead of the wall
    wm = _fed([("gw-1", -5_000 + 50 * (i % 3)) for i in range(TRANSITS)])
    assert wm.quiet_lane_ms("gw-1", SLACK, CAUGHT) == CAUGHT - SLACK + 5_000  # was CAUGHT - SLACK


def test_one_device_with_a_wrong_clock_does_not_move_its_gateway() -> None:
    # one event in 8 is stamped 100 s ahead (one device of the gateway); the rest 200 ms late
    wm = _fed([("gw-1", -100_000 if i % 8 == 7 else 200) for i in range(TRANSITS)])
    assert wm.quiet_lane_ms("gw-1", SLACK, CAUGHT) == CAUGHT - SLACK - 200


def test_a_source_that_came_through_a_backlog_stays_behind() -> None:
    # every recent event was read 20 s after its stamp (the flow was behind): no run-on past it
    wm = _fed([("gw-1", 20_000 + i) for i in range(TRANSITS)])
    assert wm.quiet_lane_ms("gw-1", SLACK, CAUGHT) <= CAUGHT - SLACK - 20_000


def test_too_few_events_fall_back_to_the_newest_transit_never_ahead() -> None:
    wm = _fed([("gw-1", 300), ("gw-1", -4_000)])  # two events: the newest one's, not below 0
    assert wm.quiet_lane_ms("gw-1", SLACK, CAUGHT) == CAUGHT - SLACK


def test_a_version_3_state_restores_with_no_transits() -> None:
    """Version 3 clocks had no transits: restored, the quiet lane falls back to the
    newest event's transit until the source has sent enough again."""
    wm = _fed([("gw-1", 100)] * 3 + [("gw-1", 2_000)])
    snap = decode(encode(wm.state()))  # a copy
    for clock in snap.data["clocks"].values():
        del clock.transits  # as a version 3 clock was written
    old = decode(encode(Snapshot(snap.kind, 3, snap.data)))
    back = Watermarker(30_000, by="gateway")
    back.restore(old)
    assert list(back.clocks["gw-1"].transits) == []
    assert back.quiet_lane_ms("gw-1", SLACK, CAUGHT) == CAUGHT - SLACK - 2_000
    assert wm.quiet_lane_ms("gw-1", SLACK, CAUGHT) == CAUGHT - SLACK - 100


def test_the_quiet_transit_follows_new_events_after_a_run_on() -> None:
    """The transit is kept between run-ons while the source sends nothing (each tick runs
    every source's lane on) and follows the source's next events."""
    wm = _fed([("gw-1", 200)] * TRANSITS)
    assert wm.quiet_transit_ms("gw-1") == 200
    assert wm.quiet_lane_ms("gw-1", SLACK, CAUGHT) == CAUGHT - SLACK - 200
    for i in range(TRANSITS):  # the link gets faster: every event 20 ms after its stamp
        ts = CAUGHT - 5_000 + i * 100
        wm.observe(ts, "gw-1", clock_ms=ts + 20)
    assert wm.quiet_transit_ms("gw-1") == 20
    assert wm.quiet_lane_ms("gw-1", SLACK, CAUGHT + 1_000) == CAUGHT + 1_000 - SLACK - 20
