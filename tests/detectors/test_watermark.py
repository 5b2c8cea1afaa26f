"""Event-time watermarks with bounded out-of-orderness."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from citywatch.detectors.watermark import NO_WATERMARK, Watermarker


def test_no_watermark_before_the_first_event() -> None:
    wm = Watermarker(max_out_of_order_ms=10)
    assert wm.watermark_ms == NO_WATERMARK
    assert wm.observe(-(10**12)) is False  # nothing is late before anything was seen


def test_late_events_are_flagged_by_arrival_order() -> None:
    # arrival   1    2    3    4    5    6
    # ts       100   95  120  105  112  110
    # max      100  100  120  120  120  120
    # wm        90   90  110  110  110  110   (max - 10)
    # late       .    .    .    X    .    .   105 < 110; 110 is exactly at the watermark
    wm = Watermarker(max_out_of_order_ms=10)
    assert [wm.observe(t) for t in (100, 95, 120, 105, 112, 110)] == [
        False,
        False,
        False,
        True,
        False,
        False,
    ]
    assert wm.watermark_ms == 110
    assert wm.max_ts_ms == 120


def test_a_late_event_does_not_move_the_watermark_back() -> None:
    wm = Watermarker(max_out_of_order_ms=0)
    wm.observe(1_000)
    assert wm.observe(999) is True
    assert wm.watermark_ms == 1_000


def test_zero_out_of_orderness_accepts_equal_timestamps() -> None:
    wm = Watermarker(max_out_of_order_ms=0)
    assert [wm.observe(t) for t in (5, 5, 6, 5)] == [False, False, False, True]


def test_negative_out_of_orderness_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"max_out_of_order_ms must be >= 0, got -1"):
        Watermarker(max_out_of_order_ms=-1)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(0, 10_000), min_size=1, max_size=50),
    st.integers(0, 500),
)
def test_watermark_is_monotonic_and_late_means_older_than_it(ts: list[int], bound: int) -> None:
    wm = Watermarker(max_out_of_order_ms=bound)
    prev = wm.watermark_ms
    for t in ts:
        before = wm.watermark_ms
        assert wm.observe(t) == (t < before)
        assert wm.watermark_ms >= prev
        prev = wm.watermark_ms
    assert wm.watermark_ms == max(ts) - bound
