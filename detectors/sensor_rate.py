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

from array import array
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from citywatch.detectors import params
from citywatch.detectors.alerts import Alert
from citywatch.detectors.base import ContractCase, plain_state
from citywatch.detectors.events import Event, SensorEvent
from citywatch.detectors.sensor_kit import (
    T_CASE,
    PerSensorDetector,
    background_readings,
    merge_by_time,
    sensor_alert,
)
from citywatch.detectors.slot_keys import Col, Column, slots_from_rows
from citywatch.detectors.state import Snapshot, TuplePickled

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
    """A sensor's window as state version 1 kept it (read by the migration to columns)."""

    origin: int
    samples: deque[tuple[int, float]] = field(default_factory=deque)
    n: int = 0
    st: float = 0.0
    sv: float = 0.0
    stt: float = 0.0
    stv: float = 0.0
    episode: int = 0  # +1 rising, -1 falling, 0 none


# A sensor's window as a row: the readings' running sums (time in hours since
# ``origin``), where its readings start in its ring (``head``) and how many it holds
# (``n``), and its episode (+1 rising, -1 falling, 0 none). The readings themselves are
# in two rings (times, values) of ``width`` places per slot, one flat array each.
_SLOPE_COLUMNS: dict[str, Column] = {
    "origin": ("q", 0),
    "head": ("q", 0),
    "n": ("q", 0),
    "st": ("d", 0.0),
    "sv": ("d", 0.0),
    "stt": ("d", 0.0),
    "stv": ("d", 0.0),
    "episode": ("b", 0),
}
WIDTH = 32  # ring places per sensor to start with (doubled when a window needs more)


def _to_columns(data: dict[str, Any]) -> dict[str, Any]:
    """State version 1 -> 2: ``_Slope`` records of a ``KeyedState`` become rows of
    columns, their readings the rings."""
    old = data["_state"]
    if not (isinstance(old, Snapshot) and old.kind == "KeyedState"):
        return data
    _kind, rows = plain_state(old)
    width = WIDTH
    while any(len(rec.samples) > width for _k, _s, rec in rows):
        width *= 2
    times, values = (
        array("q", bytes(8 * width * len(rows))),
        array("d", [0.0]) * (width * len(rows)),
    )

    def fill(col: dict[str, Col], s: int, rec: _Slope) -> None:
        for name in ("origin", "n", "st", "sv", "stt", "stv", "episode"):
            col[name][s] = getattr(rec, name)
        for j, (ts, v) in enumerate(rec.samples):
            times[s * width + j] = ts
            values[s * width + j] = v

    data["_state"] = slots_from_rows(rows, _SLOPE_COLUMNS, fill)
    data["_times"], data["_values"], data["_width"] = times, values, width
    return data


