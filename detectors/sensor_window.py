"""``sensor.window``: an event-time window aggregate over a limit (hourly PM10 mean).

Windows are tumbling (``slide_s`` unset) or sliding (``size_s`` a multiple of
``slide_s``), aligned to the epoch (so hourly windows are clock hours). The
aggregate is the ``mean`` or ``max`` of the readings, or the ``count`` of
readings above ``count_above``. Each sensor keeps one small bucket per slide
(count, sum, max, count above), so an event costs O(1) and a window is judged
from ``size_s / slide_s`` buckets when it closes.

A window closes when the watermark reaches its end plus ``allowed_lateness_s``;
windows with fewer than ``min_readings`` readings are not judged. A reading
whose first window has already closed is late: it is dropped, counted per
detector (``late_events_``) and per sensor, and the count is surfaced in the
evidence of that sensor's next alert. (In the flow, events behind the
watermark already go to the late side output before any detector sees them.)
Consecutive windows over the limit are one episode and one alert; the episode
ends with a judged window at or below ``clear_at``. The alert's ``ts`` is the
window's end and its ``first_ts`` (hence its id) the window's start, so neither
depends on when the watermark arrives.

In the flow the "watermark" this detector gets runs near the front of event time
(``front_lead_ms``, see ``sensor_health``), so a window is judged a few seconds
after it ends (plus ``allowed_lateness_s``); a reading that comes behind that
clock is late for every window closed by the clock it came at (``on_arrival``),
whatever the batching.

Timeline (tumbling 10 min, mean over 100, no allowed lateness)::

    t(min)     0 ......... 10 ............ 20 .......... 30
    readings   80  90  85 | 120  130  125  | 90  85  80  |
    closes at              10               20            30   (watermark >= end)
    mean       85           125              85
    alert                                    ^ ts = 20 min (window end), first_ts = 10 min

>>> from citywatch.detectors.events import SensorEvent
>>> det = WindowDetector({"pm10": [WindowParams(size_s=600, aggregate="mean", limit=100)]})
>>> out = []
>>> for i, v in enumerate([80, 90, 85, 120, 130, 125, 90, 85, 80]):
...     det.on_event(SensorEvent(i * 200_000, "pm-1", "pm10", v), out)
...     det.on_watermark(i * 200_000, out)
>>> det.on_watermark(1_800_000, out)
>>> [(a.kind, a.first_ts_ms // 60_000, a.ts_ms // 60_000, a.evidence["value"]) for a in out]
[('sensor.window', 10, 20, 125.0)]
"""

from __future__ import annotations

import math
import random
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from citywatch.detectors import params
from citywatch.detectors.alerts import Alert
from citywatch.detectors.base import ContractCase, LaneDetector, plain_state
from citywatch.detectors.events import Event, SensorEvent, format_ts
from citywatch.detectors.lanes import LaneTimers
from citywatch.detectors.sensor_kit import T_CASE, background_readings, merge_by_time
from citywatch.detectors.slot_keys import UNSET, Codes, Col, Column, SlotKeys, slots_from_rows
from citywatch.detectors.state import TuplePickled
from citywatch.detectors.watermark import NO_WATERMARK

AGGREGATES = ("mean", "max", "count")


