"""Implausible GPS jumps (teleports): bad data for the dead-letter output, not alerts.

A fix whose implied speed from the entity's last accepted fix is above its
class's maximum (a truck "driving" 48 km in 15 s) is a positioning error, not
an incident. :class:`JumpFilter` runs in each shard before the detectors: a
rejected fix becomes a :class:`~detectors.events.DeadLetter` with a reason like
``gps.jump: entity 'hz-1' jumped 48.2 km in 15 s (11,568 km/h > 250 km/h max)``
and never touches detector state. Jumps shorter than ``min_jump_m`` are never
teleports (that is jitter, which the track detectors tolerate). When the
filter rejects ``reanchor_after`` fixes in a row, the next fix is accepted as
the new anchor: the bad one was then more likely the anchor itself.

Timeline (hazmat truck, fixes every 15 s, max 250 km/h)::

    t(s)    0    15    30    45
    fix     A    T     A'    A''      T = 48 km away
    result  ok   dead  ok    ok       (A' is compared with A, not with T)

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
from citywatch.detectors.state import Stateful
from citywatch.geo.distance import haversine_m

OWNER = "track.jump"


@dataclass(frozen=True, slots=True, kw_only=True)
class JumpParams:
    """``[track.jump]``: the fastest plausible speed per class, and what is never a jump."""

    max_speed_kmh: Mapping[str, float] = field(
        default_factory=lambda: {"vessel": 80.0, "fishing_boat": 80.0}
    )
    default_max_speed_kmh: float = 250.0
    min_jump_m: float = 1000.0
    reanchor_after: int = 3
    idle_evict_s: int = 6 * 3600

    def __post_init__(self) -> None:
        for cls, kmh in self.max_speed_kmh.items():
            params.positive(OWNER, f"max_speed_kmh.{cls}", kmh)
        params.positive(OWNER, "default_max_speed_kmh", self.default_max_speed_kmh)
        params.non_negative(OWNER, "min_jump_m", self.min_jump_m)
        params.positive(OWNER, "reanchor_after", self.reanchor_after)
        params.positive(OWNER, "idle_evict_s", self.idle_evict_s)


@dataclass(slots=True)
class _Anchor:
    ts_ms: int
    lon: float
    lat: float
    rejects: int = 0


class JumpFilter(Stateful):
    """Splits a shard's events into plausible ones and teleports (dead letters)."""

    STATE = ("_state",)

    def __init__(self, p: JumpParams) -> None:
        self.p = p
        self._state: KeyedState[_Anchor] = KeyedState(p.idle_evict_s * 1000)

    def admit(self, events: list[Event], dead: list[DeadLetter]) -> list[Event]:
        """The events to keep, in order; teleported fixes are appended to ``dead``."""
        kept: list[Event] = []
        for ev in events:
            if not isinstance(ev, GpsEvent) or self._plausible(ev, dead):
                kept.append(ev)
        return kept

    def _plausible(self, ev: GpsEvent, dead: list[DeadLetter]) -> bool:
        st = self._state.get(ev.entity, ev.ts_ms)
        if st is None:
            self._state.put(ev.entity, _Anchor(ev.ts_ms, ev.lon, ev.lat), ev.ts_ms)
            return True
        dist_m = haversine_m(st.lon, st.lat, ev.lon, ev.lat)
        dt_ms = abs(ev.ts_ms - st.ts_ms)
        limit = self.p.max_speed_kmh.get(ev.cls or "", self.p.default_max_speed_kmh)
        kmh = dist_m / max(dt_ms, 1000) * 3600.0
        if dist_m >= self.p.min_jump_m and kmh > limit and st.rejects < self.p.reanchor_after:
            st.rejects += 1
            reason = (
                f"gps.jump: entity {ev.entity!r} jumped {dist_m / 1000:.1f} km in "
                f"{dt_ms / 1000:g} s ({kmh:,.0f} km/h > {limit:g} km/h max)"
            )
            dead.append(DeadLetter(orjson.dumps(event_to_json(ev)), reason, category="gps.jump"))
            return False
        if ev.ts_ms >= st.ts_ms or st.rejects:
            st.ts_ms, st.lon, st.lat = ev.ts_ms, ev.lon, ev.lat
        st.rejects = 0
        return True

    def on_watermark(self, wm_ms: int) -> None:
        self._state.evict_idle(wm_ms)

    def live_keys(self) -> int:
        return len(self._state)
