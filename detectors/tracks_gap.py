"""``track.gap``: a watched vehicle sent no fix for longer than its class allows.

A gap after fix F is *decided* in event time: it exists when no fix falls in
``(F, F + T]`` (T = ``max_silence_s`` of the class). A fix in that interval
decides "no gap" at once; the watermark passing ``F + T`` decides "gap", since
any fix still to come in that interval would be late. So the alert fires on
watermark progress, also for a gap that has already closed (the next fix came
after ``F + T`` but before the watermark got there), and it is the same alert
either way: ``first_ts`` = F's time, ``ts`` = F + T, position and evidence from
F, never from the time it fired or the fix that closed it. In live runs the
flow passes a wall-clock watermark instead (``[flow] timers = "wall"``), so
a truck that went dark is reported even when no other traffic moves event time.

The flow drives it near the front of event time (``front_lead_ms``, see
``sensor_health``): a fix that came behind that clock counts from then
(``on_arrival``), one set aside by a bad clock counts as presence (``on_heard``).

**A vehicle not seen before** has no interval of its own: its first silences are
judged against what the other vehicles of its source and class are observed to
keep (its *fleet*: the upper quartile of their own intervals; of every class of
its source when its class has fewer than ``FLEET_MIN`` vehicles in the shard), not
the bare class default, until it has ``FLEET_UNTIL`` intervals of its own. An AIS
fleet where a quarter of the vessels lie at anchor reporting every 3 minutes then
allows a newcomer 9 minutes; a fleet of trucks at 5 s keeps the class's 5 minutes.
The fleet is pooled by 10-minute slots of event time, and a slot counts once it is
two slots behind the fix that asks (a fix of it still to come would be far later
than the watermark's bound and never reach a detector), so what a newcomer is
allowed depends on event time alone, never on batch boundaries or speed.

Each vehicle keeps only its undecided fixes (usually one) and at most one timer,
filed under its deadline rounded up to the second (:class:`DueTimers`), so a
watermark costs O(due timers), not O(keys).

Timeline (T = 3 min, watermark = latest event time - 30 s)::

    t(min)   0    1    2         6     6.5
    fix      A    A    A         A               (the gap 2 -> 6 closed)
    wm                             ^ 5.5 > 2 + 3: track.gap, first_ts 2, ts 5

>>> from citywatch.detectors.events import GpsEvent
>>> det = GapDetector(GapParams(max_silence_s={"hazmat_truck": 180}))
>>> out = []
>>> for m in (0, 1, 2, 6):
...     det.on_event(GpsEvent(m * 60_000, "hz-1", 121.0 + m / 100, 32.0, "hazmat_truck"), out)
>>> det.on_watermark(5 * 60_000, out); len(out)
0
>>> det.on_watermark(5 * 60_000 + 1, out)
>>> [(a.kind, a.first_ts_ms, a.ts_ms) for a in out]
[('track.gap', 120000, 300000)]
"""

from __future__ import annotations

import bisect
import random
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from citywatch.detectors import params
from citywatch.detectors.alerts import Alert, alert_id
from citywatch.detectors.base import ContractCase, KeyedState, LaneDetector
from citywatch.detectors.columns import pack, unpack
from citywatch.detectors.events import Event, GpsEvent
from citywatch.detectors.lanes import DRIFT_MS, LaneTimers
from citywatch.detectors.state import Snapshot, TuplePickled, migrate
from citywatch.detectors.watermark import NO_WATERMARK
from citywatch.geo.distance import haversine_m

OWNER = "track.gap"
PARKED_KMH = 5.0  # a fix reporting more is not parked (stationary_kmh's default)
INTERVALS = 32  # recent reporting intervals per vehicle (upper quartile: its interval)
USUAL_SAMPLES = 32  # intervals kept per vehicle, evenly spread over its history
FLEET_SLOT_MS = 600_000  # a fleet's intervals are pooled by 10 minutes of event time
FLEET_MIN = 3  # vehicles a fleet needs before it speaks for a newcomer
FLEET_UNTIL = 8  # intervals of its own before a vehicle's own pace alone decides

