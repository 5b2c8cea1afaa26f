"""Per-sensor baselines of one sensor kind as numpy arrays, updated a batch at a time.

A :class:`BaselineBank` holds one row per sensor in flat arrays (about 330 bytes
a sensor: Holt level/trend, residual variances, a 24-bin hour-of-day profile,
episode and budget counters), so 100,000 sensors fit in a few tens of MB and a
batch of readings updates in a handful of vectorised numpy operations. A Python
object per sensor would cost several times that and a Python loop per reading.

Every reading is scored before it is learned (prequential). Learning is
winsorised: residuals are clipped at ``clip_z`` standard deviations before they
enter the level, trend and variances, so one spike cannot inflate the variance
and mask what follows, while a lasting level shift is absorbed a little at a
time (drift adaptation). The hour-of-day profile, the model's long memory of
"normal", does not learn readings scored as anomalous at all: otherwise a broken
daily cycle or a slow drift would be taught to it as the new normal within
days and the next occurrence would go unseen.

>>> import numpy as np
>>> from citywatch.detectors.anomaly.params import BaselineParams
>>> bank = BaselineBank(BaselineParams(warmup_readings=30, min_scale=0.01))
>>> rng = np.random.default_rng(1)
>>> scores = [bank.score_learn_one("s", 60_000 * i, 5 + rng.normal(0, 0.1)) for i in range(90)]
>>> scores[:30] == [0.0] * 30, max(scores[30:]) < 0.7
(True, True)
>>> bank.score_learn_one("s", 60_000 * 90, 9.0) > 0.9
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from citywatch.detectors.anomaly.params import BaselineParams
from citywatch.detectors.anomaly.slots import SlotTable
from citywatch.detectors.state import Stateful

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
HIST_BINS = 1000
# Hourly decay of the calibration histogram: a one-week half-life.
HIST_DECAY_PER_HOUR = 0.5 ** (1 / (7 * 24))

_FIELDS: dict[str, tuple[Any, tuple[int, ...]]] = {
    "n": (np.int32, ()),
    "first_ts": (np.int64, ()),
    "last_ts": (np.int64, ()),
    "level": (np.float64, ()),
    "trend": (np.float64, ()),
    "var": (np.float64, ()),
    "fvar": (np.float64, ()),
    "pdev": (np.float32, ()),
    "pdev_var": (np.float32, ()),
    "n_prof": (np.int32, ()),
    "prof_mean": (np.float32, (24,)),
    "prof_var": (np.float32, (24,)),
    "prof_n": (np.uint16, (24,)),
    "ep_on": (np.bool_, ()),
    "ep_first": (np.int64, ()),
    "ep_peak": (np.float32, ()),
    "ep_below": (np.int16, ()),
    "ep_day": (np.int32, ()),
    "day_alerts": (np.int16, ()),
}


@dataclass(slots=True)
class StepResult:
    """Scores and explanations of one vectorised step (aligned with its inputs)."""

    score: np.ndarray
    z_residual: np.ndarray
    z_volatility: np.ndarray
    z_profile: np.ndarray
    forecast: np.ndarray
    sigma: np.ndarray
    profile_mean: np.ndarray
    learned: np.ndarray


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


class BaselineBank(Stateful):
    """Per-sensor baselines of one sensor kind (see the module docstring)."""

    STATE = ("_rows", "calibration", "suppressed_")

    def __init__(
        self, p: BaselineParams, *, utc_offset_s: int = 8 * 3600, capacity: int = 64
    ) -> None:
        self.p = p
        self.utc_offset_ms = utc_offset_s * 1000
        self._rows = SlotTable(_FIELDS, capacity)
        self._a = self._rows.cols
        self.calibration = KindCalibration(p.quantile, p.min_score, p.calibration_min_readings)
        self.suppressed_ = 0  # alerts withheld by the per-sensor-day budget

    # -- slots ------------------------------------------------------------------
    def slot(self, key: str) -> int:
        """The row of ``key``, allocated (zeroed) on first sight."""
        return self._rows.slot(key)[0]

    def key_of(self, slot: int) -> str | None:
        return self._rows.key_of(slot)

    def __len__(self) -> int:
        return len(self._rows)

    def nbytes(self) -> int:
        """Bytes held by the per-sensor arrays (the index dict not included)."""
        return self._rows.nbytes()

    def evict_idle(self, now_ms: int) -> int:
        """Forget sensors silent for ``idle_evict_s``; returns how many."""
        used = self._rows.rows()
        if used.size == 0:
            return 0
        idle = used[self._a["last_ts"][used] < now_ms - self.p.idle_evict_s * 1000]
        for i in idle.tolist():
            self._rows.release(i)
        return int(idle.size)

    def field(self, name: str) -> np.ndarray:
        """A read-only view of one per-sensor array (for tests and evidence)."""
        view = self._a[name].view()
        view.flags.writeable = False
        return view

    # -- the model ----------------------------------------------------------------
    def hour_of(self, ts: np.ndarray) -> np.ndarray:
        return ((ts + self.utc_offset_ms) // HOUR_MS) % 24

    def day_of(self, ts_ms: int) -> int:
        return (ts_ms + self.utc_offset_ms) // DAY_MS

    def step(self, s: np.ndarray, ts: np.ndarray, x: np.ndarray) -> StepResult:
        """Score, then learn, one reading each of *distinct* sensors ``s``."""
        p, a = self.p, self._a
        n = a["n"][s]
        last = a["last_ts"][s]
        ok = (n == 0) | (ts > last)
        fresh = n == 0
        warm = n >= p.warmup_readings
        level, trend, var, fvar = a["level"][s], a["trend"][s], a["var"][s], a["fvar"][s]
        forecast = np.where(fresh, x, level + trend)
        r = x - forecast
        sigma = np.sqrt(np.maximum(var, p.min_scale * p.min_scale))
        z_res = np.abs(r) / sigma
        clip = np.where(warm, p.clip_z * sigma, np.inf)
        rc = np.clip(r, -clip, clip)
        rv = np.clip(r, -2 * clip, 2 * clip)  # a lone spike must not read as volatility
        af = p.fast_var_alpha
        fvar_new = np.where(fresh, 0.0, (1 - af) * fvar + af * rv * rv)
        # 2 log2(fast/slow variance): 4 (score 0.5) when the spread doubles
        ratio = np.maximum(fvar_new / (sigma * sigma), 1.0)
        z_vol = 2.0 * np.log2(ratio)

        # hour-of-day profile
        h = self.hour_of(ts)
        pm = a["prof_mean"][s, h].astype(np.float64)
        pv = a["prof_var"][s, h].astype(np.float64)
        pn = a["prof_n"][s, h]
        prof_on = warm & (ts - a["first_ts"][s] >= int(p.profile_warmup_days * DAY_MS)) & (pn >= 2)
        psd = np.sqrt(np.maximum(pv, p.min_scale * p.min_scale))
        pz = np.clip((x - pm) / psd, -2 * p.clip_z, 2 * p.clip_z)
        ap = p.profile_alpha
        pdev = a["pdev"][s].astype(np.float64)
        pdev_new = np.where(prof_on, (1 - ap) * pdev + ap * pz, 0.0)
        n_prof = a["n_prof"][s]
        pdvar = a["pdev_var"][s].astype(np.float64)
        prof_scored = prof_on & (n_prof >= p.warmup_readings)
        z_prof = np.where(prof_scored, np.abs(pdev_new) / np.sqrt(np.maximum(pdvar, 0.0625)), 0.0)

        z = np.maximum(np.maximum(z_res, z_vol), z_prof)
        score = np.where(warm & ok, z * z / (z * z + p.z_half * p.z_half), 0.0)
        # Long memory (profile, its deviation scale) learns only clearly normal readings,
        # unless an episode has lasted max_episode_s: then the change is the new normal.
        long_ep = a["ep_on"][s] & (ts - a["ep_first"][s] > p.max_episode_s * 1000)
        normal = (score < p.clear_score) | long_ep

        # learn (only in-order readings)
        la = p.level_alpha
        learn = ok
        sl = s[learn]
        n1 = n[learn] + 1
        a["n"][sl] = np.minimum(n1, np.iinfo(np.int32).max)
        a["first_ts"][sl] = np.where(fresh[learn], ts[learn], a["first_ts"][sl])
        dt = np.where(fresh[learn], 0, ts[learn] - last[learn])
        a["last_ts"][sl] = ts[learn]
        rcl = rc[learn]
        a["level"][sl] = forecast[learn] + la * rcl
        a["trend"][sl] = np.where(fresh[learn], 0.0, trend[learn] + la * p.trend_beta * rcl)
        av = np.maximum(p.var_alpha, 1.0 / n1)
        a["var"][sl] = np.where(fresh[learn], 0.0, (1 - av) * var[learn] + av * rcl * rcl)
        a["fvar"][sl] = fvar_new[learn]
        # profile: smoothed deviation and its own scale (self-normalising, so the
        # autocorrelation of real deviations does not turn into false alerts)
        pl = prof_on[learn]
        a["pdev"][sl] = pdev_new[learn]
        pd2 = pdev_new[learn] ** 2
        pdv_new = np.where(
            n_prof[learn] == 0,
            pd2,
            (1 - p.var_alpha) * pdvar[learn]
            + p.var_alpha * np.minimum(pd2, 4 * np.maximum(pdvar[learn], 0.0625)),
        )
        a["pdev_var"][sl] = np.where(pl & normal[learn], pdv_new, pdvar[learn])
        a["n_prof"][sl] = np.where(pl, n_prof[learn] + 1, n_prof[learn])
        learn_prof = learn & normal
        sp, hp = s[learn_prof], h[learn_prof]
        pnp = pn[learn_prof].astype(np.float64)
        dtp = np.where(fresh[learn_prof], HOUR_MS, ts[learn_prof] - last[learn_prof])
        dtp = np.clip(dtp, 1, HOUR_MS)
        ab = np.maximum(1.0 / (pnp + 1), 1 - 0.5 ** (dtp / (p.profile_half_life_days * HOUR_MS)))
        d = x[learn_prof] - pm[learn_prof]
        dlim = np.where(pnp >= 2, 2 * p.clip_z * psd[learn_prof], np.inf)
        d = np.clip(d, -dlim, dlim)
        a["prof_mean"][sp, hp] = pm[learn_prof] + ab * d
        a["prof_var"][sp, hp] = (1 - ab) * (pv[learn_prof] + ab * d * d)
        a["prof_n"][sp, hp] = np.minimum(pnp + 1, 65_535)
        del dt
        return StepResult(score, z_res, z_vol, z_prof, forecast, sigma, pm, learn)

    def score_only(self, s: np.ndarray, ts: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Scores of readings without learning them (``score_one`` semantics)."""
        saved = {name: arr[s].copy() for name, arr in self._a.items()}
        try:
            return self.step(s, ts, x).score
        finally:
            for name, arr in self._a.items():
                arr[s] = saved[name]

    def score_learn_one(self, key: str, ts_ms: int, value: float) -> float:
        """Score one reading, then learn it (a convenience for examples and tests)."""
        s = np.array([self.slot(key)])
        res = self.step(s, np.array([ts_ms], dtype=np.int64), np.array([value], dtype=float))
        return float(res.score[0])


def rounds(slots: np.ndarray) -> list[np.ndarray]:
    """Split positions into rounds in which every slot appears at most once, keeping
    each slot's positions in order (so a vectorised step sees distinct sensors).

    >>> [r.tolist() for r in rounds(np.array([3, 1, 3, 3, 2]))]
    [[0, 1, 4], [2], [3]]
    """
    out: list[np.ndarray] = []
    remaining = np.arange(slots.size)
    while remaining.size:
        _, first = np.unique(slots[remaining], return_index=True)
        first.sort()
        out.append(remaining[first])
        keep = np.ones(remaining.size, dtype=bool)
        keep[first] = False
        remaining = remaining[keep]
    return out