class RateDetector(PerSensorDetector[RateParams]):
    """``sensor.rate`` per sensor kind; each sensor's window a row of columns and a
    ring of readings."""

    kinds = ("sensor.rate",)

    COLUMNS = _SLOPE_COLUMNS
    STATE = ("_state", "_times", "_values", "_width")
    STATE_VERSION = 2  # 2: windows as rows of columns and rings (1: _Slope records)
    MIGRATIONS = {1: _to_columns}

    def __init__(self, by_kind: Mapping[str, RateParams], *, idle_evict_s: int = 24 * 3600) -> None:
        super().__init__(by_kind, idle_evict_s=idle_evict_s)
        col = self._state.col
        self._origin, self._head, self._n = col["origin"], col["head"], col["n"]
        self._st, self._sv, self._stt, self._stv = col["st"], col["sv"], col["stt"], col["stv"]
        self._episode = col["episode"]
        self._width = WIDTH
        self._times = array("q")  # slot * width + place -> a reading's time
        self._values = array("d")  # ... and its value

    def on_event(self, ev: Event, out: list[Alert]) -> None:
        got = self.reading(ev)
        if got is None:
            return
        ev, p = got
        ts = ev.ts_ms
        s = self._state.slot(ev.sensor, ts)
        if s < 0:
            s = self._state.add(ev.sensor, ts)
            self._origin[s] = ts
            if len(self._times) < (s + 1) * self._width:  # a new slot: its ring
                self._times.frombytes(bytes(8 * self._width))
                self._values.frombytes(bytes(8 * self._width))
        elif self._n[s] and ts <= self._times[self._at(s, self._n[s] - 1)]:
            return
        self._add(s, ts, ev.value)
        horizon = ts - p.window_s * 1000
        times, n = self._times, self._n
        while n[s] and (times[s * self._width + self._head[s]] < horizon or n[s] > p.max_readings):
            self._drop_oldest(s)
        if ts - self._origin[s] > 4 * p.window_s * 1000:
            self._rebase(s)
        first = s * self._width + self._head[s]
        if n[s] < p.min_readings or ts - times[first] < p.min_span_s * 1000:
            return
        rate = self._slope(s)
        rising = p.rise_per_h is not None and rate > p.rise_per_h
        falling = p.fall_per_h is not None and rate < -p.fall_per_h
        episode = self._episode[s]
        if episode == 0 and (rising or falling):
            self._episode[s] = 1 if rising else -1
            self._alert(ev, p, s, rate, out)
        elif episode > 0 and p.rise_per_h is not None:
            if rate <= p.rise_per_h * p.clear_ratio:
                self._episode[s] = 0
        elif episode < 0 and p.fall_per_h is not None and rate >= -p.fall_per_h * p.clear_ratio:
            self._episode[s] = 0

    def _at(self, s: int, j: int) -> int:
        """The place of the ``j``-th oldest reading of slot ``s`` in the rings."""
        return s * self._width + (self._head[s] + j) % self._width

    def _add(self, s: int, ts: int, v: float) -> None:
        n = self._n[s]
        if n >= self._width:
            self._widen(n + 1)
        at = self._at(s, n)
        self._times[at] = ts
        self._values[at] = v
        self._sum(s, ts, v)

    def _sum(self, s: int, ts: int, v: float) -> None:
        t = (ts - self._origin[s]) / HOUR_MS
        self._n[s] += 1
        self._st[s] += t
        self._sv[s] += v
        self._stt[s] += t * t
        self._stv[s] += t * v

    def _drop_oldest(self, s: int) -> None:
        at = s * self._width + self._head[s]
        ts, v = self._times[at], self._values[at]
        self._head[s] = (self._head[s] + 1) % self._width
        t = (ts - self._origin[s]) / HOUR_MS
        self._n[s] -= 1
        self._st[s] -= t
        self._sv[s] -= v
        self._stt[s] -= t * t
        self._stv[s] -= t * v

    def _rebase(self, s: int) -> None:
        """Recompute the sums from a recent origin (bounds rounding drift)."""
        n = self._n[s]
        places = [self._at(s, j) for j in range(n)]
        if places:
            self._origin[s] = self._times[places[0]]
        self._n[s] = 0
        self._st[s] = self._sv[s] = self._stt[s] = self._stv[s] = 0.0
        for at in places:
            self._sum(s, self._times[at], self._values[at])

    def _widen(self, need: int) -> None:
        """Rings of at least ``need`` places per slot; each slot's readings move to the
        start of its new ring, oldest first."""
        old, width = self._width, self._width
        while width < need:
            width *= 2
        slots = len(self._times) // old
        times, values = array("q", bytes(8 * width * slots)), array("d", bytes(8 * width * slots))
        for s in range(slots):
            head = self._head[s]
            for j in range(old):
                src = s * old + (head + j) % old
                times[s * width + j] = self._times[src]
                values[s * width + j] = self._values[src]
            self._head[s] = 0
        self._times, self._values, self._width = times, values, width

    def _slope(self, s: int) -> float:
        n, st = self._n[s], self._st[s]
        den = n * self._stt[s] - st * st
        if den <= 1e-12:
            return 0.0
        return (n * self._stv[s] - st * self._sv[s]) / den

    def _alert(self, ev: SensorEvent, p: RateParams, s: int, rate: float, out: list[Alert]) -> None:
        first = s * self._width + self._head[s]
        first_ts, first_value = self._times[first], self._values[first]
        episode = self._episode[s]
        limit = p.rise_per_h if episode > 0 else p.fall_per_h
        out.append(
            sensor_alert(
                "sensor.rate",
                p.severity,
                ev,
                ts_ms=ev.ts_ms,
                first_ts_ms=first_ts,
                evidence={
                    "sensor_kind": ev.kind,
                    "direction": "rise" if episode > 0 else "fall",
                    "rate_per_h": round(rate, 3),
                    "limit_per_h": limit,
                    "window_s": p.window_s,
                    "readings": self._n[s],
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
