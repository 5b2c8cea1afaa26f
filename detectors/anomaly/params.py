"""Parameters of the anomaly detectors: frozen, self-validating, units in the names."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from citywatch.detectors import params


def score_of_z(z: float, z_half: float) -> float:
    """Map a z-like distance to a score in [0, 1): ``z² / (z² + z_half²)``.

    0.5 at ``z_half``; monotone; never saturates to exactly 1, so scores stay
    comparable far out in the tail.

    >>> round(score_of_z(4.0, 4.0), 3), round(score_of_z(8.0, 4.0), 3)
    (0.5, 0.8)
    """
    return z * z / (z * z + z_half * z_half)


def z_of_score(score: float, z_half: float) -> float:
    """The inverse of :func:`score_of_z`.

    >>> z_of_score(0.8, 4.0)
    8.0
    """
    score = min(max(score, 0.0), 0.999999)
    return z_half * math.sqrt(score / (1.0 - score))


def normal_z_of_t(t: np.ndarray, dof: np.ndarray) -> np.ndarray:
    """The normal distance with the tail probability of a Student-t distance ``t``
    with ``dof`` degrees of freedom (Wallace's approximation, good to ~0.02 in the
    tail from 10 degrees of freedom on).

    A residual divided by a spread estimated from ``m`` readings is t-distributed
    with about ``m - 1`` degrees of freedom: a young model's 4.85-spread residual
    is as likely as a 4.25-spread one of a model that knows its spread. The
    mapping fades as readings add up (5 spreads read 4.90 at 300, 4.99 at 5,000).

    >>> [round(float(z), 2) for z in normal_z_of_t(np.array([4.85, 4.85, 1.0]),
    ...                                             np.array([38.0, 1e9, 38.0]))]
    [4.25, 4.85, 0.99]
    """
    nu = np.maximum(dof, 1.0)
    t2 = t * t
    return np.sqrt(nu * np.log1p(t2 / nu)) * (8 * nu + 1) / (8 * nu + 3)


@dataclass(frozen=True, slots=True, kw_only=True)
class BaselineParams:
    """Per-sensor online baseline of one sensor kind (``[anomaly.sensor.<kind>]``).

    The model per sensor: an EW level of the deseasonalised value forecasts the
    next reading; a slow baseline plus a season (none, hour-of-day or
    hour-of-week, chosen by the model from the series itself) is its long memory
    of "normal". Four distances: the one-step residual in units of its EW
    spread (spikes, jumps), the fast level's deviation from the baseline in
    units of its own spread (lasting shifts, a broken cycle), the fast/slow
    residual variance ratio (variance change) and a two-sided CUSUM of the
    residual against baseline + season in units of its effective spread (a slow
    drift, scored after ``drift_after_days`` of history). Each distance is divided
    by its running 99th percentile over the sensor's own recent normal readings;
    a ratio ``r`` has tail probability ``0.01 ** r``, and the *surprise* is
    ``-log10`` of the smallest tail probability. The score is
    ``surprise² / (surprise² + half_score_surprise²)``, so one threshold means
    the same rarity on any sensor, whatever its scale, period or noise.

    - ``warmup_readings``: readings learned before any score is non-zero.
    - ``level_alpha``: EW weight of the fast level (per reading).
    - ``drift_alpha``: EW weight (per reading) of the slow EW mean of the residual
      against baseline + season; its spread over normal readings, against white
      noise's, is how much the residual's autocorrelation inflates a sum of it, and
      sets the unit of the drift CUSUM (the fourth distance, calibrated like the
      others; it sums a slow ramp the fast level follows, reading by reading).
    - ``drift_after_days``: history before the drift distance is scored; by
      default the weekly warm-up, so a weekly cycle not yet learned (a quiet
      weekend seen through a daily season) does not read as drift. A sensor
      kind known to have no weekly cycle may use less (at least
      ``profile_warmup_days`` plus ``4 / drift_alpha`` readings are always needed).
    - ``var_alpha`` / ``fast_var_alpha``: EW weights of the slow and fast residual
      variances (their ratio is the volatility feature).
    - ``min_scale``: floor of the residual standard deviation, in the sensor's unit
      (a very quiet sensor must not turn rounding into anomalies).
    - ``clip_z``: residuals are clipped to this many standard deviations before
      the model learns them (a spike cannot inflate the variance; a level shift
      is absorbed gradually: drift adaptation).
    - ``baseline_half_life_h``: half-life of the slow baseline, event-time hours.
    - ``profile_warmup_days`` / ``weekly_warmup_days``: history needed before the
      daily / weekly season may be chosen; ``profile_half_life_days``: a season's
      bins forget with this half-life (in days for the daily season, weeks for
      the weekly one).
    - ``season_gain``: a season is chosen when baseline + season cuts the squared
      error of the simpler choice to this fraction or less.
    - ``gap_factor``: a silence longer than this many typical intervals restarts
      the fast state (the first reading after it is not scored).
    - ``half_score_surprise``: the surprise (decades of tail probability) at which
      the score is 0.5.
    - ``min_score``: the alert threshold floor; the calibrated threshold is the
      larger of it and the kind's streaming ``quantile`` of scores (once
      ``calibration_min_readings`` scores are in).
    - ``clear_score`` / ``clear_readings``: an episode ends after this many
      readings below ``clear_score``.
    - ``max_alerts_per_sensor_day``: the alert budget per sensor and local day.
    - ``max_episode_s``: after an episode this long the long memory learns
      again: the change has become the new normal.
    - ``idle_evict_s``: sensors silent this long are forgotten.
    """

    warmup_readings: int = 30
    level_alpha: float = 0.2
    drift_alpha: float = 0.02
    drift_after_days: float = 8.0
    var_alpha: float = 0.02
    fast_var_alpha: float = 0.1
    min_scale: float = 1e-6
    clip_z: float = 3.0
    baseline_half_life_h: float = 24.0
    profile_warmup_days: float = 2.0
    weekly_warmup_days: float = 8.0
    profile_half_life_days: float = 3.0
    season_gain: float = 0.8
    gap_factor: float = 12.0
    half_score_surprise: float = 2.45
    min_score: float = 0.7
    quantile: float = 0.99999
    calibration_min_readings: int = 1_000_000
    clear_score: float = 0.5
    clear_readings: int = 3
    max_alerts_per_sensor_day: int = 2
    max_episode_s: int = 24 * 3600
    severity: str = "yellow"
    unit: str = ""
    idle_evict_s: int = 7 * 24 * 3600

    def __post_init__(self) -> None:
        owner = "anomaly.sensor"
        params.positive(owner, "warmup_readings", self.warmup_readings)
        for name in ("level_alpha", "drift_alpha", "var_alpha", "fast_var_alpha", "season_gain"):
            _unit_interval(owner, name, getattr(self, name))
        for name in (
            "min_scale",
            "clip_z",
            "baseline_half_life_h",
            "profile_warmup_days",
            "weekly_warmup_days",
            "profile_half_life_days",
            "half_score_surprise",
            "drift_after_days",
        ):
            params.positive(owner, name, getattr(self, name))
        if self.gap_factor <= 1:
            msg = (
                f'{owner}: "gap_factor" must exceed 1 (typical intervals), got {self.gap_factor!r}'
            )
            raise ValueError(msg)
        _unit_interval(owner, "min_score", self.min_score)
        _unit_interval(owner, "quantile", self.quantile)
        params.positive(owner, "calibration_min_readings", self.calibration_min_readings)
        _unit_interval(owner, "clear_score", self.clear_score)
        if self.clear_score > self.min_score:
            msg = (
                f'{owner}: "clear_score" {self.clear_score} must not exceed "min_score" '
                f"{self.min_score} (an episode must be able to end)"
            )
            raise ValueError(msg)
        params.positive(owner, "clear_readings", self.clear_readings)
        params.positive(owner, "max_alerts_per_sensor_day", self.max_alerts_per_sensor_day)
        params.positive(owner, "max_episode_s", self.max_episode_s)
        params.severity(owner, self.severity)
        params.positive(owner, "idle_evict_s", self.idle_evict_s)


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerParams:
    """The peer-group model of household meters (``[anomaly.peer]``).

    A dwelling's meters (``hh-<estate>-<unit>-<water|power|gas>``) form one
    consumption vector (EW mean of each kind, in log space). Its peers are the
    dwellings of the same estate, or all dwellings (the size class) when the estate
    has fewer than ``min_peers`` warmed-up dwellings. A kind's robust z is
    ``(log x - peer median) / max(1.4826 MAD, min_log_scale)``; a dwelling is a
    peer anomaly when the mean z of its ``min_kinds`` highest kinds exceeds
    ``z_limit`` and each of them exceeds half of it (many tenants use more water
    *and* more power).

    - ``kinds``: the meter kinds of a dwelling.
    - ``min_readings``: readings per kind before a dwelling is compared.
    - ``alpha``: EW weight of a dwelling's mean per kind.
    - ``refresh_s``: peer statistics are recomputed at most once per this much
      event time per group.
    - ``hst``: also score each dwelling with a river HalfSpaceTrees per peer class
      (evidence only; one model per class, not per dwelling).
    """

    kinds: tuple[str, ...] = ("water", "power", "gas")
    id_pattern: str = r"^hh-(?P<group>[^-]+)-(?P<unit>[^-]+)-(?P<kind>[a-z_]+)(?P<copy>-x\d+)?$"
    min_readings: int = 1
    min_peers: int = 4
    alpha: float = 0.1
    z_limit: float = 3.0
    min_kinds: int = 2
    min_log_scale: float = 0.3
    refresh_s: int = 900
    max_alerts_per_dwelling_day: int = 1
    z_half: float = 3.0
    severity: str = "blue"
    hst: bool = True
    hst_window: int = 100
    hst_trees: int = 10
    hst_height: int = 6
    seed: int = 42
    idle_evict_s: int = 7 * 24 * 3600

    def __post_init__(self) -> None:
        owner = "anomaly.peer"
        if not self.kinds:
            msg = f'{owner}: "kinds" must list the meter kinds, like ["water", "power", "gas"]'
            raise ValueError(msg)
        for name in ("min_readings", "min_peers", "min_kinds", "refresh_s", "hst_window"):
            params.positive(owner, name, getattr(self, name))
        if self.min_kinds > len(self.kinds):
            msg = f'{owner}: "min_kinds" {self.min_kinds} exceeds the {len(self.kinds)} kinds'
            raise ValueError(msg)
        _unit_interval(owner, "alpha", self.alpha)
        for name in ("z_limit", "min_log_scale", "z_half", "hst_trees", "hst_height"):
            params.positive(owner, name, getattr(self, name))
        params.positive(owner, "max_alerts_per_dwelling_day", self.max_alerts_per_dwelling_day)
        params.severity(owner, self.severity)
        params.positive(owner, "idle_evict_s", self.idle_evict_s)


def _unit_interval(owner: str, name: str, value: float, *, allow_zero: bool = False) -> None:
    ok = (0.0 <= value <= 1.0) if allow_zero else (0.0 < value <= 1.0)
    if not ok:
        low = "[0" if allow_zero else "(0"
        msg = f'{owner}: "{name}" must be in {low}, 1], got {value!r}'
        raise ValueError(msg)
