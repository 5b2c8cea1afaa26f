"""The real-series benchmark's per-series outcome: delay from the window that was hit."""

from __future__ import annotations

import numpy as np

from citywatch.benchmarks.anomaly_real import Run, outcome
from citywatch.benchmarks.anomaly_series import Series


def _series(windows: list[tuple[int, int]]) -> Series:
    return Series("s", np.arange(100) * 3_600_000, np.zeros(100), windows, "documented", "test")


def test_a_hit_in_a_later_window_is_timed_from_that_window() -> None:
    # windows  [10..14]        [40..45]        [70..70]
    # alerts           (none)      ^ 42             ^ 71 (in grace)   ^ 90 false
    s = _series([(10, 14), (40, 45), (70, 70)])
    got = outcome(s, Run(np.zeros(100), [42, 71, 90]), grace=6)
    assert (got.hit, got.false_alerts, got.delay_readings, got.delay_h) == (True, 1, 2, 2.0)


def test_a_hit_in_the_grace_after_the_first_window_is_timed_from_it() -> None:
    s = _series([(10, 14), (40, 45)])
    got = outcome(s, Run(np.zeros(100), [5, 17]), grace=6)
    assert (got.hit, got.false_alerts, got.delay_readings) == (True, 1, 7)
    assert outcome(s, Run(np.zeros(100), [60]), grace=6).delay_readings is None
