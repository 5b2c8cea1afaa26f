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

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from citywatch.detectors import params
from citywatch.detectors.alerts import Alert
from citywatch.detectors.base import ContractCase, KeyedState, LaneDetector
from citywatch.detectors.events import Event, SensorEvent, format_ts
from citywatch.detectors.lanes import LaneTimers
from citywatch.detectors.sensor_kit import T_CASE, background_readings, merge_by_time, sensor_alert
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
    """One sensor under one rule: bucket start -> [count, sum, max, count above]."""

    kind: str
    rule: int
    buckets: dict[int, list[float]] = field(default_factory=dict)
    next_end: int | None = None
    timer_due: int | None = None
    alerted: bool = False
    late: int = 0
    last: SensorEvent | None = None


class WindowDetector(LaneDetector):
    """``sensor.window``: rules per sensor kind, one state per (sensor, rule)."""

    kinds = ("sensor.window",)
    event_type = "sensor"

    STATE = ("_state", "_timers", "_wm", "late_events_")
    STATE_VERSION = 2  # 2: timers filed per lane (a DueTimers snapshot restores into one)
    MIGRATIONS = {1: lambda data: data}

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
        self._state: KeyedState[_Windows] = KeyedState(idle_evict_s * 1000)
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
        start = ev.ts_ms - ev.ts_ms % slide_ms
        w = self._state.get(key, ev.ts_ms)
        if w is None:
            w = _Windows(ev.kind, rule)
            self._state.put(key, w, ev.ts_ms)
        if start + slide_ms + p.allowed_lateness_s * 1000 <= came:
            w.late += 1
            self.late_events_ += 1
            return
        if w.last is None or ev.ts_ms >= w.last.ts_ms:
            w.last = ev
        b = w.buckets.get(start)
        above = 1.0 if p.count_above is not None and ev.value > p.count_above else 0.0
        if b is None:
            w.buckets[start] = [1.0, ev.value, ev.value, above]
            limit = 4 * (p.size_s // p.slide) + 8
            if len(w.buckets) > limit:  # a clock far off: keep state bounded
                del w.buckets[min(w.buckets)]
        else:
            b[0] += 1.0
            b[1] += ev.value
            b[2] = max(b[2], ev.value)
            b[3] += above
        end = start + slide_ms
        if w.next_end is None or end < w.next_end:
            w.next_end = end
            self._schedule(key, w, p, lane)

    def _schedule(self, key: str, w: _Windows, p: WindowParams, lane: str) -> None:
        if w.next_end is None:
            return
        due = w.next_end + p.allowed_lateness_s * 1000
        if w.timer_due is None or due < w.timer_due:
            w.timer_due = due
            self._timers.add(key, due, lane)

    def advance(
        self, wm_ms: int, lanes: Sequence[tuple[str, int]], moved: bool, out: list[Alert]
    ) -> None:
        for due, key, lane in self._timers.pop_due(wm_ms, lanes):
            w = self._state.get(key, NO_WATERMARK)  # a peek: no touch
            if w is None or w.timer_due != due:
                continue
            w.timer_due = None
            p = self.by_kind[w.kind][w.rule]
            self._close(key, w, p, self.clock_of(lane, wm_ms), lane, out)
        if moved:
            self._state.evict_idle(wm_ms)

    def _close(
        self, key: str, w: _Windows, p: WindowParams, wm_ms: int, lane: str, out: list[Alert]
    ) -> None:
        slide_ms, size_ms, late_ms = p.slide * 1000, p.size_s * 1000, p.allowed_lateness_s * 1000
        while w.next_end is not None and w.next_end + late_ms <= wm_ms:
            end = w.next_end
            self._judge(w, p, end, out)
            for start in [s for s in w.buckets if s < end - size_ms + slide_ms]:
                del w.buckets[start]
            if not w.buckets:
                w.next_end = None
            else:  # skip windows with no readings at all
                w.next_end = max(end + slide_ms, min(w.buckets) + slide_ms)
        self._schedule(key, w, p, lane)

    def _judge(self, w: _Windows, p: WindowParams, end: int, out: list[Alert]) -> None:
        start = end - p.size_s * 1000
        n = total = above = 0.0
        peak = float("-inf")
        for s, (cnt, sm, mx, ab) in w.buckets.items():
            if start <= s < end:
                n += cnt
                total += sm
                peak = max(peak, mx)
                above += ab
        if n < p.min_readings:
            return
        if p.aggregate == "mean":
            value = total / n
        elif p.aggregate == "max":
            value = peak
        else:
            value = above
        if value > p.limit:
            if not w.alerted and w.last is not None:
                w.alerted = True
                out.append(self._alert(w, w.last, p, start, end, value, int(n)))
        elif value <= p.clear_level:
            w.alerted = False

    def _alert(
        self,
        w: _Windows,
        last: SensorEvent,
        p: WindowParams,
        start: int,
        end: int,
        value: float,
        n: int,
    ) -> Alert:
        return sensor_alert(
            "sensor.window",
            p.severity,
            last,
            ts_ms=end,
            first_ts_ms=start,
            evidence={
                "sensor_kind": last.kind,
                "aggregate": p.aggregate,
                "value": round(value, 3),
                "limit": p.limit,
                "window_start": format_ts(start),
                "window_end": format_ts(end),
                "size_s": p.size_s,
                "slide_s": p.slide,
                "readings": n,
                "late_readings": w.late,
                "unit": p.unit or last.unit,
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
