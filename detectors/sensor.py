"""Sensor detectors.

``sensor.threshold``: a reading beyond a limit for a kind of sensor (levee
water level above 4.5 m, PM10 above 150 µg/m³), confirmed by persistence
(``min_readings`` consecutive readings beyond, lasting at least ``min_over_s``)
and cleared with hysteresis (the episode ends only once a reading is back past
``clear_at``). One alert per episode.

Timeline (limit 4.5, clear at 4.3, two readings needed)::

    value  4.2  4.6  4.7  4.4  4.8  4.2  4.6
    state   .   ov   OV   OV   OV    .   ov
    alert            ^ first_ts = 2nd reading          (4.4 keeps the episode)

>>> from citywatch.detectors.events import SensorEvent
>>> det = ThresholdDetector({"water_level": ThresholdParams(limit=4.5, clear_at=4.3,
...                                                           min_readings=2)})
>>> out = []
>>> for i, v in enumerate([4.2, 4.6, 4.7, 4.4, 4.8, 4.2, 4.6]):
...     det.on_event(SensorEvent(i * 60_000, "wl-1", "water_level", v), out)
>>> [(a.kind, a.evidence["peak"]) for a in out]
[('sensor.threshold', 4.7)]
"""

from __future__ import annotations

from dataclasses import dataclass

from citywatch.detectors import params
from citywatch.detectors.alerts import Alert
from citywatch.detectors.base import ContractCase
from citywatch.detectors.events import Event, SensorEvent
from citywatch.detectors.sensor_kit import (
    T_CASE,
    PerSensorDetector,
    background_readings,
    merge_by_time,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ThresholdParams:
    limit: float
    direction: str = "above"
    clear_at: float | None = None
    min_readings: int = 1
    min_over_s: int = 0
    severity: str = "orange"
    unit: str = ""

    def __post_init__(self) -> None:
        owner = "sensor.threshold"
        if self.direction not in ("above", "below"):
            msg = f'{owner}: "direction" must be "above" or "below", got {self.direction!r}'
            raise ValueError(msg)
        params.positive(owner, "min_readings", self.min_readings)
        params.non_negative(owner, "min_over_s", self.min_over_s)
        params.severity(owner, self.severity)
        clear = self.clear_level
        if (self.direction == "above" and clear > self.limit) or (
            self.direction == "below" and clear < self.limit
        ):
            msg = f'{owner}: "clear_at" {clear} must not be beyond "limit" {self.limit}'
            raise ValueError(msg)

    @property
    def clear_level(self) -> float:
        return self.limit if self.clear_at is None else self.clear_at

    def beyond(self, value: float) -> bool:
        return value > self.limit if self.direction == "above" else value < self.limit

    def cleared(self, value: float) -> bool:
        clear = self.clear_level
        return value <= clear if self.direction == "above" else value >= clear


@dataclass(slots=True)
class _Episode:
    first_ts: int
    last_ts: int
    readings: int = 1
    peak: float = 0.0
    alerted: bool = False


class ThresholdDetector(PerSensorDetector[ThresholdParams, _Episode]):
    kinds = ("sensor.threshold",)

    def on_event(self, ev: Event, out: list[Alert]) -> None:
        got = self.reading(ev)
        if got is None:
            return
        ev, p = got
        ep = self._state.get(ev.sensor, ev.ts_ms)
        if ep is None:
            if p.beyond(ev.value):
                self._state.put(ev.sensor, _Episode(ev.ts_ms, ev.ts_ms, 1, ev.value), ev.ts_ms)
                self._maybe_alert(ev, p, self._state.get(ev.sensor, ev.ts_ms), out)
            return
        if ev.ts_ms <= ep.last_ts:
            return
        if p.cleared(ev.value):
            self._state.pop(ev.sensor)
            return
        ep.last_ts = ev.ts_ms
        if p.beyond(ev.value):
            ep.readings += 1
            worse = ev.value > ep.peak if p.direction == "above" else ev.value < ep.peak
            if worse:
                ep.peak = ev.value
        self._maybe_alert(ev, p, ep, out)

    def _maybe_alert(
        self, ev: SensorEvent, p: ThresholdParams, ep: _Episode | None, out: list[Alert]
    ) -> None:
        if ep is None or ep.alerted or ep.readings < p.min_readings:
            return
        if ev.ts_ms - ep.first_ts < p.min_over_s * 1000:
            return
        ep.alerted = True
        out.append(
            Alert.make(
                "sensor.threshold",
                p.severity,
                ev.sensor,
                "sensor",
                ev.zones[0] if ev.zones else None,
                ev.lon,
                ev.lat,
                ts_ms=ev.ts_ms,
                first_ts_ms=ep.first_ts,
                evidence={
                    "sensor_kind": ev.kind,
                    "value": ev.value,
                    "peak": ep.peak,
                    "limit": p.limit,
                    "direction": p.direction,
                    "unit": p.unit or ev.unit,
                    "readings_beyond": ep.readings,
                    "duration_s": (ev.ts_ms - ep.first_ts) // 1000,
                    "event_id": ev.id,
                },
            )
        )

    @classmethod
    def contract_case(cls, seed: int) -> ContractCase:
        """Six gauges around 3 m; from ``anomaly_from`` on one climbs past 4.5 m."""
        det = cls({"water_level": ThresholdParams(limit=4.5, clear_at=4.3, min_readings=2)})
        streams = [
            background_readings(seed, f"wl-{i}", "water_level", 3.0, T_CASE, 80, 60)
            for i in range(6)
        ]
        high = streams[1]
        streams[1] = high[:50] + [
            SensorEvent(ev.ts_ms, ev.sensor, ev.kind, 4.6 + 0.01 * k, ev.lon, ev.lat, id=ev.id)
            for k, ev in enumerate(high[50:])
        ]
        events = merge_by_time(*streams)
        return ContractCase(det, events, frozenset(cls.kinds), events.index(streams[1][50]))
