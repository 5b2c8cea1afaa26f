"""The alert threshold of one sensor kind: a quantile of its recent scores.

>>> cal = KindCalibration(quantile=0.99, min_score=0.7, min_readings=10)
>>> cal.add(0, np.linspace(0.0, 0.95, 100))
>>> cal.threshold(1), round(cal.threshold(2), 3)
(0.7, 0.941)
"""

from __future__ import annotations

import numpy as np

from citywatch.detectors.state import Stateful

HIST_BINS = 1000
# Hourly decay of the calibration histogram: a one-week half-life.
HIST_DECAY_PER_HOUR = 0.5 ** (1 / (7 * 24))


class KindCalibration(Stateful):
    """A decayed histogram of one kind's scores; the alert threshold is its quantile.

    Deterministic whatever the batching: the threshold for readings of event hour
    ``H`` uses only scores of hours ``<= H - 2``. Those are complete by then,
    because a reading two hours old arriving after one of hour ``H`` would be
    late (the flow's out-of-orderness bound is far below an hour) and never
    reaches a detector.
    """

    __slots__ = ("closed_", "closed_upto_", "min_readings", "min_score", "pending_", "quantile")

    def __init__(self, quantile: float, min_score: float, min_readings: int) -> None:
        self.quantile = quantile
        self.min_score = min_score
        self.min_readings = min_readings
        self.closed_ = np.zeros(HIST_BINS, dtype=np.float64)
        self.closed_upto_: int | None = None
        self.pending_: dict[int, np.ndarray] = {}

    def threshold(self, hour: int) -> float:
        for h in sorted(k for k in self.pending_ if k <= hour - 2):
            if self.closed_upto_ is not None:
                self.closed_ *= HIST_DECAY_PER_HOUR ** max(0, h - self.closed_upto_)
            self.closed_ += self.pending_.pop(h)
            self.closed_upto_ = h
        total = float(self.closed_.sum())
        if total < self.min_readings:
            return self.min_score
        idx = int(np.searchsorted(np.cumsum(self.closed_), self.quantile * total))
        return max(self.min_score, min(idx + 1, HIST_BINS) / HIST_BINS)

    def add(self, hour: int, scores: np.ndarray) -> None:
        bins = np.minimum((scores * HIST_BINS).astype(np.int64), HIST_BINS - 1)
        counts = np.bincount(bins, minlength=HIST_BINS).astype(np.float64)
        if hour in self.pending_:
            self.pending_[hour] += counts
        else:
            self.pending_[hour] = counts
