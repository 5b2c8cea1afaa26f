"""``sensor.anomaly`` per sensor: learned baselines instead of fixed limits.

:class:`SensorAnomalyDetector` keeps one :class:`~detectors.anomaly.bank.BaselineBank`
per configured sensor kind. Readings are buffered by ``on_event`` and scored,
then learned, a batch at a time in ``on_watermark`` (or when the buffer fills),
each sensor's readings in arrival order. A reading whose score reaches the
kind's calibrated threshold opens an episode; the episode raises one alert
(while the sensor's alert budget for the local day lasts) and ends after
``clear_readings`` readings below ``clear_score``. A young model's residual is
read as Student-t for the alert decision (its spread is estimated from few
readings; the score itself is unchanged); a reading that reaches the threshold
only without that correction is held, and opens the episode one reading later if
that next reading scores ``clear_score`` or more (a step stays away, a lone
outlier does not).

Timeline (warm-up 20 readings, one reading a minute, a level shift at minute 30)::

    minute   0 ........ 19 20 ............ 29 30 31 ...
    score    0 (warm-up)    low                hi hi ...
    alert                                      ^ first_ts = minute 30

>>> from citywatch.detectors.events import SensorEvent
>>> from citywatch.detectors.anomaly.params import BaselineParams
>>> import random
>>> rng = random.Random(3)
>>> det = SensorAnomalyDetector({"noise": BaselineParams(warmup_readings=20, min_scale=0.5)})
>>> out = []
>>> for i in range(40):
...     v = 55 + rng.gauss(0, 1) + (12 if i >= 30 else 0)
...     det.on_event(SensorEvent(1_781_000_000_000 + i * 60_000, "ns-1", "noise", v), out)
...     det.on_watermark(1_781_000_000_000 + i * 60_000, out)
>>> [(a.kind, (a.first_ts_ms - 1_781_000_000_000) // 60_000) for a in out]
[('sensor.anomaly', 30)]
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from citywatch.detectors.alerts import Alert
from citywatch.detectors.anomaly.bank import (
    HOUR_MS,
    SEASONS,
    TAIL_LEVEL,
    BaselineBank,
    StepResult,
    rounds,
)
from citywatch.detectors.anomaly.params import BaselineParams, z_of_score
from citywatch.detectors.base import ContractCase, Detector
from citywatch.detectors.events import Event, SensorEvent

FLUSH_AT = 4096
EVICT_EVERY_MS = HOUR_MS


def utc_offset_s(timezone: str) -> int:
    """The zone's UTC offset in seconds (a fixed offset: hour-of-day profiles use it).

    >>> utc_offset_s("Asia/Shanghai")
    28800
    """
    off = datetime(2026, 1, 1, tzinfo=ZoneInfo(timezone)).utcoffset()
    return int(off.total_seconds()) if off is not None else 0


class SensorAnomalyDetector(Detector):
    kinds = ("sensor.anomaly",)
    event_type = "sensor"
    # Scores a reading with the readings buffered since the last flush: the same scores
    # however flushes group them (each sensor's readings in arrival order; the
    # calibration reads only hours closed two hours before), so a live shard flushes
    # once a tick, not after every small input batch (a step costs ~0.6 ms whatever its size).
    settles_on_tick = True

    STATE = ("_banks", "_pending", "_next_evict_ms")

    def __init__(
        self, by_kind: Mapping[str, BaselineParams], *, timezone: str = "Asia/Shanghai"
    ) -> None:
        self.by_kind = dict(by_kind)
        self.timezone = timezone
        offset = utc_offset_s(timezone)
        self._banks = {k: BaselineBank(p, utc_offset_s=offset) for k, p in self.by_kind.items()}
        self._pending: list[SensorEvent] = []
        self._next_evict_ms: int | None = None

    def bank(self, kind: str) -> BaselineBank:
        return self._banks[kind]

    def on_event(self, ev: Event, out: list[Alert]) -> None:
        if isinstance(ev, SensorEvent) and ev.kind in self._banks:
            self._pending.append(ev)
            if len(self._pending) >= FLUSH_AT:
                self.flush(out)

    def on_watermark(self, wm_ms: int, out: list[Alert]) -> None:
        self.flush(out)
        if self._next_evict_ms is None:
            self._next_evict_ms = wm_ms + EVICT_EVERY_MS
        elif wm_ms >= self._next_evict_ms:
            for bank in self._banks.values():
                bank.evict_idle(wm_ms)
            self._next_evict_ms = wm_ms + EVICT_EVERY_MS

    def live_keys(self) -> int:
        return sum(len(b) for b in self._banks.values())

    def flush(self, out: list[Alert]) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        by_kind: dict[str, list[SensorEvent]] = {}
        for ev in pending:
            by_kind.setdefault(ev.kind, []).append(ev)
        for kind, events in by_kind.items():
            self.process(kind, events, out)

    def process(self, kind: str, events: list[SensorEvent], out: list[Alert]) -> np.ndarray:
        """Score and learn the readings of one kind (arrival order per sensor); appends
        alerts to ``out`` and returns each reading's score (before learning)."""
        bank = self._banks[kind]
        slots = np.fromiter((bank.slot(e.sensor) for e in events), np.int64, len(events))
        ts = np.fromiter((e.ts_ms for e in events), np.int64, len(events))
        x = np.fromiter((e.value for e in events), np.float64, len(events))
        scores = np.zeros(len(events))
        hours = ts // HOUR_MS
        order = np.argsort(hours, kind="stable")
        cuts = np.flatnonzero(np.diff(hours[order])) + 1
        for seg in np.split(order, cuts):
            hour = int(hours[seg[0]])
            thr = bank.calibration.threshold(hour)
            for pos in rounds(slots[seg]):
                idx = seg[pos]
                res = bank.step(slots[idx], ts[idx], x[idx])
                scores[idx] = res.score
                self._episodes(bank, kind, events, idx, slots[idx], res, thr, out)
            warm = scores[seg] > 0
            if warm.any():
                bank.calibration.add(hour, scores[seg][warm])
        return scores

    def _episodes(
        self,
        bank: BaselineBank,
        kind: str,
        events: list[SensorEvent],
        idx: np.ndarray,
        s: np.ndarray,
        res: StepResult,
        thr: float,
        out: list[Alert],
    ) -> None:
        p = bank.p
        a = bank._a  # noqa: SLF001 - the bank's arrays are this detector's state
        hot = res.score_t >= thr
        # without the young model's Student-t mapping it would alert: held one reading
        near = ~hot & (res.score >= thr)
        held = ~a["ep_on"][s] & (a["ep_below"][s] < 0)
        look = np.flatnonzero(hot | near | held | a["ep_on"][s])
        for j in look.tolist():
            i = int(s[j])
            score = float(res.score[j])
            ev = events[int(idx[j])]
            if a["ep_on"][i]:
                if score < p.clear_score and res.level_away[j] < p.clear_score:
                    a["ep_below"][i] += 1
                    if a["ep_below"][i] >= p.clear_readings:
                        # the episode is over: the slow drift statistic starts afresh
                        # (what it held was this episode's, already alerted)
                        a["ep_on"][i] = False
                        a["drift"][i] = 0.0
                        a["cusum"][i] = 0.0
                else:
                    a["ep_below"][i] = 0
                    a["ep_peak"][i] = max(float(a["ep_peak"][i]), score)
                continue
            if not hot[j] and not (held[j] and score >= p.clear_score):
                a["ep_below"][i] = -1 if near[j] else 0
                continue
            a["ep_on"][i], a["ep_first"][i], a["ep_peak"][i], a["ep_below"][i] = (
                True,
                ev.ts_ms,
                score,
                0,
            )
            day = bank.day_of(ev.ts_ms)
            if a["ep_day"][i] != day:
                a["ep_day"][i], a["day_alerts"][i] = day, 0
            if a["day_alerts"][i] >= p.max_alerts_per_sensor_day:
                bank.suppressed_ += 1
                continue
            a["day_alerts"][i] += 1
            out.append(self._alert(bank, kind, ev, j, res, thr))

    def _alert(
        self, bank: BaselineBank, kind: str, ev: SensorEvent, j: int, res: StepResult, thr: float
    ) -> Alert:
        p = bank.p
        # the residual that would just reach the threshold: surprise_thr / 2 percentiles
        surprise_thr = z_of_score(thr, p.half_score_surprise)
        z_thr = surprise_thr / -math.log10(TAIL_LEVEL) * float(res.tail[j])
        f, sd = float(res.forecast[j]), float(res.sigma[j])
        zs = {
            "residual": float(res.z_residual[j]),
            "level": float(res.z_profile[j]),
            "volatility": float(res.z_volatility[j]),
            "drift": float(res.z_drift[j]),
        }
        top = max(zs.values())
        features = {
            k: round(v, 2)
            for k, v in sorted(zs.items(), key=lambda kv: -kv[1])
            if v >= 0.5 * top and v > 0
        }
        surprise = float(res.surprise[j])
        return Alert.make(
            "sensor.anomaly",
            p.severity,
            ev.sensor,
            "sensor",
            ev.zones[0] if ev.zones else None,
            ev.lon,
            ev.lat,
            ts_ms=ev.ts_ms,
            first_ts_ms=ev.ts_ms,
            evidence={
                "sensor_kind": kind,
                "model": "ewma+baseline+season",
                "season": SEASONS[int(res.season[j])],
                "score": round(float(res.score[j]), 4),
                "threshold": round(thr, 4),
                "tail_probability": float(f"{10**-surprise:.3g}"),
                "value": ev.value,
                "expected": round(f, 6),
                "expected_range": [round(f - z_thr * sd, 6), round(f + z_thr * sd, 6)],
                "normal_level": round(float(res.profile_mean[j]), 6),
                "contributing": features,
                "unit": p.unit or ev.unit,
                "readings_learned": int(bank.field("n")[bank.slot(ev.sensor)]),
                "event_id": ev.id,
            },
        )

    @classmethod
    def contract_case(cls, seed: int) -> ContractCase:
        """A noise sensor with a +15 dB level shift after 60 quiet readings."""
        rng = random.Random(seed)
        det = cls({"noise": BaselineParams(warmup_readings=30, min_scale=0.5, unit="dB")})
        t0 = 1_781_528_400_000
        events: list[Event] = []
        for i in range(90):
            v = 55.0 + rng.gauss(0, 1.5) + (15.0 if i >= 60 else 0.0)
            events.append(
                SensorEvent(t0 + i * 60_000, "ns-contract", "noise", round(v, 2), 121.0, 32.0)
            )
        return ContractCase(
            detector=det,
            events=events,
            expect_kinds=frozenset(cls.kinds),
            anomaly_from=60,
            watermarks={i: events[i].ts_ms for i in range(len(events))},
        )