@dataclass(frozen=True, slots=True, kw_only=True)
class WindowParams:
    """``[[sensor.window.<sensor kind>]]``: one window rule for a kind of sensor."""

    size_s: int = 3600
    slide_s: int | None = None
    aggregate: str = "mean"
    limit: float
    clear_at: float | None = None
    count_above: float | None = None
    min_readings: int = 1
    allowed_lateness_s: int = 0
    severity: str = "yellow"
    unit: str = ""

    def __post_init__(self) -> None:
        owner = "sensor.window"
        params.positive(owner, "size_s", self.size_s)
        slide = self.slide
        params.positive(owner, "slide_s", slide)
        if self.size_s % slide:
            msg = (
                f'{owner}: "size_s" ({self.size_s}) must be a multiple of "slide_s" ({slide}); '
                "e.g. size_s = 3600, slide_s = 600"
            )
            raise ValueError(msg)
        if self.aggregate not in AGGREGATES:
            known = ", ".join(AGGREGATES)
            msg = f'{owner}: "aggregate" must be one of {known}, got {self.aggregate!r}'
            raise ValueError(msg)
        if (self.aggregate == "count") != (self.count_above is not None):
            msg = f'{owner}: "count_above" is required with aggregate "count", and only then'
            raise ValueError(msg)
        if self.clear_at is not None and self.clear_at > self.limit:
            msg = f'{owner}: "clear_at" {self.clear_at} must not exceed "limit" {self.limit}'
            raise ValueError(msg)
        params.positive(owner, "min_readings", self.min_readings)
        params.non_negative(owner, "allowed_lateness_s", self.allowed_lateness_s)
        params.severity(owner, self.severity)

    @property
    def slide(self) -> int:
        return self.size_s if self.slide_s is None else self.slide_s

    @property
    def clear_level(self) -> float:
        return self.limit if self.clear_at is None else self.clear_at


@dataclass(slots=True)
class _Windows(TuplePickled):
    """One sensor under one rule as state versions 1-2 kept it (read by the migration
    to columns): bucket start -> [count, sum, max, count above]."""

    kind: str
    rule: int
    buckets: dict[int, list[float]] = field(default_factory=dict)
    next_end: int | None = None
    timer_due: int | None = None
    alerted: bool = False
    late: int = 0
    last: SensorEvent | None = None


# One sensor under one rule as a row: its kind (a code of the detector's text table) and
# rule, the end of the next window to judge and its timer (UNSET: none), whether an
# episode is open, its late readings, of its latest reading what an alert shows (time,
# kind, unit, first zone, position; NaN: none), and how many buckets it holds. The
# buckets (start, count, sum, max, count above) are in flat arrays of ``width`` places
# per slot, in the order they were opened.
_WINDOW_COLUMNS: dict[str, Column] = {
    "kind": ("i", 0),
    "rule": ("i", 0),
    "next_end": ("q", UNSET),
    "timer": ("q", UNSET),
    "alerted": ("b", 0),
    "late": ("q", 0),
    "has_last": ("b", 0),
    "last_ts": ("q", 0),
    "last_kind": ("i", -1),
    "last_unit": ("i", -1),
    "last_zone": ("i", -1),
    "last_lon": ("d", math.nan),
    "last_lat": ("d", math.nan),
    "buckets": ("q", 0),
}
_BUCKET_FIELDS = (("start", "q"), ("count", "d"), ("sum", "d"), ("max", "d"), ("above", "d"))
WIDTH = 8  # bucket places per row to start with (doubled when a row needs more)


def _set_last(col: dict[str, Col], s: int, ev: SensorEvent, codes: Codes) -> None:
    col["has_last"][s] = 1
    col["last_ts"][s] = ev.ts_ms
    col["last_kind"][s] = codes.code(ev.kind)
    col["last_unit"][s] = codes.code(ev.unit)
    col["last_zone"][s] = codes.code(ev.zones[0]) if ev.zones else -1
    col["last_lon"][s] = math.nan if ev.lon is None else ev.lon
    col["last_lat"][s] = math.nan if ev.lat is None else ev.lat


def _empty_buckets(width: int, slots: int) -> dict[str, Any]:
    cols: dict[str, Any] = {
        name: array(code, bytes(8 * width * slots)) for name, code in _BUCKET_FIELDS
    }
    return {"width": width, **cols}


