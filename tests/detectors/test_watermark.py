"""Event-time watermarks per source, with the future-timestamp guard."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from citywatch.detectors.watermark import (
    FUTURE,
    LATE,
    NO_WATERMARK,
    ON_TIME,
    Watermarker,
    clock_skew_alert,
)

HOUR = 3_600_000


def test_no_watermark_before_the_first_event() -> None:
    wm = Watermarker(max_out_of_order_ms=10)
    assert wm.watermark_ms == NO_WATERMARK
    assert wm.observe(-(10**12)) == ON_TIME  # nothing is late before anything was seen


def test_late_events_are_flagged_by_arrival_order() -> None:
    # arrival   1    2    3    4    5    6
    # ts       100   95  120  105  112  110
    # max      100  100  120  120  120  120
    # wm        90   90  110  110  110  110   (max - 10)
    # late       .    .    .    X    .    .   105 < 110; 110 is exactly at the watermark
    wm = Watermarker(max_out_of_order_ms=10, by="partition")
    assert [wm.observe(t) for t in (100, 95, 120, 105, 112, 110)] == [
        ON_TIME,
        ON_TIME,
        ON_TIME,
        LATE,
        ON_TIME,
        ON_TIME,
    ]
    assert wm.watermark_ms == 110
    assert wm.max_ts_ms == 120


def test_a_late_event_does_not_move_the_watermark_back() -> None:
    wm = Watermarker(max_out_of_order_ms=0)
    wm.observe(1_000)
    assert wm.observe(999) == LATE
    assert wm.watermark_ms == 1_000


def test_zero_out_of_orderness_accepts_equal_timestamps() -> None:
    wm = Watermarker(max_out_of_order_ms=0)
    assert [wm.observe(t) for t in (5, 5, 6, 5)] == [ON_TIME, ON_TIME, ON_TIME, LATE]


def test_bad_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"max_out_of_order_ms must be >= 0, got -1"):
        Watermarker(max_out_of_order_ms=-1)
    with pytest.raises(ValueError, match=r"gateway, family, partition, got 'topic'"):
        Watermarker(max_out_of_order_ms=0, by="topic")


def test_the_watermark_is_the_minimum_over_sources() -> None:
    # gateway gw-a runs 40 s ahead of gw-b (within max_future): the partition's
    # watermark follows the slower one, so gw-b's events are not late.
    wm = Watermarker(max_out_of_order_ms=10_000, idle_ms=60_000)
    t0 = 1_767_225_600_000
    for i in range(10):
        assert wm.observe(t0 + i * 1_000, "gw-b") == ON_TIME
        assert wm.observe(t0 + i * 1_000 + 40_000, "gw-a") == ON_TIME
    assert wm.watermark_ms == t0 + 9_000 - 10_000
    # With one clock for the partition, gw-b's events would have been late.
    one = Watermarker(max_out_of_order_ms=10_000, by="partition")
    verdicts = [
        one.observe(t, "") for i in range(10) for t in (t0 + i * 1_000, t0 + i * 1_000 + 40_000)
    ]
    assert verdicts.count(LATE) == 9


def test_an_idle_source_stops_holding_the_others_back() -> None:
    wm = Watermarker(max_out_of_order_ms=0, idle_ms=60_000)
    t0 = 1_767_225_600_000
    wm.observe(t0, "quiet")
    for i in range(1, 200):
        wm.observe(t0 + i * 1_000, "busy")
    # quiet's newest event is 199 s behind the partition's recent median time
    assert wm.watermark_ms == t0 + 199_000
    # live: a source silent for longer than idle_ms of wall time is idle too
    live = Watermarker(max_out_of_order_ms=0, idle_ms=60_000)
    live.observe(t0, "quiet", clock_ms=t0)
    live.observe(t0 + 5_000, "busy", clock_ms=t0 + 5_000)
    assert live.watermark_ms == t0
    assert live.advance(now_ms=t0 + 61_000) == t0 + 5_000


def test_a_future_event_is_refused_and_moves_no_clock() -> None:
    wm = Watermarker(max_out_of_order_ms=1_000, max_future_ms=300_000)
    t0 = 1_767_225_600_000
    for i in range(20):
        wm.observe(t0 + i * 1_000, "gw-1")
    before = wm.watermark_ms
    assert wm.observe(t0 + HOUR, "gw-1") == FUTURE
    assert wm.observe(4_070_000_000_000, "gw-2") == FUTURE  # year 2098, a new gateway
    assert wm.watermark_ms == before
    assert [s for s, _, _ in wm.take_skewed()] == ["gw-1", "gw-2"]
    assert wm.observe(t0 + HOUR + 1, "gw-1") == FUTURE
    assert wm.take_skewed() == []  # reported once per source
    assert wm.observe(t0 + 20_000, "gw-1") == ON_TIME


def test_live_runs_measure_the_future_against_the_wall_clock() -> None:
    wm = Watermarker(max_out_of_order_ms=0, max_future_ms=300_000)
    now = 1_767_225_600_000
    assert wm.observe(now + 299_000, "gw", clock_ms=now) == ON_TIME
    assert wm.observe(now + 301_000, "gw", clock_ms=now) == FUTURE


def test_a_real_clock_jump_of_a_source_is_accepted_after_a_few_events() -> None:
    # The whole partition resumes 10 minutes later (a real gap, not a bad clock).
    wm = Watermarker(max_out_of_order_ms=0, max_future_ms=300_000, by="partition")
    t0 = 1_767_225_600_000
    for i in range(40):
        wm.observe(t0 + i * 1_000)
    verdicts = [wm.observe(t0 + 600_000 + i * 1_000) for i in range(40)]
    assert FUTURE in verdicts[:8]
    assert verdicts[-20:] == [ON_TIME] * 20


def test_a_gateway_resuming_after_silence_is_measured_by_the_others() -> None:
    wm = Watermarker(max_out_of_order_ms=0, max_future_ms=300_000)
    t0 = 1_767_225_600_000
    for i in range(5):
        wm.observe(t0 + i * 1_000, "gw-a")
    for i in range(900):
        wm.observe(t0 + i * 1_000, "gw-b")
    assert wm.observe(t0 + 900_000, "gw-a") == ON_TIME


def test_the_clock_skew_alert_names_the_gateway_and_goes_by_the_sane_time() -> None:
    a = clock_skew_alert("gps#0", "gw-7", 10 * HOUR, 9 * HOUR, live=True)
    b = clock_skew_alert("gps#0", "gw-7", 99 * HOUR, 9 * HOUR, live=True)
    assert (a.kind, a.subject, a.ts_ms, a.id) == ("source.clock_skew", "gw-7", 9 * HOUR, b.id)
    assert clock_skew_alert("gps#0", "gps", 10 * HOUR, 9 * HOUR, live=False).subject == "gps#0/gps"
    assert clock_skew_alert("rec", "", 10 * HOUR, 9 * HOUR, live=False).subject == "rec"


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 10_000)),
        min_size=1,
        max_size=60,
    ),
    st.integers(0, 500),
)
def test_watermark_is_monotonic_and_late_means_older_than_it(
    events: list[tuple[str, int]], bound: int
) -> None:
    wm = Watermarker(max_out_of_order_ms=bound, idle_ms=2_000)
    prev = wm.watermark_ms
    for src, t in events:
        before = wm.watermark_ms
        verdict = wm.observe(t, src)
        assert verdict != FUTURE  # nothing here is 300 s ahead
        assert (verdict == LATE) == (t < before)
        assert wm.watermark_ms >= prev
        prev = wm.watermark_ms
    assert wm.watermark_ms <= max(t for _, t in events) - bound


class _Walking(Watermarker):
    """The reference: after every accepted event, the full walk over every source."""

    __slots__ = ()

    def _advance_by_time(self) -> None:
        self.advance()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 40), st.integers(-120_000, 400_000), st.booleans()),
        min_size=1,
        max_size=300,
    )
)
def test_the_bisected_watermark_equals_the_walk_over_every_source(
    steps: list[tuple[int, int, bool]],
) -> None:
    """Many sources, out of order, idle ones and far-future ones: the same verdict and
    watermark after every event, and after a restore from the plain state halfway."""
    from citywatch.detectors.state import decode, encode

    fast = Watermarker(30_000, idle_ms=60_000, max_future_ms=300_000)
    slow = _Walking(30_000, idle_ms=60_000, max_future_ms=300_000)
    t = 1_000_000
    for i, (src, jump, far) in enumerate(steps):
        t = max(0, t + jump // 10)
        ts = t + (10 * HOUR if far else 0)
        assert fast.observe(ts, f"gw-{src}") == slow.observe(ts, f"gw-{src}")
        assert fast.watermark_ms == slow.watermark_ms
        if i == len(steps) // 2:
            rebuilt = Watermarker(30_000, idle_ms=60_000, max_future_ms=300_000)
            rebuilt.restore(decode(encode(fast.state())))
            fast = rebuilt