class AnomalyScorer:
    """The univariate API: one sensor's readings, ``score_one`` before ``learn_one``.

    ``score_one`` never learns; ``learn_one`` scores and learns and keeps the
    episode logic, so ``alerted`` tells whether that reading raised an alert.

    >>> sc = AnomalyScorer(BaselineParams(warmup_readings=10, min_scale=0.1))
    >>> for i in range(30):
    ...     sc.learn_one(i * 60_000, 10.0 + (0.2 if i % 2 else -0.2))
    >>> sc.score_one(30 * 60_000, 10.1) < 0.5 < sc.score_one(30 * 60_000, 25.0)
    True
    >>> sc.learn_one(30 * 60_000, 25.0); sc.alerted
    True
    """

    def __init__(
        self, params: BaselineParams, *, kind: str = "value", timezone: str = "Asia/Shanghai"
    ) -> None:
        self.kind = kind
        self.detector = SensorAnomalyDetector({kind: params}, timezone=timezone)
        self._slot = np.array([self.detector.bank(kind).slot("series")])
        self.alerted = False
        self.last_alert: Alert | None = None

    @classmethod
    def from_config(cls, cfg: Any, kind: str) -> AnomalyScorer:
        """From a loaded config's ``[anomaly.sensor.<kind>]`` (defaults if absent)."""
        anomaly = getattr(cfg, "anomaly", None)
        by_kind = getattr(anomaly, "sensor", {}) if anomaly is not None else {}
        params = by_kind.get(kind, BaselineParams())
        return cls(params, kind=kind, timezone=cfg.flow.timezone)

    def score_one(self, ts_ms: int, value: float) -> float:
        bank = self.detector.bank(self.kind)
        ts = np.array([ts_ms], np.int64)
        return float(bank.score_only(self._slot, ts, np.array([float(value)]))[0])

    def learn_one(self, ts_ms: int, value: float) -> None:
        out: list[Alert] = []
        ev = SensorEvent(int(ts_ms), "series", self.kind, float(value))
        self.detector.process(self.kind, [ev], out)
        self.alerted = bool(out)
        self.last_alert = out[0] if out else None