def _to_columns(data: dict[str, Any]) -> dict[str, Any]:
    """State version 2 -> 3: ``_Windows`` records of a ``KeyedState`` become rows of
    columns and their buckets the flat bucket arrays."""
    codes = Codes()
    _kind, rows = plain_state(data["_state"])
    width = WIDTH
    while any(len(w.buckets) > width for _k, _s, w in rows):
        width *= 2
    buckets = _empty_buckets(width, len(rows))

    def fill(col: dict[str, Col], s: int, w: _Windows) -> None:
        col["kind"][s] = codes.code(w.kind)
        col["rule"][s] = w.rule
        col["next_end"][s] = UNSET if w.next_end is None else w.next_end
        col["timer"][s] = UNSET if w.timer_due is None else w.timer_due
        col["alerted"][s] = w.alerted
        col["late"][s] = w.late
        if w.last is not None:
            _set_last(col, s, w.last, codes)
        col["buckets"][s] = len(w.buckets)
        for j, (start, (cnt, sm, mx, ab)) in enumerate(w.buckets.items()):
            at = s * width + j
            for (name, _code), value in zip(_BUCKET_FIELDS, (start, cnt, sm, mx, ab), strict=True):
                buckets[name][at] = value

    data["_state"] = slots_from_rows(rows, _WINDOW_COLUMNS, fill)
    data["_text"] = codes.state()
    data["_buckets"] = buckets
    return data