# (ts_ms, lon, lat, zone, event id, class, cargo, silence_ms, interval_ms, fleet_ms)
# of a fix whose gap is still undecided; silence_ms is the silence allowed after it,
# interval_ms the vehicle's observed reporting interval (0: not known yet) and
# fleet_ms its fleet's when that decided (0: it did not), all fixed when it came
_Fix = tuple[int, float, float, str | None, str | None, str, str | None, int, int, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class GapParams:
    """``[track.gap]``: the silence allowed per vehicle class and per observed interval."""

    max_silence_s: Mapping[str, float] = field(
        default_factory=lambda: {"hazmat_truck": 300.0, "tanker": 300.0}
    )
    interval_factor: float = 3.0
    parked_silence_s: float = 900.0
    parked_m: float = 50.0
    # per class: a fix reporting a speed at or under stationary_kmh is stationary
    # wherever it lies (default PARKED_KMH), and a stationary vehicle may stay silent
    # stationary_silence_s (default parked_silence_s)
    stationary_kmh: Mapping[str, float] = field(default_factory=dict)
    stationary_silence_s: Mapping[str, float] = field(default_factory=dict)
    max_adaptive_s: float = 1800.0
    off_track_m: float = 1000.0
    off_track_severity: str = "orange"
    severity: str = "yellow"
    idle_evict_s: int = 6 * 3600
    interval_memory_s: int = 7 * 86400

    def __post_init__(self) -> None:
        for cls, secs in self.max_silence_s.items():
            params.positive(OWNER, f"max_silence_s.{cls}", secs)
        params.non_negative(OWNER, "interval_factor", self.interval_factor)
        params.positive(OWNER, "parked_silence_s", self.parked_silence_s)
        params.non_negative(OWNER, "parked_m", self.parked_m)
        for cls, kmh in self.stationary_kmh.items():
            params.non_negative(OWNER, f"stationary_kmh.{cls}", kmh)
        for cls, secs in self.stationary_silence_s.items():
            params.positive(OWNER, f"stationary_silence_s.{cls}", secs)
        params.positive(OWNER, "max_adaptive_s", self.max_adaptive_s)
        params.positive(OWNER, "off_track_m", self.off_track_m)
        params.positive(OWNER, "idle_evict_s", self.idle_evict_s)
        params.positive(OWNER, "interval_memory_s", self.interval_memory_s)
        params.severity(OWNER, self.severity)
        params.severity(OWNER, self.off_track_severity)
        longest = max(
            [
                *self.max_silence_s.values(),
                *self.stationary_silence_s.values(),
                self.max_adaptive_s,
                self.parked_silence_s,
            ]
        )
        if self.idle_evict_s <= longest:
            msg = (
                f'{OWNER}: "idle_evict_s" must be longer than the longest max_silence_s '
                f"or max_adaptive_s ({longest:g}), got {self.idle_evict_s}; a vehicle must "
                "not be forgotten before its gap is decided"
            )
            raise ValueError(msg)


@dataclass(slots=True)
class _Usual(TuplePickled):
    """A vehicle's long-run reporting interval: the median of a sample of its intervals
    spread evenly over its history (every ``stride``-th one; when the sample is full,
    every other one is dropped and the stride doubles)."""

    FLAT_COLUMNS = True

    samples: array[int] = field(default_factory=lambda: array("q"))
    stride: int = 1
    seen: int = 0
    median: int = 0  # the lower median: of one or two intervals, the shortest

    def add(self, interval_ms: int) -> None:
        self.seen += 1
        if (self.seen - 1) % self.stride:
            return
        self.samples.append(interval_ms)
        if len(self.samples) >= USUAL_SAMPLES:
            self.samples = self.samples[::2]
            self.stride *= 2
        self.median = sorted(self.samples)[(len(self.samples) - 1) // 2]


def _fix(ev: GpsEvent, allowed_ms: int, interval_ms: int, fleet_ms: int) -> _Fix:
    zone = ev.zones[0] if ev.zones else None
    return (
        ev.ts_ms,
        ev.lon,
        ev.lat,
        zone,
        ev.id,
        ev.cls or "",
        ev.cargo,
        allowed_ms,
        interval_ms,
        fleet_ms,
    )


@dataclass(slots=True)
class _Fleet(TuplePickled):
    """What the vehicles of one source and class report: each vehicle's observed
    interval at its latest fix of each 10-minute slot (``pending``, by slot), folded
    into ``settled`` once the slot is two slots behind a fix; ``interval_ms`` is the
    upper quartile of the settled vehicles' intervals over slots up to ``upto``, and
    ``before_ms`` the same up to ``upto - 1`` (a fix a little out of order asks for it)."""

    FLAT_COLUMNS = True

    pending: dict[int, dict[str, tuple[int, int]]] = field(default_factory=dict)
    settled: dict[str, tuple[int, int]] = field(default_factory=dict)  # entity -> (slot, ms)
    upto: int = -(2**62)
    interval_ms: int = 0
    before_ms: int = 0


def _with_fleet(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 -> 2: fixes gained ``fleet_ms`` (no fleet decided before), and the
    fleets start empty."""
    keyed = data.get("_state")
    items = keyed.data.get("items", []) if isinstance(keyed, Snapshot) else []

    def widened(f: tuple[Any, ...]) -> Any:
        return (*f, 0) if len(f) == 9 else f

    for _key, st in items:
        if isinstance(st, _Track):
            st.undecided = [widened(f) for f in st.undecided]
            st.last = widened(st.last)
    data["_fleet"] = {}
    return data


def _fleets_as_columns(data: dict[str, Any]) -> dict[str, Any]:
    """Version 3 -> 4: the fleets as columns (a source and class per key, thousands in a
    city of gateways) instead of one pickled object each."""
    data["_fleet"] = _packed(data["_fleet"])
    return data


def _packed(fleets: dict[str, _Fleet]) -> dict[str, Any]:
    return {"keys": list(fleets), "fleets": pack(list(fleets.values()))}


@dataclass(slots=True)
class _Track(TuplePickled):
    FLAT_COLUMNS = True  # its fixes, recent intervals: columns of numbers in a snapshot

    max_ts: int
    undecided: list[_Fix]
    last: _Fix
    prev: tuple[int, float, float] | None = None
    intervals: array[int] = field(default_factory=lambda: array("q"))  # in arrival order
    by_size: array[int] = field(default_factory=lambda: array("q"))  # the same, sorted
    timer: int | None = None


class GapDetector(LaneDetector):
    kinds = ("track.gap",)
    event_type = "gps"

    STATE = ("_state", "_timers", "_wm", "_usual", "_fleet")
    # 2: the fleet's intervals; 3: timers filed per lane; 4: the fleets as columns
    STATE_VERSION = 4
    MIGRATIONS: ClassVar[dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {
        1: _with_fleet,
        2: lambda data: data,  # a DueTimers snapshot restores into the lane timers
        3: _fleets_as_columns,
    }

    def __init__(self, p: GapParams) -> None:
        self.p = p
        self._silence_ms = {cls: int(s * 1000) for cls, s in p.max_silence_s.items()}
        self._parked_ms = {
            cls: int(p.stationary_silence_s.get(cls, p.parked_silence_s) * 1000)
            for cls in p.max_silence_s
        }
        self._still_kmh = {cls: p.stationary_kmh.get(cls, PARKED_KMH) for cls in p.max_silence_s}
        self._state: KeyedState[_Track] = KeyedState(p.idle_evict_s * 1000)
        self._timers = LaneTimers()
        self._wm = NO_WATERMARK
        # Each vehicle's long-run interval, kept interval_memory_s after its last fix,
        # across the idle eviction of its track.
        self._usual: KeyedState[_Usual] = KeyedState(p.interval_memory_s * 1000)
        # What each source's vehicles of each class report ("src/class" -> fleet).
        self._fleet: dict[str, _Fleet] = {}
        self._memory_slots = -(-p.interval_memory_s * 1000 // FLEET_SLOT_MS)
        # Live runs: vehicles judged ahead of (or behind) their lane's clock, by their
        # newest fix's ingest shift (``citywatch.detectors.lanes.ingest_shift``), anchored
        # to its source's transit (``LaneDetector.event_shift``). Not state: after a
        # restart each is judged on its lane until its next fix.
        self._shift: dict[str, int] = {}

    def state(self) -> Snapshot:
        snap = super().state()
        snap.data["_fleet"] = _packed(self._fleet)
        return snap

    def restore(self, snap: Snapshot) -> None:
        data = migrate(GapDetector, snap)
        packed = data["_fleet"]
        super().restore(Snapshot(snap.kind, self.STATE_VERSION, {**data, "_fleet": {}}))
        self._fleet = dict(zip(packed["keys"], unpack(packed["fleets"]), strict=True))

    def _allowed_ms(
        self, cls: str, by_size: Sequence[int], usual: int, fleet: int = 0
    ) -> tuple[int, int, int]:
        """The silence allowed after a fix: the class's, or ``interval_factor`` times the
        vehicle's own reporting interval when that is longer (capped at
        ``max_adaptive_s``); that interval (0 while not known); and the fleet's
        interval when that was longer than its own and decided (else 0).

        The interval is the larger of the upper quartile of its recent intervals and
        its long-run median: AIS and trackers change their rate with speed and
        engine state (AIS under way every 2-10 s, at anchor every 3 minutes; trackers
        sleep when parked), so half an hour of fast reporting does not make the
        usual pace a gap."""
        base = self._silence_ms[cls]
        recent = by_size[(3 * len(by_size)) // 4] if len(by_size) >= 3 else 0
        interval = max(recent, usual)
        pace = max(interval, fleet)
        if pace == 0:
            return base, 0, 0
        own = self.p.interval_factor * pace
        allowed = int(max(base, min(own, self.p.max_adaptive_s * 1000)))
        return allowed, interval, fleet if fleet > interval and allowed > base else 0

    def _newcomer_ms(self, keys: tuple[str, str], ts_ms: int) -> int:
        """The interval a vehicle new to its fleet is held to: its source's vehicles of
        its class, or of every class where those are too few (a shard sees a part of a
        fleet)."""
        return self._fleet_ms(keys[0], ts_ms) or self._fleet_ms(keys[1], ts_ms)

    def _fleet_ms(self, key: str, ts_ms: int) -> int:
        """The fleet's interval as known at ``ts_ms``: its vehicles' intervals of the
        slots up to two before ``ts_ms``'s (0: fewer than ``FLEET_MIN`` vehicles)."""
        fleet = self._fleet.get(key)
        if fleet is None:
            return 0
        upto = ts_ms // FLEET_SLOT_MS - 2
        if upto > fleet.upto:
            self._fold(fleet, upto)
        return fleet.interval_ms if upto >= fleet.upto else fleet.before_ms

    def _fold(self, fleet: _Fleet, upto: int) -> None:
        """Settle the slots up to ``upto`` (their fixes are all in: one still to come
        would be late) and forget vehicles not seen for ``interval_memory_s``."""
        for step in (upto - 1, upto):
            if step <= fleet.upto:
                continue
            for slot in sorted(h for h in fleet.pending if h <= step):
                for entity, (_ts, ms) in fleet.pending.pop(slot).items():
                    fleet.settled[entity] = (slot, ms)
            oldest = step - self._memory_slots
            if any(slot <= oldest for slot, _ms in fleet.settled.values()):
                fleet.settled = {e: v for e, v in fleet.settled.items() if v[0] > oldest}
            by_size = sorted(ms for _slot, ms in fleet.settled.values())
            fleet.before_ms = fleet.interval_ms
            n = len(by_size)
            fleet.interval_ms = by_size[(3 * n) // 4] if n >= FLEET_MIN else 0
            fleet.upto = step

    def _observed(self, key: str, entity: str, ts_ms: int, interval_ms: int) -> None:
        """Note a vehicle's own interval at a fix, for its fleet."""
        fleet = self._fleet.get(key)
        if fleet is None:
            fleet = self._fleet[key] = _Fleet()
        if ts_ms // FLEET_SLOT_MS - 2 > fleet.upto:
            self._fold(fleet, ts_ms // FLEET_SLOT_MS - 2)  # keeps ``pending`` to ~3 slots
        slot = ts_ms // FLEET_SLOT_MS
        if slot <= fleet.upto:
            return  # (a fix that late never reaches a detector)
        seen = fleet.pending.setdefault(slot, {})
        had = seen.get(entity)
        if had is None or (ts_ms, interval_ms) > had:
            seen[entity] = (ts_ms, interval_ms)

    def on_event(self, ev: Event, out: list[Alert]) -> None:
        if not isinstance(ev, GpsEvent) or ev.cls not in self._silence_ms:
            return
        ts = ev.ts_ms
        stale = self._state.take_stale(ev.entity, ts)
        if stale is not None:
            # Idle longer than idle_evict_s (> any silence): its open fixes are gaps, the
            # same alerts a watermark would have fired before evicting it.
            out.extend(self._alert(ev.entity, f) for f in stale.undecided)
        st = self._state.get(ev.entity, ts)
        self._usual.take_stale(ev.entity, ts)
        usual = self._usual.get(ev.entity, ts)
        fleet_key = (f"{ev.src or ''}/{ev.cls}", f"{ev.src or ''}/*")
        if st is None:
            known = usual.seen if usual else 0
            fleet = self._newcomer_ms(fleet_key, ts) if known < FLEET_UNTIL else 0
            allowed, interval, fleet = self._allowed_ms(
                ev.cls, [], usual.median if usual else 0, fleet
            )
            if self._stationary(ev, ev.cls, None):
                allowed = max(allowed, self._parked_ms[ev.cls])
            first = _fix(ev, allowed, interval, fleet)
            st = _Track(ts, [first], first)
            self._state.put(ev.entity, st, ts)
            self._note_shift(ev)
            self._schedule(ev.entity, st, ts + allowed, self.lane_of(ev))
            return
        und = st.undecided
        came = self.arrived_at(ev)
        at = ts if came is None else came
        # A fix that came behind the front counts when it came: gaps decided by then stay.
        seen = max(ts, at)
        if und and any(f[0] < seen <= f[0] + f[7] for f in und):
            # A fix within T after an undecided fix means no gap after that one.
            st.undecided = und = [f for f in und if not f[0] < seen <= f[0] + f[7]]
        if ts > st.max_ts:
            last = st.last
            # A fix stamped ahead of its source's clock (``on_heard`` saw it first) ends
            # a silence when it came, not at its stamp.
            if min(ts, at) - last[0] > last[7]:
                self._reappeared(ev, st, out)
            gap = ts - st.max_ts
            st.intervals.append(gap)
            bisect.insort(st.by_size, gap)
            if len(st.intervals) > INTERVALS:
                del st.by_size[bisect.bisect_left(st.by_size, st.intervals.pop(0))]
            if usual is None:
                usual = _Usual()
                self._usual.put(ev.entity, usual, ts)
            usual.add(gap)
            fleet = self._newcomer_ms(fleet_key, ts) if usual.seen < FLEET_UNTIL else 0
            allowed, interval, fleet = self._allowed_ms(ev.cls, st.by_size, usual.median, fleet)
            for key in fleet_key:
                self._observed(key, ev.entity, ts, interval)
            if self._stationary(ev, ev.cls, last):
                allowed = max(allowed, self._parked_ms[ev.cls])
            fix = _fix(ev, allowed, interval, fleet)
            st.prev, st.last, st.max_ts = (last[0], last[1], last[2]), fix, ts
            und.append(fix)
            self._note_shift(ev)
            if st.timer is None:
                self._schedule(ev.entity, st, min(f[0] + f[7] for f in und), self.lane_of(ev))
        # An older fix (out of order within the bound) is followed within T by the
        # newest one, so it is decided at once; only its effect above remains.

    def _stationary(self, ev: GpsEvent, cls: str, last: _Fix | None) -> bool:
        """Whether the vehicle is not moving at this fix, so it may report less often
        (AIS, ITU-R M.1371: a Class A ship at anchor or moored and not faster than
        3 knots every 3 minutes, under way every 2-10 s; Class B at 2 knots or less
        every 3 minutes; trackers sleep with the engine off): its reported speed is
        at most the class's ``stationary_kmh``, wherever the fix lies (a vessel that
        has just moored, a newcomer lying at anchor); without a reported speed, it
        lies within ``parked_m`` of its previous fix."""
        still = self._still_kmh[cls]
        if ev.speed_kmh is not None:
            return ev.speed_kmh <= still
        return last is not None and haversine_m(last[1], last[2], ev.lon, ev.lat) <= self.p.parked_m

    def on_arrival(self, ev: Event, at_ms: int, out: list[Alert]) -> None:
        """A fix ``on_event`` gets next came when event time was at ``at_ms``: stamped
        ahead of it (its clock runs ahead: also heard then) or behind it (it came after
        the front passed its stamp: it counts from ``at_ms``)."""
        super().on_arrival(ev, at_ms, out)
        if ev.ts_ms > at_ms:
            self.on_heard(ev, at_ms, out)

    def on_heard(self, ev: Event, at_ms: int, out: list[Alert]) -> None:
        """A fix of a known vehicle was set aside (its clock is off): it is not silent at
        ``at_ms``. That decides "no gap" for the fixes it follows within T, and the
        silence allowed after its last fix now runs from ``at_ms``."""
        if not isinstance(ev, GpsEvent) or ev.cls not in self._silence_ms:
            return
        st = self._state.get(ev.entity, at_ms)
        if st is None:
            return
        st.undecided = und = [f for f in st.undecided if not f[0] < at_ms <= f[0] + f[7]]
        if at_ms > st.max_ts:
            heard: _Fix = (at_ms, *st.last[1:])
            st.last, st.max_ts = heard, at_ms
            self._shift.pop(ev.entity, None)  # it spoke at its lane's clock
            und.append(heard)
            if st.timer is None:
                self._schedule(ev.entity, st, min(f[0] + f[7] for f in und), self.lane_of(ev))

    def _reappeared(self, ev: GpsEvent, st: _Track, out: list[Alert]) -> None:
        """After a silence longer than allowed: far from where driving on would have
        brought it (dead reckoning from its last two fixes), a second, higher alert."""
        last = st.last
        silent_ms = ev.ts_ms - last[0]
        plon, plat = last[1], last[2]
        if st.prev is not None and last[0] > st.prev[0]:
            k = silent_ms / (last[0] - st.prev[0])
            plon, plat = plon + (plon - st.prev[1]) * k, plat + (plat - st.prev[2]) * k
        off_m = haversine_m(plon, plat, ev.lon, ev.lat)
        ahead_m = haversine_m(last[1], last[2], plon, plat)
        if off_m <= max(self.p.off_track_m, 0.5 * ahead_m):
            return
        kind = "track.gap"
        zone = ev.zones[0] if ev.zones else None
        out.append(
            Alert(
                alert_id(kind, f"{ev.entity}/reappeared", zone, last[0]),
                kind,
                self.p.off_track_severity,
                ev.entity,
                "gps",
                zone,
                ev.lon,
                ev.lat,
                ev.ts_ms,
                last[0],
                {
                    "class": ev.cls,
                    "cargo": ev.cargo,
                    "reappeared": "off its track",
                    "silent_s": silent_ms / 1000,
                    "max_silence_s": last[7] / 1000,
                    "moved_m": round(haversine_m(last[1], last[2], ev.lon, ev.lat)),
                    "off_track_m": round(off_m),
                    "last_lon": last[1],
                    "last_lat": last[2],
                    "last_fix_id": last[4],
                    "event_id": ev.id,
                },
            )
        )

    def _note_shift(self, ev: GpsEvent) -> None:
        """The vehicle's newest fix was just taken: its shift (live runs) is that fix's,
        anchored to its source's transit (:meth:`LaneDetector.event_shift`)."""
        shift = self.event_shift(ev)
        if shift is not None:
            self._shift[ev.entity] = shift
        elif self._shift:
            self._shift.pop(ev.entity, None)

    def _judged_clock(self, entity: str, lane: str, clock_ms: int) -> int:
        anchored = self._shift.get(entity) if self._shift else None
        return clock_ms if anchored is None else self.judged_clock(lane, clock_ms, anchored)

    def _schedule(self, entity: str, st: _Track, deadline: int, lane: str) -> None:
        # One-second buckets keep the timer heap small. A bucket pops once the clock of
        # the vehicle's lane (its source) or the shard's clock reaches it, at most a
        # second before the deadline is passed; a key popped too early is filed again and
        # looked at on the next advance. A vehicle shifted ahead of its lane (live runs)
        # is due that much sooner on its lane's clock.
        anchored = self._shift.get(entity) if self._shift else None
        if anchored is not None:  # shifted: looked at early enough for its source's drift
            deadline -= self.shift_now(lane, anchored) + DRIFT_MS
        bucket = deadline // 1000 * 1000
        st.timer = bucket
        self._timers.add(entity, bucket, lane)

    def advance(self, wm_ms: int, lanes: Mapping[str, int], moved: bool, out: list[Alert]) -> None:
        for bucket, entity, lane in self._timers.pop_due(wm_ms, lanes):
            st = self._state.get(entity, NO_WATERMARK)  # a look, not a use
            if st is None or st.timer != bucket:
                if st is None and self._shift:
                    self._shift.pop(entity, None)
                continue  # evicted, or superseded
            st.timer = None
            clock = self._judged_clock(entity, lane, self.clock_of(lane, wm_ms))
            keep: list[_Fix] = []
            for f in st.undecided:
                if f[0] + f[7] < clock:
                    out.append(self._alert(entity, f))
                else:
                    keep.append(f)
            st.undecided = keep
            if keep:
                self._schedule(entity, st, min(f[0] + f[7] for f in keep), lane)
            elif self._shift:
                self._shift.pop(entity, None)
        if moved:
            self._state.evict_idle(wm_ms)
            self._usual.evict_idle(wm_ms)

    def _alert(self, entity: str, f: _Fix) -> Alert:
        ts, lon, lat, zone, fix_id, cls, cargo, silence_ms, interval_ms, fleet_ms = f
        return Alert.make(
            "track.gap",
            self.p.severity,
            entity,
            "gps",
            zone,
            lon,
            lat,
            ts_ms=ts + silence_ms,
            first_ts_ms=ts,
            evidence={
                "class": cls,
                "cargo": cargo,
                "max_silence_s": silence_ms / 1000,
                "observed_interval_s": interval_ms / 1000 if interval_ms else None,
                "fleet_interval_s": fleet_ms / 1000 if fleet_ms else None,
                "last_fix_id": fix_id,
            },
        )

    def live_keys(self) -> int:
        return len(self._state)

    @classmethod
    def contract_case(cls, seed: int) -> ContractCase:
        """Five trucks report every 15 s for 20 min; one goes dark at minute 10."""
        rng = random.Random(seed)
        t0, period = 1_767_225_600_000, 15_000
        events: list[Event] = []
        watermarks: dict[int, int] = {}
        anomaly_from = -1
        for k in range(80):
            for v in range(5):
                if v == 0 and k > 40:
                    continue
                ts = t0 + k * period + v * 1000
                lon = 121.0 + v * 0.01 + k * 1e-3 + rng.uniform(-1e-4, 1e-4)  # driving
                events.append(GpsEvent(ts, f"hz-{v}", lon, 32.0, "hazmat_truck", id=f"e{k}-{v}"))
            watermarks[len(events) - 1] = t0 + k * period - 30_000
            if k == 40:
                anomaly_from = len(events)
        det = cls(GapParams(max_silence_s={"hazmat_truck": 180}))
        return ContractCase(det, events, frozenset(cls.kinds), anomaly_from, watermarks)
