"""Sensor health: ``sensor.offline`` (silent too long) and ``sensor.stuck`` (one value too long).

**Offline.** A sensor that has sent nothing for longer than ``silent_s`` raises
one alert per silence. The decision is made in event time, once the watermark
shows that no on-time reading can still fill the gap, so it does not depend on
batching, replay speed or when the check happens to run: the alert's ``ts`` is
the last reading plus ``silent_s`` and its ``first_ts`` (hence its id) is the
last reading. Readings ahead of the watermark are held (a heap per lane, i.e. per
source, a second or so's worth) and settled in event-time order, so an
out-of-order reading that closes a gap counts even when a later one arrived
first. A gap that closes before the
watermark passes its deadline is no silence.

In the flow the "watermark" this detector gets runs near the *front* of event
time (the watermark plus ``max_out_of_order_s``, less 2 s: ``front_lead_ms``; the
front is the newest time every active source has reached), and each sensor on
its own source's clock when that is further on (``on_clocks``, see
``citywatch.detectors.lanes``), so a silence is reported within a second or two
of its deadline. A reading that comes behind that clock
is settled at the clock it came at (``on_arrival``), so silences decided before it stay
decided whatever the batching; a reading set aside because its gateway's clock
is off counts as presence (``on_heard``): the silence then starts at the last
presence (``first_ts``, evidence ``last_heard_ts``).

Timeline (silent_s 300, readings every minute, watermark after each)::

    t(min)   0  1  2  3  .  .  .  .  .  .  10  11
    reading  r  r  r  r                     r   r     (recovers at 10)
    alert                   ^ ts = 3 + 5 = 8 min, first_ts = 3 min

**Stuck.** A sensor whose readings stay within ``tolerance`` of one value for
``min_readings`` readings or ``min_stuck_s`` seconds (whichever is set and
comes first) raises one alert per run; a different value starts a new run.
Readings older than the sensor's latest are ignored (arrival order decides).

>>> from citywatch.detectors.events import SensorEvent
>>> det = StuckDetector({"water_level": StuckParams(min_readings=4)})
>>> out = []
>>> for i, v in enumerate([3.1, 3.2, 3.2, 3.2, 3.2, 3.2, 3.3]):
...     det.on_event(SensorEvent(i * 60_000, "wl-1", "water_level", v), out)
>>> [(a.kind, a.first_ts_ms, a.ts_ms, a.evidence["readings"]) for a in out]
[('sensor.stuck', 60000, 240000, 4)]
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from citywatch.detectors import params
from citywatch.detectors.alerts import Alert
from citywatch.detectors.base import ContractCase, LaneDetector
from citywatch.detectors.events import Event, SensorEvent, format_ts
from citywatch.detectors.lanes import DRIFT_MS, LaneQueue, LaneTimers
from citywatch.detectors.sensor_kit import (
    T_CASE,
    PerSensorDetector,
    background_readings,
    keyed_to_slots,
    merge_by_time,
    sensor_alert,
)
from citywatch.detectors.sensor_offline_rows import (  # _Line: old snapshots name it here
    _LINE_COLUMNS,
    _add_seen_ts,
    _Line,  # noqa: F401
    _set_last,
    _to_columns,
)
from citywatch.detectors.slot_keys import UNSET, Codes, Col, Column, SlotKeys
from citywatch.detectors.state import Snapshot, TuplePickled
from citywatch.detectors.watermark import NO_WATERMARK

MINUTE = 60_000
TIMER_MS = 100  # the offline timers' granularity (a silence is reported at most this late)


@dataclass(frozen=True, slots=True, kw_only=True)
class OfflineParams:
    """``[sensor.offline.<sensor kind>]``: how long a sensor of that kind may stay silent."""

    silent_s: int
    severity: str = "blue"

    def __post_init__(self) -> None:
        params.positive("sensor.offline", "silent_s", self.silent_s)
        params.severity("sensor.offline", self.severity)


@dataclass(frozen=True, slots=True)
class _Heard:
    """A sensor heard from at ``ts_ms``: through an event that was set aside, or through
    ``reading``, which came when the clock was already at ``ts_ms`` (behind the front)."""

    ts_ms: int
    sensor: str
    reading: SensorEvent | None = None


def _per_lane(data: dict[str, Any]) -> dict[str, Any]:
    """State version 2 -> 3: the readings held (a FIFO and a heap) go into one lane's
    queue (the shard's own clock); the timers restore into one lane by themselves."""
    if "_held" in data:
        return data
    held: list[tuple[int, int, SensorEvent | _Heard]] = list(data.pop("_pending"))
    seq = data.pop("_seq")
    for item in data.pop("_fifo"):
        seq += 1
        held.append((item.ts_ms, seq, item))
    heapq.heapify(held)
    lanes = {"": held} if held else {}
    nxt = [(held[0][0], "")] if held else []
    data["_held"] = Snapshot("LaneQueue", 1, {"lanes": lanes, "next": nxt, "seq": seq})
    return data


class OfflineDetector(LaneDetector):
    """``sensor.offline`` per sensor kind; fires on event-time progress (``on_watermark``).
    Each sensor's line is a row of columns (``_LINE_COLUMNS``)."""

    kinds = ("sensor.offline",)
    event_type = "sensor"

    # The timers are saved as the rows' armed timers and the heap of the lanes' next
    # dues (``_timer_next``, restored last: it rebuilds the timers from the rows).
    STATE = ("_state", "_held", "_wm", "late_events_", "_text", "_timer_next")
    # 3: readings held and timers filed per lane; 4: lines as rows of columns
    STATE_VERSION = 4
    MIGRATIONS = {1: _add_seen_ts, 2: _per_lane, 3: _to_columns}

    def __init__(
        self, by_kind: Mapping[str, OfflineParams], *, idle_evict_s: int = 24 * 3600
    ) -> None:
        self.by_kind = dict(by_kind)
        longest = max((p.silent_s for p in self.by_kind.values()), default=0)
        if idle_evict_s <= longest:
            msg = (
                f'sensor.offline: "idle_evict_s" ({idle_evict_s}) must exceed the longest '
                f"silent_s ({longest}), else a silent sensor is forgotten before it alerts"
            )
            raise ValueError(msg)
        self.idle_evict_s = idle_evict_s
        self._state = SlotKeys(idle_evict_s * 1000, _LINE_COLUMNS)
        self._text = Codes()  # sensor kinds and zones of the rows
        col = self._col = self._state.col
        self._kind, self._alerted, self._timer = col["kind"], col["alerted"], col["timer"]
        self._heard, self._has_last, self._last_ts = col["heard"], col["has_last"], col["last_ts"]
        self._timers = LaneTimers()
        # Readings (and presences heard) at or after their clock, filed under their lane
        # and settled in time order once the lane's clock or the shard's passes them.
        self._held: LaneQueue[SensorEvent | _Heard] = LaneQueue()
        self._wm = NO_WATERMARK
        self.late_events_ = 0
        # Live runs: sensors judged ahead of (or behind) their lane's clock by their newest
        # reading's ingest shift (``citywatch.detectors.lanes.ingest_shift``), anchored to
        # its source's transit (``LaneDetector.event_shift``), with that reading's time:
        # sensor -> (anchored shift, ts). Not state: after a restart each is judged on its
        # lane until its next reading.
        self._shift: dict[str, tuple[int, int]] = {}

    def on_event(self, ev: Event, out: list[Alert]) -> None:
        if not isinstance(ev, SensorEvent) or ev.kind not in self.by_kind:
            return
        s = self._state.slot(ev.sensor, ev.ts_ms)
        if s < 0:
            s = self._state.add(ev.sensor, ev.ts_ms)
            self._kind[s] = self._text.code(ev.kind)
        if ev.ts_ms < self._wm:
            # Behind our watermark (only when fed outside the flow, which drops late
            # events): it cannot reopen a silence already judged; settle it as is.
            self.late_events_ += 1
            if not self._has_last[s] or ev.ts_ms > self._last_ts[s]:
                _set_last(self._col, s, ev, self._text)
            self._heard[s] = max(self._heard[s], ev.ts_ms)
            return
        at = self.arrived_at(ev)
        lane = self.lane_of(ev)
        shift: int | None = None
        if at is not None and ev.ts_ms < at:  # came behind the clock: settled at it
            self._held.add(at, _Heard(at, ev.sensor, ev), lane)
            # (no shift: counted from that clock, from when it came already)
        else:
            self._held.add(ev.ts_ms, ev, lane)
            shift = self.event_shift(ev)
        if shift is not None:
            newest = self._shift.get(ev.sensor)
            if newest is None or ev.ts_ms > newest[1]:
                self._shift[ev.sensor] = (shift, ev.ts_ms)
        elif self._shift:
            self._shift.pop(ev.sensor, None)

    def on_arrival(self, ev: Event, at_ms: int, out: list[Alert]) -> None:
        """A reading stamped behind the clock it came at is settled at that clock (the
        silences before it were decided without it); one stamped ahead is also heard."""
        super().on_arrival(ev, at_ms, out)
        if ev.ts_ms >= at_ms:
            self.on_heard(ev, at_ms, out)

    def on_heard(self, ev: Event, at_ms: int, out: list[Alert]) -> None:
        """A reading of a known sensor was set aside (its gateway's clock is off): the
        sensor is alive at ``at_ms``, so a silence can only start after it."""
        if not isinstance(ev, SensorEvent) or ev.kind not in self.by_kind:
            return
        s = self._state.slot(ev.sensor, at_ms)
        if s < 0:
            return
        if self._shift:
            self._shift.pop(ev.sensor, None)  # it spoke at its lane's clock
        if at_ms < self._wm:
            self._heard[s] = max(self._heard[s], at_ms)
            return
        self._held.add(at_ms, _Heard(at_ms, ev.sensor), self.lane_of(ev))

    def advance(self, wm_ms: int, lanes: Mapping[str, int], moved: bool, out: list[Alert]) -> None:
        # Settle the readings now strictly behind their clock (``before`` 1 ms), in
        # event-time order per lane: a reading further than silent_s after the sensor's
        # previous one is a silence.
        peek = self._state.peek
        for item, lane in self._held.pop_due(wm_ms - 1, lanes, 1):
            s = peek(item.sensor)
            if s >= 0:
                self._settle(item.sensor, s, item, lane, out)
        timer = self._timer
        for due, key, lane in self._timers.pop_due(wm_ms - 1, lanes, 1):
            s = peek(key)
            if s < 0 or timer[s] != due:
                if s < 0 and self._shift:
                    self._shift.pop(key, None)
                continue
            timer[s] = UNSET
            self._check_silence(key, s, self.clock_of(lane, wm_ms), lane, out)
        if moved:
            self._state.evict_idle(wm_ms)

    def _settle(
        self, key: str, s: int, item: SensorEvent | _Heard, lane: str, out: list[Alert]
    ) -> None:
        seen = self._heard[s]
        reading = item if isinstance(item, SensorEvent) else item.reading
        ts = item.ts_ms if reading is None else reading.ts_ms
        if reading is not None and (not self._has_last[s] or ts > self._last_ts[s]):
            if seen != NO_WATERMARK and ts - seen > self._silent_ms(s):
                self._alert(key, s, out)
            _set_last(self._col, s, reading, self._text)
        elif ts <= seen:
            return
        elif seen != NO_WATERMARK and ts - seen > self._silent_ms(s):
            self._alert(key, s, out)
        heard = self._heard[s] = max(seen, ts)
        # Judged by the timer once every reading before the watermark is settled.
        if self._timer[s] == UNSET:
            self._arm(key, s, heard + self._silent_ms(s), lane)

    def _check_silence(self, key: str, s: int, clock_ms: int, lane: str, out: list[Alert]) -> None:
        heard = self._heard[s]
        if not self._has_last[s] or heard == NO_WATERMARK:
            return
        deadline = heard + self._silent_ms(s)
        # Judged ahead of its lane by its newest reading's shift (live), once that reading
        # is settled: one still held (not yet behind its lane's clock) came after it.
        shifted = self._shift.get(key) if self._shift else None
        if shifted is not None and shifted[1] <= heard:
            clock_ms = self.judged_clock(lane, clock_ms, shifted[0])
        if deadline < clock_ms:  # every reading before the clock is settled: confirmed
            self._alert(key, s, out)
            if shifted is not None:
                del self._shift[key]
        elif self._timer[s] == UNSET and self._alerted[s] != heard:
            self._arm(key, s, deadline, lane)

    def _arm(self, key: str, s: int, deadline: int, lane: str) -> None:
        # Timers in tenths of a second after the deadline: many sensors share one, and
        # the check on firing is exact, so the alert does not depend on the rounding. A
        # sensor shifted ahead of its lane (live runs) is due that much sooner on it.
        shifted = self._shift.get(key) if self._shift else None
        if shifted is not None:  # looked at early enough for its source's drift
            deadline -= self.shift_now(lane, shifted[0]) + DRIFT_MS
        due = self._timer[s] = (deadline // TIMER_MS + 1) * TIMER_MS
        self._col["lane"][s] = self._text.code(lane)
        self._timers.add(key, due, lane)

    @property
    def _timer_next(self) -> list[tuple[int, str]]:
        return self._timers._next

    @_timer_next.setter
    def _timer_next(self, nxt: list[tuple[int, str]]) -> None:
        """Rebuild the timers from the rows' armed timers, with the lanes' heap ``nxt``
        as saved. A timer is armed only while its row has none and disarmed only when it
        pops, so a live row's armed timer is its key's one pending timer. A timer of a key
        evicted meanwhile was not saved: it would find no row, or a row armed for another
        due, and do nothing (its due is within ``silent_s`` and a reading's lag of the
        key's last use, so it pops before ``idle_evict_s`` evicts the key anyway)."""
        by_lane: dict[str, dict[int, list[str]]] = {}
        timer = np.frombuffer(self._timer, dtype=np.int64) if len(self._timer) else None
        if timer is not None:
            lane = np.frombuffer(self._col["lane"], dtype=np.int32)
            slots = np.flatnonzero(self._state.live() & (timer != UNSET))
            order = slots[np.lexsort((timer[slots], lane[slots]))]
            dues, codes = timer[order], lane[order]
            cuts = (np.flatnonzero((np.diff(dues) != 0) | (np.diff(codes) != 0)) + 1).tolist()
            keys: list[Any] = list(map(self._state.key_of, order.tolist()))  # all live
            text, due_at, code_at = self._text.text, dues.tolist(), codes.tolist()
            for a, b in zip([0, *cuts], [*cuts, len(keys)], strict=True):
                if a < b:  # one (lane, due): its keys; dues come ascending within a lane
                    by_lane.setdefault(text[code_at[a]], {})[due_at[a]] = keys[a:b]
        lanes = {
            name: (by_due, list(by_due), sum(map(len, by_due.values())))
            for name, by_due in by_lane.items()
        }
        self._timers.restore(Snapshot("LaneTimers", 1, {"lanes": lanes, "next": list(nxt)}))

    def _silent_ms(self, s: int) -> int:
        return self.by_kind[self._text.text[self._kind[s]]].silent_s * 1000

    def _alert(self, key: str, s: int, out: list[Alert]) -> None:
        start = self._heard[s]
        if not self._has_last[s] or start == NO_WATERMARK or self._alerted[s] == start:
            return
        self._alerted[s] = start
        col, text = self._col, self._text
        p = self.by_kind[text.text[self._kind[s]]]
        last_ts = self._last_ts[s]
        evidence: dict[str, Any] = {
            "sensor_kind": text.of(col["last_kind"][s]),
            "silent_s": p.silent_s,
            "last_reading_ts": format_ts(last_ts),
            "last_value": col["last_value"][s],
            "event_id": col["last_id"][s],
        }
        if start != last_ts:  # its last readings were set aside (a gateway's clock)
            evidence["last_heard_ts"] = format_ts(start)
        lon, lat = col["last_lon"][s], col["last_lat"][s]
        out.append(
            Alert.make(
                "sensor.offline",
                p.severity,
                key,
                "sensor",
                text.of(col["last_zone"][s]),
                None if math.isnan(lon) else lon,
                None if math.isnan(lat) else lat,
                ts_ms=start + p.silent_s * 1000,
                first_ts_ms=start,
                evidence=evidence,
            )
        )

    def live_keys(self) -> int:
        return len(self._state)

    @classmethod
    def contract_case(cls, seed: int) -> ContractCase:
        """Six gauges reporting every minute (with jittered, out-of-order arrivals);
        from ``anomaly_from`` on one gauge falls silent for 20 minutes."""
        det = cls({"water_level": OfflineParams(silent_s=600)})
        streams = [
            background_readings(seed, f"wl-{i}", "water_level", 3.0, T_CASE, 90, 60)
            for i in range(6)
        ]
        quiet = streams[0]
        streams[0] = quiet[:40] + quiet[60:]
        events = _jitter(merge_by_time(*streams), seed)
        anomaly_from = next(i for i, ev in enumerate(events) if ev.ts_ms > quiet[40].ts_ms)
        wms = {i: ev.ts_ms - 30_000 for i, ev in enumerate(events)}
        return ContractCase(det, list(events), frozenset(cls.kinds), anomaly_from, wms)


def _jitter(events: list[Event], seed: int) -> list[Event]:
    """Swap some neighbours: arrival order differs a little from event time."""
    rng = random.Random(seed)
    out = list(events)
    for i in range(1, len(out)):
        if rng.random() < 0.2 and out[i].ts_ms - out[i - 1].ts_ms < 20_000:
            out[i - 1], out[i] = out[i], out[i - 1]
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class StuckParams:
    """``[sensor.stuck.<sensor kind>]``: a run of equal readings that means a stuck sensor.

    ``min_readings`` and ``min_stuck_s``: either or both (0 = unused); the first
    reached raises the alert. ``tolerance``: readings within this distance (in
    the sensor's unit) of the run's first value count as the same value. Two
    readings more than ``min_stuck_s`` apart do not continue a run: nothing was
    read in between (a silence, or a gateway clock that stepped ahead), so
    nothing shows the value stayed.
    """

    min_readings: int = 0
    min_stuck_s: int = 0
    tolerance: float = 0.0
    severity: str = "blue"

    def __post_init__(self) -> None:
        owner = "sensor.stuck"
        params.non_negative(owner, "min_readings", self.min_readings)
        params.non_negative(owner, "min_stuck_s", self.min_stuck_s)
        params.non_negative(owner, "tolerance", self.tolerance)
        params.severity(owner, self.severity)
        if self.min_readings < 2 and self.min_stuck_s <= 0:
            msg = (
                f'{owner}: set "min_readings" (>= 2) or "min_stuck_s" (> 0), got '
                f"min_readings={self.min_readings}, min_stuck_s={self.min_stuck_s}"
            )
            raise ValueError(msg)


@dataclass(slots=True)
class _Run(TuplePickled):
    """A run as state version 1 kept it (read by the migration to columns)."""

    value: float
    first_ts: int
    last_ts: int
    readings: int = 1
    alerted: bool = False


_RUN_COLUMNS: dict[str, Column] = {
    "value": ("d", 0.0),  # the run's first value
    "first_ts": ("q", 0),
    "last_ts": ("q", 0),
    "readings": ("q", 1),
    "alerted": ("b", 0),
}


def _fill_run(col: dict[str, Col], s: int, run: _Run) -> None:
    col["value"][s] = run.value
    col["first_ts"][s] = run.first_ts
    col["last_ts"][s] = run.last_ts
    col["readings"][s] = run.readings
    col["alerted"][s] = run.alerted


class StuckDetector(PerSensorDetector[StuckParams]):
    """``sensor.stuck`` per sensor kind, in arrival order, O(1) per reading; each
    sensor's run is a row of columns (first value, first and last time, readings,
    alerted)."""

    kinds = ("sensor.stuck",)

    COLUMNS = _RUN_COLUMNS
    STATE_VERSION = 2  # 2: runs as rows of columns (1: a KeyedState of _Run records)
    MIGRATIONS = {1: keyed_to_slots(_RUN_COLUMNS, _fill_run)}

    def __init__(
        self, by_kind: Mapping[str, StuckParams], *, idle_evict_s: int = 24 * 3600
    ) -> None:
        super().__init__(by_kind, idle_evict_s=idle_evict_s)
        col = self._state.col
        self._value, self._first, self._last = col["value"], col["first_ts"], col["last_ts"]
        self._readings, self._alerted = col["readings"], col["alerted"]

    def on_event(self, ev: Event, out: list[Alert]) -> None:
        got = self.reading(ev)
        if got is None:
            return
        ev, p = got
        ts = ev.ts_ms
        s = self._state.slot(ev.sensor, ts)
        if s < 0:
            self._start(self._state.add(ev.sensor, ts), ev)
            return
        last = self._last[s]
        if ts <= last:
            return
        if abs(ev.value - self._value[s]) > p.tolerance or (
            p.min_stuck_s > 0 and ts - last > p.min_stuck_s * 1000
        ):
            self._start(s, ev)
            return
        self._last[s] = ts
        readings = self._readings[s] = self._readings[s] + 1
        if self._alerted[s]:
            return
        first = self._first[s]
        by_count = p.min_readings >= 2 and readings >= p.min_readings
        by_time = p.min_stuck_s > 0 and ts - first >= p.min_stuck_s * 1000
        if not (by_count or by_time):
            return
        self._alerted[s] = 1
        out.append(
            sensor_alert(
                "sensor.stuck",
                p.severity,
                ev,
                ts_ms=ts,
                first_ts_ms=first,
                evidence={
                    "sensor_kind": ev.kind,
                    "value": self._value[s],
                    "readings": readings,
                    "stuck_s": (ts - first) // 1000,
                    "tolerance": p.tolerance,
                    "event_id": ev.id,
                },
            )
        )

    def _start(self, s: int, ev: SensorEvent) -> None:
        """A new run from ``ev``."""
        self._value[s] = ev.value
        self._first[s] = self._last[s] = ev.ts_ms
        self._readings[s] = 1
        self._alerted[s] = 0

    @classmethod
    def contract_case(cls, seed: int) -> ContractCase:
        """Five noisy gauges; from ``anomaly_from`` on one repeats a single value."""
        det = cls({"water_level": StuckParams(min_readings=8, min_stuck_s=900)})
        streams = [
            background_readings(seed, f"wl-{i}", "water_level", 3.0, T_CASE, 60, 60)
            for i in range(5)
        ]
        stuck = streams[2]
        frozen = stuck[30].value
        streams[2] = stuck[:30] + [
            SensorEvent(ev.ts_ms, ev.sensor, ev.kind, frozen, ev.lon, ev.lat, id=ev.id)
            for ev in stuck[30:]
        ]
        events = merge_by_time(*streams)
        anomaly_from = events.index(streams[2][30])
        return ContractCase(det, list(events), frozenset(cls.kinds), anomaly_from)
