"""Per-sensor baselines of one sensor kind as numpy arrays, updated a batch at a time.

A :class:`BaselineBank` holds one row per sensor in flat arrays (about 1.19 kB a
sensor, most of it the 168 hour-of-week bins), so 100,000 sensors fit in about
150 MB and a batch of readings updates in a few dozen vectorised numpy
operations, whatever the number of sensors in it.

The model per sensor, three candidate seasons side by side (none, hour-of-day,
hour-of-week, with hourly bins interpolated between bin centres):

- a fast EW level of the deseasonalised value forecasts the next reading; the
  one-step *residual* in units of its EW spread sees spikes and jumps;
- a slow baseline plus the season is the long memory of normal; the fast
  level's deviation from it, in units of that deviation's own spread, sees
  drifts, lasting shifts and a broken daily or weekly cycle (*level*);
- the fast/slow residual variance ratio sees a *volatility* change;
- a two-sided CUSUM (Page's test) of the residual against baseline + season,
  in units of its effective spread (inflated by the residual's autocorrelation,
  which a slow EW mean of it measures), sees a *drift* the fast level follows (a
  ramp over hours) as the ramp's readings add up: it sums from the moment the
  season choice is settled (``drift_after_days`` of history), does not add
  readings the other features already find surprising, and restarts when an
  episode ends.

The season is found from the series itself: the candidate whose baseline +
season forecasts the readings best is used, if it cuts the squared error of the
simpler candidate to ``season_gain`` (the daily one after
``profile_warmup_days`` of history, the weekly one after
``weekly_warmup_days``; neither when readings are too sparse for it). No period
is configured.

Each distance is then calibrated against the sensor's own recent errors: a
running 99th percentile per feature (a quantile tracker), and a distance of
``r`` percentiles has tail probability ``0.01 ** r``. The *surprise*
``-log10 p`` of the least likely feature gives the score, so a threshold means
the same rarity on a sensor in dB, in m³ or in megawatts, quiet or noisy.

Every reading is scored before it is learned (prequential). Learning is
winsorised at ``clip_z`` spreads; the long memory (baseline, seasons, spreads,
tail percentiles) learns only readings with a surprise below
:data:`LEARN_SURPRISE`, so a drift is not taught to it as normal, until an
episode outlasts ``max_episode_s``. A silence longer than ``gap_factor``
typical intervals restarts the fast state; out-of-order readings score 0 and
are not learned.

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

from citywatch.detectors.anomaly.params import BaselineParams, normal_z_of_t
from citywatch.detectors.anomaly.slots import SlotTable
from citywatch.detectors.state import Stateful

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
WEEK_BINS = 7 * 24
HIST_BINS = 1000
# Hourly decay of the calibration histogram: a one-week half-life.
HIST_DECAY_PER_HOUR = 0.5 ** (1 / (7 * 24))
SEASONS = ("none", "daily", "weekly")
# Tail calibration: per feature, a running 99th percentile of the model's own recent
# distances (a Robbins-Monro quantile tracker in log space). A distance r times that
# percentile has tail probability 0.01 ** r under an exponential tail (conservative
# for Gaussian errors, honest for heavy-tailed ones), i.e. -log10 p = 2 r.
TAIL_LEVEL = 0.01
# Per feature (residual, level, volatility, drift): the slow drift statistic moves
# over hours, so its percentile learns ten times slower (a ramp is not taught as normal).
TAIL_RATE = np.array([0.05, 0.05, 0.05, 0.005])
# Before any learning, and never below: about the 99th percentiles for Gaussian errors
# (|z| 2.58; the volatility feature, a log variance ratio, has a longer tail).
TAIL_PRIOR = np.array([2.58, 2.58, 3.0, 2.58])
TAIL_FLOOR = np.array([1.5, 1.5, 2.5, 1.5])
# The long memory learns readings less surprising than this (tail probability 1e-4).
LEARN_SURPRISE = 4.0
FEATURES = ("residual", "level", "volatility", "drift")
# The drift statistic's own spread learns this fraction of its EW weight per reading.
DRIFT_VAR_RATE = 0.05
# ... and is scored DRIFT_SETTLE / drift_alpha readings after its season candidate
# began (a young daily profile's own error must not read as drift).
DRIFT_SETTLE = 4.0
# The drift distance is a two-sided CUSUM (Page's test) of the long residual, in units
# of its effective spread (the residual's variance inflated by its autocorrelation, as
# the EW drift mean's spread over normal readings shows), with reference value
# DRIFT_K spreads: a ramp accumulates in it reading by reading, where an EW mean
# weighs its first hours little.
DRIFT_K = 0.5
# The stationary 99th percentile of that CUSUM on white residuals (simulated): the
# drift distance is scaled so that it sits at the shared prior TAIL_PRIOR[3].
DRIFT_CUSUM_Q99 = 4.70
# A CUSUM's tail is exponential, as the calibration assumes, where the other distances
# of Gaussian errors have lighter tails (so their per-reading rarity is conservative):
# the drift distance's surprise is weighted by this factor, which puts its alert at
# 12.6 spreads. On white residuals (python -m citywatch.benchmarks.drift_bound's
# oracle) that is ~0.0004 false alerts per sensor-day, a fifth of what the other
# distances give on the quality benchmark's clean sensors, for ~5 min more delay on
# its ramp than at 11 spreads (0.002 a sensor-day).
DRIFT_SURPRISE_WEIGHT = 0.7
FEATURE_WEIGHT = np.array([1.0, 1.0, 1.0, DRIFT_SURPRISE_WEIGHT])

_FIELDS: dict[str, tuple[Any, tuple[int, ...]]] = {
    "n": (np.int32, ()),
    "first_ts": (np.int64, ()),
    "last_ts": (np.int64, ()),
    "dt_typ": (np.float32, ()),  # typical reading interval, ms
    "season": (np.int8, ()),  # index into SEASONS, chosen by the model
    # per candidate season (none, daily, weekly):
    "level": (np.float64, (3,)),  # fast level of the deseasonalised value
    "base": (np.float64, (3,)),  # slow baseline (long memory, learns normal readings only)
    "mse": (np.float64, (3,)),  # EW squared one-step error
    "smse": (np.float64, (3,)),  # EW squared error of base + season (selects the season)
    "dvar": (np.float64, (3,)),  # EW variance of level - base
    "fvar": (np.float32, ()),  # fast EW squared error of the chosen season
    "drift": (np.float32, (3,)),  # slow EW mean of the standardised long residual
    "dsvar": (np.float32, (3,)),  # slower EW mean square of it (normal readings only)
    "cusum": (np.float32, (3, 2)),  # CUSUM of the long residual, upward and downward
    "tail": (np.float32, (4,)),  # running 99th percentile of each feature's distance
    "day_prof": (np.float32, (24,)),
    "day_n": (np.uint8, (24,)),
    "week_prof": (np.float32, (WEEK_BINS,)),
    "week_n": (np.uint8, (WEEK_BINS,)),
    "ep_on": (np.bool_, ()),
    "ep_first": (np.int64, ()),
    "ep_peak": (np.float32, ()),
    "ep_below": (np.int16, ()),  # outside an episode, -1: a young near-alert held
    "ep_day": (np.int32, ()),
    "day_alerts": (np.int16, ()),
}


@dataclass(slots=True)
class StepResult:
    """Scores and explanations of one vectorised step (aligned with its inputs).

    ``z_*`` are each feature's distance divided by its running 99th percentile
    (``tail`` holds that percentile for the residual); ``surprise`` is
    ``-log10`` of the tail probability; ``season`` indexes :data:`SEASONS`.
    ``level_away`` is the score the level distance alone would give, also while
    it is not scored yet (its spread still young): an episode does not end while
    the reading stays away from the long memory.
    """

    score: np.ndarray
    z_residual: np.ndarray
    z_volatility: np.ndarray
    z_profile: np.ndarray
    z_drift: np.ndarray
    forecast: np.ndarray
    sigma: np.ndarray
    profile_mean: np.ndarray
    learned: np.ndarray
    surprise: np.ndarray
    tail: np.ndarray
    season: np.ndarray
    level_away: np.ndarray
    score_t: np.ndarray  # the score with the residual as Student-t (alerts use it)


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
    # v2: the drift statistic (columns "drift", "dsvar"; a fourth "tail" percentile)
    # v3: the drift distance is a CUSUM (column "cusum")
    STATE_VERSION = 3
    MIGRATIONS = {
        1: lambda data: _with_drift_columns(data),
        2: lambda data: _with_cusum_column(data),
    }

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

    def hour_of_week(self, ts: np.ndarray) -> np.ndarray:
        """Local hour of the week, 0 = Monday 00:00 (1970-01-01 was a Thursday)."""
        return ((ts + self.utc_offset_ms) // HOUR_MS + 3 * 24) % WEEK_BINS

    def day_of(self, ts_ms: int) -> int:
        return (ts_ms + self.utc_offset_ms) // DAY_MS

    def _season_at(
        self,
        s: np.ndarray,
        ts: np.ndarray,
        b: np.ndarray,
        prof: str,
        cnt: str,
        bins: int,
        fallback: np.ndarray,
    ) -> np.ndarray:
        """The season's value at ``ts``: its hourly bins interpolated linearly between
        bin centres (a steep morning ramp is not a step at the hour); ``fallback``
        where the bin has not been learned yet."""
        a = self._a
        frac = ((ts + self.utc_offset_ms) % HOUR_MS) / HOUR_MS - 0.5
        nb = (b + np.where(frac >= 0, 1, -1)) % bins
        here = np.where(a[cnt][s, b] > 0, a[prof][s, b].astype(np.float64), fallback)
        there = a[prof][s, nb].astype(np.float64)
        w = np.where((a[cnt][s, b] > 0) & (a[cnt][s, nb] > 0), np.abs(frac), 0.0)
        return here + w * (there - here)

    def step(self, s: np.ndarray, ts: np.ndarray, x: np.ndarray) -> StepResult:
        """Score, then learn, one reading each of *distinct* sensors ``s``."""
        p, a = self.p, self._a
        k = s.size
        rows = np.arange(k)
        n = a["n"][s]
        last = a["last_ts"][s]
        fresh = n == 0
        ok = fresh | (ts > last)
        dt = np.where(fresh, 0, ts - last).astype(np.float64)
        dtyp = a["dt_typ"][s].astype(np.float64)
        # a silence far longer than the sensor's usual interval: restart the fast state
        gap = ok & (n >= 2) & (dtyp > 0) & (dt > p.gap_factor * dtyp)
        restart = fresh | gap
        warm = n >= p.warmup_readings
        age = ts - a["first_ts"][s]

        # each candidate season's term at this reading's time (0 where not learned yet)
        hd, hw = self.hour_of(ts), self.hour_of_week(ts)
        seas = np.zeros((k, 3))
        seas[:, 1] = self._season_at(s, ts, hd, "day_prof", "day_n", 24, seas[:, 0])
        seas[:, 2] = self._season_at(s, ts, hw, "week_prof", "week_n", WEEK_BINS, seas[:, 1])
        des = x[:, None] - seas
        level = np.where(restart[:, None], des, a["level"][s])
        base = np.where(fresh[:, None], des, a["base"][s])
        mse, dvar, smse = a["mse"][s], a["dvar"][s], a["smse"][s]
        c = a["season"][s].astype(np.int64)

        # one-step residual of every candidate; the chosen one is scored
        forecast_c = level + seas
        e = x[:, None] - forecast_c
        floor2 = p.min_scale * p.min_scale
        sig_c = np.sqrt(np.maximum(mse, floor2))
        sigma = sig_c[rows, c]
        z_res = np.abs(e[rows, c]) / sigma
        clip = np.where(warm[:, None], p.clip_z * sig_c, np.inf)
        e_cl = np.clip(e, -clip, clip)
        # the fast level's deviation from the slow baseline (drift, shift, broken cycle),
        # in units of its own spread (self-normalising: autocorrelation is not news)
        la = p.level_alpha
        level_new = level + la * e_cl
        dev = level_new - base
        lvl_floor = la / (2 - la) * np.maximum(mse, floor2)
        z_lvl_all = np.abs(dev[rows, c]) / np.sqrt(np.maximum(dvar, lvl_floor))[rows, c]
        # the baseline and the deviation's spread need more history than the residual
        z_lvl = np.where(n >= 2 * p.warmup_readings, z_lvl_all, 0.0)
        # fast / slow variance of the chosen residual: 2 log2 of their ratio
        rv = np.clip(e[rows, c], -2 * clip[rows, c], 2 * clip[rows, c])
        af = p.fast_var_alpha
        fvar_new = np.where(restart, sigma * sigma, (1 - af) * a["fvar"][s] + af * rv * rv)
        z_vol = 2.0 * np.log2(np.maximum(fvar_new / (sigma * sigma), 1.0))
        # slow drift: a slow EW mean of the long residual (value - baseline - season) in
        # units of that residual's spread, clipped (a spike moves it little); white
        # residuals give it a spread of sqrt(da / (2 - da)). It learns every in-order
        # reading once the warm-up is over and its candidate season has had the history
        # it needs (before that the season's own error would fill it), so a ramp
        # accumulates in it; it is scored DRIFT_SETTLE / da readings after that. Readings the fast
        # features already find surprising (a spike, a loud hour, a broken cycle) are
        # not added: they raise their own alert, and must not leave the drift statistic
        # high, to alert again once they are over.
        tail = a["tail"][s].astype(np.float64)
        tail = np.where(tail > 0, tail, TAIL_PRIOR[None, :])
        fast = np.stack([z_res, z_lvl, z_vol], axis=1) / tail[:, :3]
        calm = (-np.log10(TAIL_LEVEL) * fast.max(axis=1) < LEARN_SURPRISE) | (
            a["ep_on"][s] & (ts - a["ep_first"][s] > p.max_episode_s * 1000)
        )
        da = p.drift_alpha
        u = np.clip((des - base) / np.sqrt(np.maximum(smse, floor2)), -p.clip_z, p.clip_z)
        ready = np.stack(
            [
                warm,
                warm & (age >= p.profile_warmup_days * DAY_MS),
                warm & (age >= p.weekly_warmup_days * DAY_MS),
            ],
            axis=1,
        )
        drift_old = a["drift"][s]
        drift_new = np.where(calm[:, None], (1 - da) * drift_old + da * u, drift_old)
        drift_new = np.where(ready, drift_new, 0.0)
        # in units of its own spread over normal readings (a real series' residual is
        # autocorrelated: day-to-day weather moves it more than white noise would),
        # never below the white-noise spread
        white = da / (2 - da)
        dsvar = np.where(ready & (a["dsvar"][s] > 0), a["dsvar"][s], white)
        # the CUSUM: the residual in units of its effective spread (the EW mean's spread
        # over normal readings against white noise's: 1 for white residuals, more for a
        # residual that day-to-day weather moves), less DRIFT_K, summed while positive
        inflation = np.maximum(dsvar, white) / white
        v = u / np.sqrt(inflation)
        cus = a["cusum"][s].astype(np.float64)
        up = np.maximum(0.0, cus[:, :, 0] + v - DRIFT_K)
        down = np.maximum(0.0, cus[:, :, 1] - v - DRIFT_K)
        cus_new = np.where(calm[:, None, None], np.stack([up, down], axis=2), cus)
        # readings since each candidate became ready (its statistic and spread began)
        dt_est = np.maximum(dtyp, 1.0)
        since = np.stack(
            [
                n - p.warmup_readings,
                (age - p.profile_warmup_days * DAY_MS) / dt_est,
                (age - p.weekly_warmup_days * DAY_MS) / dt_est,
            ],
            axis=1,
        )
        since = np.where(ready, np.maximum(since, 1.0), 1.0)
        # each candidate's CUSUM sums from the moment its drift distance may be scored
        # (before that its season's own young error would fill it)
        settled_c = (
            ready
            & (n >= 2 * p.warmup_readings)[:, None]
            & (since >= DRIFT_SETTLE / da)
            & (age >= p.drift_after_days * DAY_MS)[:, None]
        )
        cus_new = np.where(settled_c[:, :, None], cus_new, 0.0)
        z_drift = cus_new[rows, c].max(axis=1) * (TAIL_PRIOR[3] / DRIFT_CUSUM_Q99)

        # tail probability of each distance against its running 99th percentile
        zs = np.stack([z_res, z_lvl, z_vol, z_drift], axis=1)
        ratio = zs / tail
        surprise = -np.log10(TAIL_LEVEL) * (ratio * FEATURE_WEIGHT).max(axis=1)
        scored = warm & ok & ~gap
        surprise = np.where(scored, surprise, 0.0)
        h2 = p.half_score_surprise * p.half_score_surprise
        score = surprise * surprise / (surprise * surprise + h2)
        # for the alert decision: a young model's spread is a sample estimate (n
        # readings), its residual Student-t, read as the normal distance of equal tail
        ratio[:, 0] = normal_z_of_t(z_res, n - 1.0) / tail[:, 0]
        st = np.where(scored, -np.log10(TAIL_LEVEL) * (ratio * FEATURE_WEIGHT).max(axis=1), 0)
        ratio[:, 0] = zs[:, 0] / tail[:, 0]
        # the level distance's score even before it is scored (episodes end on it too:
        # a step found by the residual in the warm-up must not end its episode while
        # the fast level has followed it, to alert again when the level is scored)
        away = -np.log10(TAIL_LEVEL) * z_lvl_all / tail[:, 1]
        level_away = np.where(scored, away * away / (away * away + h2), 0.0)
        # Long memory (baseline, seasons, tails) learns only clearly normal readings,
        # unless an episode has lasted max_episode_s: then the change is the new normal.
        long_ep = a["ep_on"][s] & (ts - a["ep_first"][s] > p.max_episode_s * 1000)
        normal = (surprise < LEARN_SURPRISE) | long_ep

        # -- learn (in-order readings only) ------------------------------------------
        lrn = ok
        sl = s[lrn]
        n1 = n[lrn] + 1
        a["n"][sl] = np.minimum(n1, np.iinfo(np.int32).max)
        a["first_ts"][sl] = np.where(fresh[lrn], ts[lrn], a["first_ts"][sl])
        a["last_ts"][sl] = ts[lrn]
        d0, d = dtyp[lrn], dt[lrn]
        a["dt_typ"][sl] = np.where(
            n[lrn] <= 1, d, d0 + 0.05 * (np.clip(d, 0.5 * d0, 2.0 * d0) - d0)
        )
        a["level"][sl] = level_new[lrn]
        av = np.maximum(p.var_alpha, 1.0 / (n + 1.0))[:, None]
        mse_new = np.where(restart[:, None], mse, (1 - av) * mse + av * e_cl * e_cl)
        a["mse"][sl] = np.where(fresh[lrn, None], 0.0, mse_new[lrn])
        a["fvar"][sl] = fvar_new[lrn]
        a["drift"][sl] = drift_new[lrn]
        a["cusum"][sl] = cus_new[lrn]
        # winsorised at 2 of its spreads (a ramp can grow it 3 % of its weight a reading
        # at most), learning 1 / m in its first readings, then DRIFT_VAR_RATE * da
        dsa = np.maximum(p.drift_alpha * DRIFT_VAR_RATE, 1.0 / since)
        d2 = np.minimum(drift_new * drift_new, 4 * dsvar)
        dsv = np.where(ready, (1 - dsa) * dsvar + dsa * d2, 0.0)
        nl = lrn & normal
        a["dsvar"][s[nl]] = dsv[nl]

        g = lrn & normal
        sg = s[g]
        dtp = np.clip(np.where(restart, HOUR_MS, dt), 1, HOUR_MS)[g]
        nb = (n[g] + 1).astype(np.float64)
        sgc = sig_c[g]
        lim = np.where(warm[g, None], 2 * p.clip_z * sgc, np.inf)
        bd = des[g] - base[g]
        beta = np.maximum(1.0 / nb, 1 - 0.5 ** (dtp / (p.baseline_half_life_h * HOUR_MS)))
        a["base"][sg] = base[g] + beta[:, None] * np.clip(bd, -lim, lim)
        avd = np.maximum(p.var_alpha, 1.0 / nb)[:, None]
        dv = dev[g] * dev[g]
        lf = lvl_floor[g]
        dvar_g = (1 - avd) * dvar[g] + avd * np.minimum(dv, 4 * np.maximum(dvar[g], lf))
        a["dvar"][sg] = np.where(fresh[g, None], 0.0, dvar_g)
        sm = (1 - avd) * smse[g] + avd * np.minimum(bd * bd, lim * lim)
        sm = np.where(fresh[g, None], 0.0, sm)
        a["smse"][sg] = sm
        # the seasons learn the value minus their own baseline: normal readings, and
        # the first visit of a bin whatever it reads (an empty bin must not lock itself)
        hl = p.profile_half_life_days * HOUR_MS
        dtl = np.clip(np.where(restart, HOUR_MS, dt), 1, HOUR_MS)
        lim_all = np.where(warm[:, None], 2 * p.clip_z * sig_c, np.inf)
        for prof, cnt, bins, col in (("day_prof", "day_n", hd, 1), ("week_prof", "week_n", hw, 2)):
            m_all = a[cnt][s, bins]
            u = lrn & (normal | (m_all == 0))
            su, b = s[u], bins[u]
            m = m_all[u].astype(np.float64)
            old = a[prof][su, b].astype(np.float64)
            target = x[u] - a["base"][su, col]
            ab = np.maximum(1.0 / (m + 1), 1 - 0.5 ** (dtl[u] / hl))
            step = np.clip(target - old, -lim_all[u, col], lim_all[u, col])
            a[prof][su, b] = np.where(m > 0, old + ab * step, target)
            a[cnt][su, b] = np.minimum(m + 1, 255)
        # running 99th percentiles of the distances (warm, scored readings)
        t = g & scored
        if t.any():
            up = (zs[t] > tail[t]).astype(np.float64)
            new_tail = tail[t] * np.exp(TAIL_RATE[None, :] * (up - TAIL_LEVEL))
            a["tail"][s[t]] = np.maximum(new_tail, TAIL_FLOOR)
        # the season: the candidate whose baseline + season forecasts best, if it
        # cuts the squared error of the simpler one by the season_gain factor
        dt_g = a["dt_typ"][sg].astype(np.float64)
        age_g = age[g]
        daily_ok = (age_g >= p.profile_warmup_days * DAY_MS) & (dt_g <= 6 * HOUR_MS)
        weekly_ok = (age_g >= p.weekly_warmup_days * DAY_MS) & (dt_g <= DAY_MS)
        choice = np.where(daily_ok & (sm[:, 1] < p.season_gain * sm[:, 0]), 1, 0)
        best = sm[np.arange(sg.size), choice]
        choice = np.where(weekly_ok & (sm[:, 2] < p.season_gain * best), 2, choice)
        a["season"][sg] = choice

        return StepResult(
            score,
            ratio[:, 0],
            ratio[:, 2],
            ratio[:, 1],
            ratio[:, 3],
            forecast_c[rows, c],
            sigma,
            (base + seas)[rows, c],
            lrn,
            surprise,
            tail[:, 0],
            c,
            level_away,
            st * st / (st * st + h2),
        )

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


def _with_drift_columns(data: dict[str, Any]) -> dict[str, Any]:
    """State version 1 -> 2: the rows get the drift statistic at rest (zero, learning
    from the next reading on) and its tail percentile at the prior; the fast residual
    variance is kept in float32 (so a row stays under 1.2 kB)."""
    rows = data["_rows"]
    cols = dict(rows.data["cols"])
    used = len(cols["n"])
    old_tail = cols["tail"]
    tail = np.empty((used, 4), dtype=np.float32)
    tail[:, :3] = old_tail
    tail[:, 3] = TAIL_PRIOR[3]
    cols["tail"] = tail
    cols["drift"] = np.zeros((used, 3), dtype=np.float32)
    cols["dsvar"] = np.zeros((used, 3), dtype=np.float32)
    cols["fvar"] = cols["fvar"].astype(np.float32)
    layout = {n: (np.dtype(t).str, tuple(shape)) for n, (t, shape) in _FIELDS.items()}
    new_rows = type(rows)(rows.kind, rows.version, {**rows.data, "cols": cols, "layout": layout})
    return {**data, "_rows": new_rows}


def _with_cusum_column(data: dict[str, Any]) -> dict[str, Any]:
    """State version 2 -> 3: the rows get the drift CUSUM at rest (zero, accumulating
    from the next reading on); the drift tail percentile restarts at its prior (it
    measured the EW drift mean, a distance on another scale)."""
    rows = data["_rows"]
    cols = dict(rows.data["cols"])
    used = len(cols["n"])
    cols["cusum"] = np.zeros((used, 3, 2), dtype=np.float32)
    tail = np.array(cols["tail"], dtype=np.float32, copy=True)
    tail[:, 3] = TAIL_PRIOR[3]
    cols["tail"] = tail
    layout = {n: (np.dtype(t).str, tuple(shape)) for n, (t, shape) in _FIELDS.items()}
    new_rows = type(rows)(rows.kind, rows.version, {**rows.data, "cols": cols, "layout": layout})
    return {**data, "_rows": new_rows}


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
