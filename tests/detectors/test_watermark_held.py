"""Suspect events without a wall clock are held for their source's verdict, not lost."""

from __future__ import annotations

from citywatch.detectors.state import Snapshot, decode, encode
from citywatch.detectors.watermark import FUTURE, HELD, ON_TIME, Watermarker

T0 = 1_767_225_600_000
HOUR = 3_600_000


def _feed(wm: Watermarker, times: list[int], source: str = "") -> list[tuple[int, str]]:
    """Observe ``times`` with themselves as items; every verdict in decision order."""
    out: list[tuple[int, str]] = []
    for t in times:
        verdict = wm.observe(t, source, None, t)
        out += [(int(item), v) for item, v, _ in wm.take_released()]  # type: ignore[call-overload]
        if verdict != HELD:
            out.append((t, verdict))
    return out


def test_a_silence_longer_than_max_future_loses_no_event() -> None:
    # A sparse partition (one fix a minute) falls silent for 20 minutes and resumes.
    wm = Watermarker(max_out_of_order_ms=0, max_future_ms=300_000, by="partition")
    before = [T0 + i * 60_000 for i in range(30)]
    after = [T0 + 50 * 60_000 + i * 60_000 for i in range(20)]
    verdicts = _feed(wm, before + after)
    assert [t for t, _ in verdicts] == before + after  # in arrival order
    assert {v for _, v in verdicts} == {ON_TIME}
    assert wm.take_skewed() == []  # the whole partition moved on: no clock to blame


def test_a_lone_outlier_is_refused_once_its_source_goes_on() -> None:
    wm = Watermarker(max_out_of_order_ms=0, max_future_ms=300_000)
    _feed(wm, [T0 + i * 1_000 for i in range(20)], "gw-1")
    assert wm.observe(T0 + HOUR, "gw-1", None, "bad") == HELD
    assert list(wm.take_released()) == []
    assert wm.observe(T0 + 21_000, "gw-1", None, "good") == ON_TIME
    assert list(wm.take_released()) == [("bad", FUTURE, T0 + 21_000)]
    assert [s for s, _, _ in wm.take_skewed()] == ["gw-1"]


def test_a_stepped_gateway_is_accepted_and_reported_when_the_others_stay() -> None:
    wm = Watermarker(max_out_of_order_ms=0, max_future_ms=300_000)
    for i in range(20):
        wm.observe(T0 + i * 1_000, "gw-a")
        wm.observe(T0 + i * 1_000, "gw-b")
    verdicts = []
    for i in range(20, 40):
        verdicts += _feed(wm, [T0 + HOUR + i * 1_000], "gw-a")
        wm.observe(T0 + i * 1_000, "gw-b")
    assert len(verdicts) == 20 and {v for _, v in verdicts} == {ON_TIME}
    assert [s for s, _, _ in wm.take_skewed()] == ["gw-a"]  # reported, once


def test_what_is_held_at_the_end_is_refused() -> None:
    wm = Watermarker(max_out_of_order_ms=0, max_future_ms=300_000)
    _feed(wm, [T0 + i * 1_000 for i in range(20)], "gw-1")
    assert wm.observe(T0 + HOUR, "gw-1", None, "last") == HELD
    assert wm.holding()
    assert wm.drain() == [("last", FUTURE, T0 + 19_000)]
    assert not wm.holding()


def test_with_a_wall_clock_nothing_is_held() -> None:
    wm = Watermarker(max_out_of_order_ms=0, max_future_ms=300_000)
    assert wm.observe(T0 + 301_000, "gw", T0, "x") == FUTURE


def test_held_events_survive_a_snapshot_and_a_version_1_state_restores() -> None:
    wm = Watermarker(max_out_of_order_ms=0, max_future_ms=300_000)
    _feed(wm, [T0 + i * 1_000 for i in range(20)], "gw-1")
    wm.observe(T0 + HOUR, "gw-1", None, 7)
    again = Watermarker(max_out_of_order_ms=0, max_future_ms=300_000)
    again.restore(decode(encode(wm.state())))
    assert again.drain() == [(7, FUTURE, T0 + 19_000)]

    old = Watermarker(max_out_of_order_ms=0, max_future_ms=300_000)
    _feed(old, [T0 + i * 1_000 for i in range(5)], "gw-1")
    snap = old.state()
    for clock in snap.data["clocks"].values():
        del clock.held  # what version 1 wrote
    restored = Watermarker(max_out_of_order_ms=0, max_future_ms=300_000)
    restored.restore(decode(encode(Snapshot(snap.kind, 1, snap.data))))
    assert not restored.holding()
    assert restored.observe(T0 + 6_000, "gw-1") == ON_TIME


def test_a_second_stepped_gateway_is_reported_although_the_first_is_further_ahead() -> None:
    # gw-a steps an hour ahead (reported), then gw-b ten minutes ahead: gw-b is behind
    # gw-a's wrong time but ahead of every sane clock, so it is reported too.
    wm = Watermarker(max_out_of_order_ms=0, max_future_ms=300_000)
    for i in range(20):
        for gw in ("gw-a", "gw-b", "gw-c"):
            wm.observe(T0 + i * 1_000, gw)
    for i in range(20, 40):
        _feed(wm, [T0 + HOUR + i * 1_000], "gw-a")
        wm.observe(T0 + i * 1_000, "gw-c")
    for i in range(40, 60):
        _feed(wm, [T0 + 600_000 + i * 1_000], "gw-b")
        wm.observe(T0 + i * 1_000, "gw-c")
    assert [s for s, _, _ in wm.take_skewed()] == ["gw-a", "gw-b"]