class WindowDetector(LaneDetector):
    """``sensor.window``: rules per sensor kind, one row per (sensor, rule)."""

    kinds = ("sensor.window",)
    event_type = "sensor"

    STATE = ("_state", "_timers", "_wm", "late_events_", "_text", "_buckets")
    # 2: timers filed per lane (a DueTimers snapshot restores into one); 3: rows of columns
    STATE_VERSION = 3
    MIGRATIONS = {1: lambda data: data, 2: _to_columns}

    def __init__(
        self,
        by_kind: Mapping[str, Sequence[WindowParams]],
        *,
        idle_evict_s: int = 24 * 3600,
    ) -> None:
        self.by_kind = {kind: tuple(rules) for kind, rules in by_kind.items()}
        longest = max(
            (p.size_s + p.allowed_lateness_s for rules in self.by_kind.values() for p in rules),
            default=0,
        )
        if idle_evict_s <= longest:
            msg = (
                f'sensor.window: "idle_evict_s" ({idle_evict_s}) must exceed the longest '
                f"window plus lateness ({longest} s)"
            )
            raise ValueError(msg)
        self.idle_evict_s = idle_evict_s
        self._state = SlotKeys(idle_evict_s * 1000, _WINDOW_COLUMNS)
        self._text = Codes()  # sensor kinds, units and zones of the rows
        col = self._col = self._state.col
        self._next_end, self._timer, self._nb = col["next_end"], col["timer"], col["buckets"]
        self._buckets = _empty_buckets(WIDTH, 0)
        self._timers = LaneTimers()
        self._wm = NO_WATERMARK
        self.late_events_ = 0

    def on_event(self, ev: Event, out: list[Alert]) -> None:
        if not isinstance(ev, SensorEvent):
            return
        rules = self.by_kind.get(ev.kind)
        if not rules:
            return
        # A reading that came when the clock was already past its stamp is late for
        # every window that closed by then, whatever the batching.
        at = self.arrived_at(ev)
        came = self._wm if at is None or at <= ev.ts_ms else max(self._wm, at)
        lane = self.lane_of(ev)
        for i, p in enumerate(rules):
            key = f"{ev.sensor}|{i}" if i else ev.sensor
            self._add(key, ev, p, i, came, lane)

    def _add(
        self, key: str, ev: SensorEvent, p: WindowParams, rule: int, came: int, lane: str
    ) -> None:
        slide_ms = p.slide * 1000
        ts = ev.ts_ms
        start = ts - ts % slide_ms
        s = self._state.slot(key, ts)
        col = self._col
        if s < 0:
            s = self._state.add(key, ts)
            col["kind"][s] = self._text.code(ev.kind)
            col["rule"][s] = rule
            b = self._buckets
            if len(b["start"]) < (s + 1) * b["width"]:  # a new slot: its bucket places
                for name, _code in _BUCKET_FIELDS:
                    b[name].frombytes(bytes(8 * b["width"]))
        if start + slide_ms + p.allowed_lateness_s * 1000 <= came:
            col["late"][s] += 1
            self.late_events_ += 1
            return
        if not col["has_last"][s] or ts >= col["last_ts"][s]:
            _set_last(col, s, ev, self._text)
        value = ev.value
        above = 1.0 if p.count_above is not None and value > p.count_above else 0.0
        b = self._buckets
        base, nb = s * b["width"], self._nb[s]
        starts = b["start"]
        j = nb - 1
        while j >= 0 and starts[base + j] != start:
            j -= 1
        if j < 0:
            if nb >= b["width"]:
                self._widen(nb + 1)
                b = self._buckets
                base = s * b["width"]
            at = base + nb
            b["start"][at] = start
            b["count"][at] = 1.0
            b["sum"][at] = b["max"][at] = value
            b["above"][at] = above
            self._nb[s] = nb + 1
            if nb + 1 > 4 * (p.size_s // p.slide) + 8:  # a clock far off: keep state bounded
                here = b["start"][base : base + nb + 1]
                self._drop(s, [here.index(min(here))])
        else:
            at = base + j
            b["count"][at] += 1.0
            b["sum"][at] += value
            b["max"][at] = max(b["max"][at], value)
            b["above"][at] += above
        end = start + slide_ms
        if self._next_end[s] == UNSET or end < self._next_end[s]:
            self._next_end[s] = end
            self._schedule(key, s, p, lane)

    def _drop(self, s: int, places: list[int]) -> None:
        """Remove the buckets at ``places`` (ascending) of row ``s``; the others keep
        their order."""
        b, nb = self._buckets, self._nb[s]
        base = s * b["width"]
        gone = set(places)
        keep = [j for j in range(nb) if j not in gone]
        for name, _code in _BUCKET_FIELDS:
            arr = b[name]
            arr[base : base + len(keep)] = array(arr.typecode, [arr[base + j] for j in keep])
        self._nb[s] = len(keep)

    def _widen(self, need: int) -> None:
        """Bucket places for at least ``need`` buckets per row."""
        b = self._buckets
        old = width = b["width"]
        while width < need:
            width *= 2
        slots = len(b["start"]) // old
        new = _empty_buckets(width, slots)
        for name, _code in _BUCKET_FIELDS:
            src, dst = b[name], new[name]
            for s in range(slots):
                dst[s * width : s * width + old] = src[s * old : (s + 1) * old]
        self._buckets = new

    def _schedule(self, key: str, s: int, p: WindowParams, lane: str) -> None:
        next_end = self._next_end[s]
        if next_end == UNSET:
            return
        due = next_end + p.allowed_lateness_s * 1000
        timer = self._timer[s]
        if timer == UNSET or due < timer:
            self._timer[s] = due
            self._timers.add(key, due, lane)

    def advance(self, wm_ms: int, lanes: Mapping[str, int], moved: bool, out: list[Alert]) -> None:
        for due, key, lane in self._timers.pop_due(wm_ms, lanes):
            s = self._state.peek(key)
            if s < 0 or self._timer[s] != due:
                continue
            self._timer[s] = UNSET
            kind = self._text.text[self._col["kind"][s]]
            p = self.by_kind[kind][self._col["rule"][s]]
            self._close(key, s, p, self.clock_of(lane, wm_ms), lane, out)
        if moved:
            self._state.evict_idle(wm_ms)

    def _close(
        self, key: str, s: int, p: WindowParams, wm_ms: int, lane: str, out: list[Alert]
    ) -> None:
        slide_ms, size_ms, late_ms = p.slide * 1000, p.size_s * 1000, p.allowed_lateness_s * 1000
        next_end = self._next_end
        while next_end[s] != UNSET and next_end[s] + late_ms <= wm_ms:
            end = next_end[s]
            self._judge(key, s, p, end, out)
            b = self._buckets
            base = s * b["width"]
            starts = b["start"][base : base + self._nb[s]]
            old = [j for j, start in enumerate(starts) if start < end - size_ms + slide_ms]
            if old:
                self._drop(s, old)
            if not self._nb[s]:
                next_end[s] = UNSET
            else:  # skip windows with no readings at all
                first = min(b["start"][base : base + self._nb[s]])
                next_end[s] = max(end + slide_ms, first + slide_ms)
        self._schedule(key, s, p, lane)

    def _judge(self, key: str, s: int, p: WindowParams, end: int, out: list[Alert]) -> None:
        start = end - p.size_s * 1000
        n = total = above = 0.0
        peak = float("-inf")
        b = self._buckets
        base = s * b["width"]
        starts, counts, sums, maxes, aboves = (b[name] for name, _c in _BUCKET_FIELDS)
        for at in range(base, base + self._nb[s]):
            if start <= starts[at] < end:
                n += counts[at]
                total += sums[at]
                peak = max(peak, maxes[at])
                above += aboves[at]
        if n < p.min_readings:
            return
        if p.aggregate == "mean":
            value = total / n
        elif p.aggregate == "max":
            value = peak
        else:
            value = above
        col = self._col
        if value > p.limit:
            if not col["alerted"][s] and col["has_last"][s]:
                col["alerted"][s] = 1
                out.append(self._alert(key, s, p, start, end, value, int(n)))
        elif value <= p.clear_level:
            col["alerted"][s] = 0

    def _alert(
        self, key: str, s: int, p: WindowParams, start: int, end: int, value: float, n: int
    ) -> Alert:
        col, text = self._col, self._text
        rule = col["rule"][s]
        sensor = key[: -len(f"|{rule}")] if rule else key
        lon, lat = col["last_lon"][s], col["last_lat"][s]
        unit = text.of(col["last_unit"][s])
        return Alert.make(
            "sensor.window",
            p.severity,
            sensor,
            "sensor",
            text.of(col["last_zone"][s]),
            None if math.isnan(lon) else lon,
            None if math.isnan(lat) else lat,
            ts_ms=end,
            first_ts_ms=start,
            evidence={
                "sensor_kind": text.of(col["last_kind"][s]),
                "aggregate": p.aggregate,
                "value": round(value, 3),
                "limit": p.limit,
                "window_start": format_ts(start),
                "window_end": format_ts(end),
                "size_s": p.size_s,
                "slide_s": p.slide,
                "readings": n,
                "late_readings": col["late"][s],
                "unit": p.unit or unit,
            },
        )

    def live_keys(self) -> int:
        return len(self._state)

    @classmethod
    def contract_case(cls, seed: int) -> ContractCase:
        """Eight dust monitors around 60 µg/m³ for two hours; from ``anomaly_from`` on
        one reads 130 for 70 minutes (never above 150), so its hourly mean passes 110."""
        det = cls(
            {
                "pm10": [
                    WindowParams(
                        size_s=3600,
                        slide_s=600,
                        limit=110.0,
                        clear_at=100.0,
                        min_readings=30,
                        allowed_lateness_s=60,
                    )
                ]
            }
        )
        streams = [
            background_readings(seed, f"pm-{i}", "pm10", 60.0, T_CASE, 200, 60) for i in range(8)
        ]
        rng = random.Random(seed)
        dusty = streams[3]
        streams[3] = (
            dusty[:120]
            + [
                SensorEvent(
                    ev.ts_ms,
                    ev.sensor,
                    ev.kind,
                    round(130 + rng.uniform(-8, 8), 1),
                    ev.lon,
                    ev.lat,
                    id=ev.id,
                )
                for ev in dusty[120:190]
            ]
            + dusty[190:]
        )
        events = merge_by_time(*streams)
        anomaly_from = events.index(streams[3][120])
        wms = {i: ev.ts_ms - 30_000 for i, ev in enumerate(events)}
        return ContractCase(det, events, frozenset(cls.kinds), anomaly_from, wms)
