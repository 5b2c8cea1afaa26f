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

from collections.abc import Mapping
from dataclasses import dataclass

from citywatch.detectors import params
from citywatch.detectors.alerts import Alert
from citywatch.detectors.base import ContractCase
from citywatch.detectors.events import Event, SensorEvent
from citywatch.detectors.sensor_kit import (
    T_CASE,
    PerSensorDetector,
    background_readings,
    keyed_to_slots,
    merge_by_time,
)
from citywatch.detectors.slot_keys import Col, Column


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
    """An episode as state version 1 kept it (read by the migration to columns)."""

    first_ts: int
    last_ts: int
    readings: int = 1
    peak: float = 0.0
    alerted: bool = False


_EPISODE_COLUMNS: dict[str, Column] = {
    "first_ts": ("q", 0),
    "last_ts": ("q", 0),
    "readings": ("q", 1),
    "peak": ("d", 0.0),
    "alerted": ("b", 0),
}


def _fill_episode(col: dict[str, Col], s: int, ep: _Episode) -> None:
    col["first_ts"][s] = ep.first_ts
    col["last_ts"][s] = ep.last_ts
    col["readings"][s] = ep.readings
    col["peak"][s] = ep.peak
    col["alerted"][s] = ep.alerted


class ThresholdDetector(PerSensorDetector[ThresholdParams]):
    """``sensor.threshold``; a sensor beyond its limit has its episode as a row of
    columns (first and last time, readings beyond, peak, alerted)."""

    kinds = ("sensor.threshold",)

    COLUMNS = _EPISODE_COLUMNS
    STATE_VERSION = 2  # 2: episodes as rows of columns (1: a KeyedState of _Episode)
    MIGRATIONS = {1: keyed_to_slots(_EPISODE_COLUMNS, _fill_episode)}

    def __init__(
        self, by_kind: Mapping[str, ThresholdParams], *, idle_evict_s: int = 24 * 3600
    ) -> None:
        super().__init__(by_kind, idle_evict_s=idle_evict_s)
        col = self._state.col
        self._first, self._last, self._peak = col["first_ts"], col["last_ts"], col["peak"]
        self._readings, self._alerted = col["readings"], col["alerted"]

    def on_event(self, ev: Event, out: list[Alert]) -> None:
        got = self.reading(ev)
        if got is None:
            return
        ev, p = got
        ts = ev.ts_ms
        s = self._state.slot(ev.sensor, ts)
        if s < 0:
            if p.beyond(ev.value):
                s = self._state.add(ev.sensor, ts)
                self._first[s] = self._last[s] = ts
                self._peak[s] = ev.value
                self._maybe_alert(ev, p, s, out)
            return
        if ts <= self._last[s]:
            return
        if p.cleared(ev.value):
            self._state.pop(ev.sensor)
            return
        self._last[s] = ts
        if p.beyond(ev.value):
            self._readings[s] += 1
            peak = self._peak[s]
            worse = ev.value > peak if p.direction == "above" else ev.value < peak
            if worse:
                self._peak[s] = ev.value
        self._maybe_alert(ev, p, s, out)

    def _maybe_alert(self, ev: SensorEvent, p: ThresholdParams, s: int, out: list[Alert]) -> None:
        readings = self._readings[s]
        if self._alerted[s] or readings < p.min_readings:
            return
        first = self._first[s]
        if ev.ts_ms - first < p.min_over_s * 1000:
            return
        self._alerted[s] = 1
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
                first_ts_ms=first,
                evidence={
                    "sensor_kind": ev.kind,
                    "value": ev.value,
                    "peak": self._peak[s],
                    "limit": p.limit,
                    "direction": p.direction,
                    "unit": p.unit or ev.unit,
                    "readings_beyond": readings,
                    "duration_s": (ev.ts_ms - first) // 1000,
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
