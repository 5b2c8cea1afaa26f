"""Implausible GPS jumps (teleports): bad data for the dead-letter output, not alerts.

A fix whose implied speed from the entity's last accepted fix is above its
class's maximum (a truck "driving" 48 km in 15 s) is a positioning error, not
an incident. :class:`JumpFilter` runs in each shard before the detectors: a
rejected fix becomes a :class:`~detectors.events.DeadLetter` with a reason like
``gps.jump: entity 'hz-1' jumped 48.2 km in 15 s (11,568 km/h > 250 km/h max)``
and never touches detector state. Jumps shorter than ``min_jump_m`` are never
teleports (that is jitter, which the track detectors tolerate).

**Which fix is wrong** is decided with a short look-ahead, not by the order the
fixes came in. A fix ``min_jump_m`` or more from the last accepted one is *held*
when it is implausible from it, or when it comes after a silence longer than
``hold_s`` (after a silence any jump looks plausible, so the first fix decides
nothing). The fixes that follow decide:

- a following fix plausible from the held one confirms it (the vehicle really is
  there; the earlier position was the odd one out);
- a following fix implausible from the held one but plausible from the last
  accepted fix refutes it: the held fix is the dead letter, not the good ones
  after it;
- otherwise, once ``lookahead_fixes`` fixes follow, the side more of them agree
  with wins; with no following fix within ``hold_s`` of event time, the held
  fix stands if it is plausible from the last accepted one.

Held fixes reach the detectors late, but never after the watermark the
detectors were given (:meth:`JumpFilter.floor` holds it back), so every
decision still depends on event time alone.

Timeline (hazmat truck, fixes every 7 s, max 250 km/h)::

    t(s)    0    (silent 10 min)    600   607   614
    fix     A                       X     A'    A''     X = 1.45 km off
    result  ok                      dead  ok    ok      (A' is plausible from A, not X)

>>> from citywatch.detectors.events import GpsEvent
>>> f = JumpFilter(JumpParams())
>>> dead = []
>>> kept = f.admit([GpsEvent(0, "hz-1", 121.0, 32.0, "hazmat_truck"),
...                 GpsEvent(15_000, "hz-1", 121.51, 32.0, "hazmat_truck"),
...                 GpsEvent(30_000, "hz-1", 121.001, 32.0, "hazmat_truck")], dead)
>>> [e.ts_ms for e in kept]
[0, 30000]
>>> dead[0].reason
"gps.jump: entity 'hz-1' jumped 48.1 km in 15 s (11,542 km/h > 250 km/h max)"
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import orjson

from citywatch.detectors import params
from citywatch.detectors.base import KeyedState
from citywatch.detectors.events import DeadLetter, Event, GpsEvent, event_to_json
from citywatch.detectors.state import Stateful, TuplePickled
from citywatch.detectors.watermark import source_name
from citywatch.geo.distance import haversine_m

OWNER = "track.jump"
NO_FLOOR = 2**62


@dataclass(frozen=True, slots=True, kw_only=True)
class JumpParams:
    """``[track.jump]``: the fastest plausible speed per class, what is never a jump,
    and how far to look ahead before deciding which fix is wrong."""

    max_speed_kmh: Mapping[str, float] = field(
        default_factory=lambda: {"vessel": 80.0, "fishing_boat": 80.0}
    )
    default_max_speed_kmh: float = 250.0
    min_jump_m: float = 1000.0
    lookahead_fixes: int = 2
    hold_s: int = 60
    idle_evict_s: int = 6 * 3600

    def __post_init__(self) -> None:
        for cls, kmh in self.max_speed_kmh.items():
            params.positive(OWNER, f"max_speed_kmh.{cls}", kmh)
        params.positive(OWNER, "default_max_speed_kmh", self.default_max_speed_kmh)
        params.non_negative(OWNER, "min_jump_m", self.min_jump_m)
        params.positive(OWNER, "lookahead_fixes", self.lookahead_fixes)
        params.positive(OWNER, "hold_s", self.hold_s)
        params.positive(OWNER, "idle_evict_s", self.idle_evict_s)
        if self.idle_evict_s <= self.hold_s:
            msg = f'{OWNER}: "idle_evict_s" must be longer than hold_s ({self.hold_s})'
            raise ValueError(msg)


@dataclass(slots=True)
class _Anchor(TuplePickled):
    FLAT_COLUMNS = True  # the fixes it holds: columns in a snapshot

    ts_ms: int
    lon: float
    lat: float
    held: list[GpsEvent] = field(default_factory=list)


class JumpFilter(Stateful):
    """Splits a shard's events into plausible ones and teleports (dead letters)."""

    STATE = ("_state",)

    def __init__(self, p: JumpParams) -> None:
        self.p = p
        self._state: KeyedState[_Anchor] = KeyedState(p.idle_evict_s * 1000)
        self._held: dict[str, int] = {}  # entity -> time of its first held fix
        self._hold_ms = p.hold_s * 1000
        # Fixes dropped by the last admit/release, each with the number of events
        # passed on before it (see :meth:`take_dropped`).
        self._dropped: list[tuple[int, GpsEvent]] = []

    def take_dropped(self) -> list[tuple[int, GpsEvent]]:
        """The fixes the last :meth:`admit` or :meth:`release` dropped, each with its
        place among the events that call returned (it came before the event at that
        index). A dropped fix had a wrong position, not a dead device: the vehicle was
        heard then (``track.gap`` counts it as presence)."""
        dropped, self._dropped = self._dropped, []
        return dropped

    def admit(self, events: list[Event], dead: list[DeadLetter]) -> list[Event]:
        """The events to pass on now, in order; teleported fixes are appended to ``dead``,
        fixes under look-ahead are held (see :meth:`release`)."""
        kept: list[Event] = []
        self._dropped = []
        for ev in events:
            if not isinstance(ev, GpsEvent):
                kept.append(ev)
                continue
            st = self._state.get(ev.entity, -NO_FLOOR)  # a look, not a use
            while st is not None and st.held and ev.ts_ms > st.held[0].ts_ms + self._hold_ms:
                self._timeout(ev.entity, st, kept, dead)  # its look-ahead time ran out first
            self._state.take_stale(ev.entity, ev.ts_ms)  # as a watermark would have evicted it
            st = self._state.get(ev.entity, ev.ts_ms)
            if st is None:
                self._state.put(ev.entity, _Anchor(ev.ts_ms, ev.lon, ev.lat), ev.ts_ms)
                kept.append(ev)
                continue
            self._step(ev.entity, st, ev, kept, dead)
        return kept

    def release(self, wm_ms: int, dead: list[DeadLetter]) -> list[Event]:
        """Decide held fixes whose look-ahead time passed before ``wm_ms``."""
        kept: list[Event] = []
        self._dropped = []
        due = sorted((t, e) for e, t in self._held.items() if t + self._hold_ms < wm_ms)
        for _t, entity in due:
            st = self._state.get(entity, -NO_FLOOR)  # a look, not a use
            while st is not None and st.held and st.held[0].ts_ms + self._hold_ms < wm_ms:
                self._timeout(entity, st, kept, dead)
        return kept

    def held_sources(self, by: str) -> dict[str, int]:
        """The watermark source (named under ``by``) of each fix held, with the time just
        before the first held fix of its vehicle: its lane, where the vehicle's absence
        is judged, must not pass it before the fix is decided. Other sources' lanes need
        not wait (only the shard's clock waits for every held fix, :meth:`floor`)."""
        out: dict[str, int] = {}
        for entity, t in self._held.items():
            st = self._state.get(entity, -NO_FLOOR)  # a look, not a use
            for ev in st.held if st is not None else ():
                source = source_name(by, ev.src, ev.type)
                out[source] = min(out.get(source, t - 1), t - 1)
        return out

    def floor(self) -> int:
        """The watermark the detectors may be given: before the first held fix."""
        return min(self._held.values(), default=NO_FLOOR + 1) - 1

    def _limit(self, ev: GpsEvent) -> float:
        return self.p.max_speed_kmh.get(ev.cls or "", self.p.default_max_speed_kmh)

    def _speed(self, ts_ms: int, lon: float, lat: float, ev: GpsEvent) -> tuple[float, float, int]:
        dist_m = haversine_m(lon, lat, ev.lon, ev.lat)
        dt_ms = abs(ev.ts_ms - ts_ms)
        return dist_m, dist_m / max(dt_ms, 1000) * 3600.0, dt_ms

    def _plausible(self, ts_ms: int, lon: float, lat: float, ev: GpsEvent) -> bool:
        dist_m, kmh, _ = self._speed(ts_ms, lon, lat, ev)
        return dist_m < self.p.min_jump_m or kmh <= self._limit(ev)

    def _step(
        self, entity: str, st: _Anchor, ev: GpsEvent, kept: list[Event], dead: list[DeadLetter]
    ) -> None:
        if st.held:
            st.held.append(ev)
            self._decide(entity, st, kept, dead)
            return
        dist_m, kmh, dt_ms = self._speed(st.ts_ms, st.lon, st.lat, ev)
        far = dist_m >= self.p.min_jump_m
        if ev.ts_ms < st.ts_ms:  # out of order: judged against the anchor, not held
            if far and kmh > self._limit(ev):
                dead.append(self._dead(ev, self._jumped(ev, dist_m, kmh, dt_ms)))
                self._dropped.append((len(kept), ev))
            else:
                kept.append(ev)
            return
        if far and (kmh > self._limit(ev) or dt_ms > self._hold_ms):
            st.held.append(ev)
            self._held[entity] = ev.ts_ms
            return
        st.ts_ms, st.lon, st.lat = ev.ts_ms, ev.lon, ev.lat
        kept.append(ev)

    def _decide(self, entity: str, st: _Anchor, kept: list[Event], dead: list[DeadLetter]) -> None:
        held, x, q = st.held, st.held[0], st.held[-1]
        if self._plausible(x.ts_ms, x.lon, x.lat, q):
            self._settle(entity, st, True, kept, dead)
        elif self._plausible(st.ts_ms, st.lon, st.lat, q):
            self._settle(entity, st, False, kept, dead)
        elif len(held) > self.p.lookahead_fixes:
            rest = held[1:]
            for_x = sum(self._plausible(x.ts_ms, x.lon, x.lat, f) for f in rest)
            for_a = sum(self._plausible(st.ts_ms, st.lon, st.lat, f) for f in rest)
            self._settle(entity, st, for_x > for_a, kept, dead)

    def _timeout(self, entity: str, st: _Anchor, kept: list[Event], dead: list[DeadLetter]) -> None:
        x = st.held[0]
        self._settle(entity, st, self._plausible(st.ts_ms, st.lon, st.lat, x), kept, dead)

    def _settle(
        self, entity: str, st: _Anchor, keep: bool, kept: list[Event], dead: list[DeadLetter]
    ) -> None:
        """Keep or drop the first held fix, then run the rest through again."""
        x, rest = st.held[0], st.held[1:]
        st.held = []
        del self._held[entity]
        if keep:
            st.ts_ms, st.lon, st.lat = x.ts_ms, x.lon, x.lat
            kept.append(x)
        else:
            dead.append(self._dead(x, self._refuted(st, x, rest)))
            self._dropped.append((len(kept), x))
        for ev in rest:
            while st.held and ev.ts_ms > st.held[0].ts_ms + self._hold_ms:
                self._timeout(entity, st, kept, dead)
            self._step(entity, st, ev, kept, dead)

    def _refuted(self, st: _Anchor, x: GpsEvent, rest: list[GpsEvent]) -> str:
        dist_m, kmh, dt_ms = self._speed(st.ts_ms, st.lon, st.lat, x)
        if kmh > self._limit(x) or not rest:
            return self._jumped(x, dist_m, kmh, dt_ms)
        q = rest[0]
        q_m, q_kmh, q_ms = self._speed(x.ts_ms, x.lon, x.lat, q)
        return (
            f"gps.jump: entity {x.entity!r} fix {dist_m / 1000:.1f} km off its track: the next "
            f"fix is {q_m / 1000:.1f} km from it {q_ms / 1000:g} s later "
            f"({q_kmh:,.0f} km/h > {self._limit(x):g} km/h max) and agrees with the track"
        )

    def _jumped(self, ev: GpsEvent, dist_m: float, kmh: float, dt_ms: int) -> str:
        return (
            f"gps.jump: entity {ev.entity!r} jumped {dist_m / 1000:.1f} km in "
            f"{dt_ms / 1000:g} s ({kmh:,.0f} km/h > {self._limit(ev):g} km/h max)"
        )

    @staticmethod
    def _dead(ev: GpsEvent, reason: str) -> DeadLetter:
        return DeadLetter(orjson.dumps(event_to_json(ev)), reason, category="gps.jump")

    def on_watermark(self, wm_ms: int) -> None:
        for entity in self._state.evict_idle(wm_ms):
            self._held.pop(entity, None)

    def live_keys(self) -> int:
        return len(self._state)
