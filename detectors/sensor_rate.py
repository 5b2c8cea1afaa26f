"""``sensor.rate``: a reading that rises (or falls) faster than a limit per hour.

The rate is the least-squares slope of the readings in the last ``window_s``
seconds of event time, in the sensor's unit per hour, so single noisy readings
and a tide's slow swing do not trip it while a surge does. It is judged only
once the window holds ``min_readings`` readings spanning ``min_span_s``. An
episode starts when the slope passes ``rise_per_h`` (or ``-fall_per_h``) and
ends once it is back within ``clear_ratio`` of the limit; one alert per episode.
Running sums make each reading O(1) however long the window. Readings older
than the sensor's latest are ignored (arrival order decides).

Timeline (window 20 min, rise limit 0.5 m/h, readings every 2 min)::

    t(min)   0 .. 20   22    24    26    28    30    ...  40
    level    3.0 3.0   3.05  3.10  3.15  3.20  3.25      3.50  (+1.5 m/h from 20 min)
    slope    0   0     .07   .19   .36   .55   .75       1.5
    alert                                ^ first_ts = the window's first reading (8 min)

>>> from citywatch.detectors.events import SensorEvent
>>> det = RateDetector({"water_level": RateParams(window_s=1200, rise_per_h=0.5,
...                                                min_readings=5, min_span_s=600)})
>>> out = []
>>> levels = [3.0] * 11 + [3.0 + 0.05 * k for k in range(1, 11)]
>>> for i, v in enumerate(levels):
...     det.on_event(SensorEvent(i * 120_000, "wl-1", "water_level", round(v, 3)), out)
>>> [(a.kind, a.ts_ms // 60_000, a.evidence["rate_per_h"]) for a in out]
[('sensor.rate', 28, 0.545)]
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from citywatch.detectors import params
from citywatch.detectors.alerts import Alert
from citywatch.detectors.base import ContractCase
from citywatch.detectors.events import Event, SensorEvent
from citywatch.detectors.sensor_kit import (
    T_CASE,
    PerSensorDetector,
    background_readings,
    merge_by_time,
    sensor_alert,
)
from citywatch.detectors.state import TuplePickled

HOUR_MS = 3_600_000


@dataclass(frozen=True, slots=True, kw_only=True)
class RateParams:
    """``[sensor.rate.<sensor kind>]``: the fastest allowed change, per hour.

    ``rise_per_h`` / ``fall_per_h`` are in the sensor's unit per hour (positive
    numbers; either or both).
    """

    window_s: int = 1800
    rise_per_h: float | None = None
    fall_per_h: float | None = None
    min_readings: int = 5
    min_span_s: int = 0
    clear_ratio: float = 0.5
    max_readings: int = 512
    severity: str = "orange"
    unit: str = ""

    def __post_init__(self) -> None:
        owner = "sensor.rate"
        params.positive(owner, "window_s", self.window_s)
        if self.rise_per_h is None and self.fall_per_h is None:
            msg = f'{owner}: set "rise_per_h" or "fall_per_h" (or both), e.g. rise_per_h = 0.6'
            raise ValueError(msg)
        for name in ("rise_per_h", "fall_per_h"):
            value = getattr(self, name)
            if value is not None:
                params.positive(owner, name, value)
        if self.min_readings < 3:
            msg = f'{owner}: "min_readings" must be >= 3 for a slope, got {self.min_readings}'
            raise ValueError(msg)
        params.non_negative(owner, "min_span_s", self.min_span_s)
        if self.min_span_s > self.window_s:
            msg = (
                f'{owner}: "min_span_s" {self.min_span_s} must not exceed '
                f'"window_s" {self.window_s}'
            )
            raise ValueError(msg)
        if not 0.0 <= self.clear_ratio <= 1.0:
            msg = f'{owner}: "clear_ratio" must be within [0, 1], got {self.clear_ratio}'
            raise ValueError(msg)
        if self.max_readings < self.min_readings:
            msg = f'{owner}: "max_readings" must be >= "min_readings", got {self.max_readings}'
            raise ValueError(msg)
        params.severity(owner, self.severity)


@dataclass(slots=True)
class _Slope(TuplePickled):
    """Readings in the window and their running sums (time in hours since ``origin``)."""

    origin: int
    samples: deque[tuple[int, float]] = field(default_factory=deque)
    n: int = 0
    st: float = 0.0
    sv: float = 0.0
    stt: float = 0.0
    stv: float = 0.0
    episode: int = 0  # +1 rising, -1 falling, 0 none

    def add(self, ts: int, v: float) -> None:
        t = (ts - self.origin) / HOUR_MS
        self.samples.append((ts, v))
        self.n += 1
        self.st += t
        self.sv += v
        self.stt += t * t
        self.stv += t * v

    def drop_oldest(self) -> None:
        ts, v = self.samples.popleft()
        t = (ts - self.origin) / HOUR_MS
        self.n -= 1
        self.st -= t
        self.sv -= v
        self.stt -= t * t
        self.stv -= t * v

    def rebase(self) -> None:
        """Recompute the sums from a recent origin (bounds rounding drift)."""
        samples = list(self.samples)
        self.samples.clear()
        self.origin = samples[0][0] if samples else self.origin
        self.n, self.st, self.sv, self.stt, self.stv = 0, 0.0, 0.0, 0.0, 0.0
        for ts, v in samples:
            self.add(ts, v)

    def slope(self) -> float:
        den = self.n * self.stt - self.st * self.st
        if den <= 1e-12:
            return 0.0
        return (self.n * self.stv - self.st * self.sv) / den


class RateDetector(PerSensorDetector[RateParams, _Slope]):
    """``sensor.rate`` per sensor kind."""

    kinds = ("sensor.rate",)

    def on_event(self, ev: Event, out: list[Alert]) -> None:
        got = self.reading(ev)
        if got is None:
            return
        ev, p = got
        s = self._state.get(ev.sensor, ev.ts_ms)
        if s is None:
            s = _Slope(ev.ts_ms)
            self._state.put(ev.sensor, s, ev.ts_ms)
        elif s.samples and ev.ts_ms <= s.samples[-1][0]:
            return
        s.add(ev.ts_ms, ev.value)
        horizon = ev.ts_ms - p.window_s * 1000
        while s.samples and (s.samples[0][0] < horizon or s.n > p.max_readings):
            s.drop_oldest()
        if ev.ts_ms - s.origin > 4 * p.window_s * 1000:
            s.rebase()
        if s.n < p.min_readings or ev.ts_ms - s.samples[0][0] < p.min_span_s * 1000:
            return
        rate = s.slope()
        rising = p.rise_per_h is not None and rate > p.rise_per_h
        falling = p.fall_per_h is not None and rate < -p.fall_per_h
        if s.episode == 0 and (rising or falling):
            s.episode = 1 if rising else -1
            self._alert(ev, p, s, rate, out)
        elif s.episode > 0 and p.rise_per_h is not None:
            if rate <= p.rise_per_h * p.clear_ratio:
                s.episode = 0
        elif s.episode < 0 and p.fall_per_h is not None and rate >= -p.fall_per_h * p.clear_ratio:
            s.episode = 0

    def _alert(
        self, ev: SensorEvent, p: RateParams, s: _Slope, rate: float, out: list[Alert]
    ) -> None:
        first_ts, first_value = s.samples[0]
        limit = p.rise_per_h if s.episode > 0 else p.fall_per_h
        out.append(
            sensor_alert(
                "sensor.rate",
                p.severity,
                ev,
                ts_ms=ev.ts_ms,
                first_ts_ms=first_ts,
                evidence={
                    "sensor_kind": ev.kind,
                    "direction": "rise" if s.episode > 0 else "fall",
                    "rate_per_h": round(rate, 3),
                    "limit_per_h": limit,
                    "window_s": p.window_s,
                    "readings": s.n,
                    "from_value": first_value,
                    "value": ev.value,
                    "unit": p.unit or ev.unit,
                    "event_id": ev.id,
                },
            )
        )

    @classmethod
    def contract_case(cls, seed: int) -> ContractCase:
        """Six gauges swinging with the tide; from ``anomaly_from`` on one rises 2 m/h."""
        det = cls(
            {
                "water_level": RateParams(
                    window_s=1800, rise_per_h=0.6, min_readings=10, min_span_s=1200
                )
            }
        )
        streams = [
            background_readings(seed, f"wl-{i}", "water_level", 3.0, T_CASE, 120, 60)
            for i in range(6)
        ]
        surge = streams[4]
        start = surge[80].ts_ms
        streams[4] = surge[:80] + [
            SensorEvent(
                ev.ts_ms,
                ev.sensor,
                ev.kind,
                round(ev.value + 2.0 * (ev.ts_ms - start) / HOUR_MS, 3),
                ev.lon,
                ev.lat,
                id=ev.id,
            )
            for ev in surge[80:]
        ]
        events = merge_by_time(*streams)
        anomaly_from = events.index(streams[4][80])
        return ContractCase(det, events, frozenset(cls.kinds), anomaly_from)
