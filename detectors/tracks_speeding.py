"""``track.speeding``: a watched vehicle over its speed limit for a sustained time.

The limit of a fix is the lowest of its class limit (``limits_kmh``), the limit
of each zone kind it is in (``zone_limits_kmh``) and a zone's own rule
``speed_limit_kmh`` (which replaces its kind's limit). An episode starts with
the first fix over the limit and alerts once, when it has lasted ``min_over_s``,
has ``min_fixes`` fixes over the limit and its mean speed over every fix since it
started (those just under the limit too) is over the limit: a vehicle holding the
limit, its reported speed wavering a km/h either side at one fix a second, is not
speeding (it met "3 fixes over 60 s" within a minute). It ends (hysteresis) at
the first fix at or below ``limit - clear_below_kmh``, after ``max_fix_gap_s``
without a fix, or when it has lasted ``min_over_s`` with its mean at or under the
limit (the next fix over the limit begins a new one). Speed is the reported
``speed``, else derived over the track of the last ``speed_window_s`` (path
length over time, from the newest fix at least that old), never from one
segment: timing jitter between two close fixes (1.2 km in a "7 s" that was
really 14) is not speeding. Out-of-order fixes are ignored:
arrival order is fixed, so this is deterministic.

The evidence names the limit and the zone that decided (those of the fix that
completed the episode, the strictest limit it was over), the episode's mean
speed over every fix (``speed_kmh``) and the highest speed of one fix
(``max_speed_kmh``).

Timeline (limit 80 km/h, min 60 s and 3 fixes, clear below 75)::

    t(s)     0    15   30   45   60   75   90   105
    km/h     70   92   95   78   93   96   74   95
    episode       [start .............. ^alert]  end [new episode]
                                         ts 75 (60 s, 4 fixes over), first_ts 15

>>> from citywatch.detectors.events import GpsEvent
>>> det = SpeedingDetector(SpeedingParams(limits_kmh={"tanker": 80}), {})
>>> out = []
>>> for i, kmh in enumerate([70, 92, 95, 78, 93, 96, 74, 95]):
...     det.on_event(GpsEvent(i * 15_000, "tk-1", 121.0, 32.0, "tanker", kmh), out)
>>> [(a.kind, a.first_ts_ms, a.ts_ms, a.evidence["max_speed_kmh"]) for a in out]
[('track.speeding', 15000, 75000, 96.0)]
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from citywatch.detectors import params
from citywatch.detectors.alerts import Alert
from citywatch.detectors.base import ContractCase, Detector, KeyedState, ZoneCatalog
from citywatch.detectors.columns import pack, unpack
from citywatch.detectors.events import Event, GpsEvent
from citywatch.detectors.state import Snapshot, TuplePickled, decode_records, encode_record
from citywatch.geo.distance import haversine_m

OWNER = "track.speeding"
ZONE_RULE = "speed_limit_kmh"


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeedingParams:
    """``[track.speeding]``: limits per class and per zone kind, and what "sustained" means."""

    limits_kmh: Mapping[str, float] = field(
        default_factory=lambda: {"hazmat_truck": 80.0, "tanker": 80.0, "muck_truck": 60.0}
    )
    zone_limits_kmh: Mapping[str, float] = field(default_factory=dict)
    min_over_s: int = 60
    min_fixes: int = 3
    clear_below_kmh: float = 5.0
    max_fix_gap_s: int = 120
    min_derive_s: int = 5
    speed_window_s: int = 30
    severity: str = "yellow"
    idle_evict_s: int = 3600

    def __post_init__(self) -> None:
        for cls, kmh in self.limits_kmh.items():
            params.positive(OWNER, f"limits_kmh.{cls}", kmh)
        for kind, kmh in self.zone_limits_kmh.items():
            params.positive(OWNER, f"zone_limits_kmh.{kind}", kmh)
        params.non_negative(OWNER, "min_over_s", self.min_over_s)
        params.positive(OWNER, "min_fixes", self.min_fixes)
        params.non_negative(OWNER, "clear_below_kmh", self.clear_below_kmh)
        params.positive(OWNER, "max_fix_gap_s", self.max_fix_gap_s)
        params.positive(OWNER, "min_derive_s", self.min_derive_s)
        params.positive(OWNER, "speed_window_s", self.speed_window_s)
        params.positive(OWNER, "idle_evict_s", self.idle_evict_s)
        params.severity(OWNER, self.severity)


# (ts_ms, lon, lat, metres driven since the vehicle was first seen)
_Pos = tuple[int, float, float, float]
TRACK_MAX = 64  # fixes kept for the windowed speed


@dataclass(slots=True)
class _Episode(TuplePickled):
    FLAT_COLUMNS = True  # its track of recent fixes: columns of numbers in a snapshot

    last_ts: int
    track: list[_Pos]
    over: bool = False
    first_ts: int = 0
    fixes: int = 0
    max_kmh: float = 0.0
    sum_kmh: float = 0.0
    first_id: str | None = None
    alerted: bool = False
    derived: bool = False
    # every fix of the episode, those between ``limit - clear_below_kmh`` and the
    # limit too: the episode's mean speed, which must be over the limit
    seen: int = 0
    seen_kmh: float = 0.0


def _with_episode_mean(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 -> 2: an episode under way gains its mean over every fix, started from
    what version 1 kept (its fixes over the limit)."""
    keyed = data.get("_state")
    if not isinstance(keyed, Snapshot):
        return data

    def widened(st: Any) -> Any:
        if isinstance(st, _Episode) and not hasattr(st, "seen"):
            st.seen, st.seen_kmh = st.fixes, st.sum_kmh
        return st

    if keyed.version == 1:  # one pickle of all keys
        for _key, st in keyed.data.get("items", []):
            widened(st)
    elif keyed.version in (3, 4):  # keys and records as columns
        packed = pack([widened(st) for st in unpack(keyed.data["records"])])
        data["_state"] = replace(keyed, data={**keyed.data, "records": packed})
    else:
        records = b"".join(
            encode_record((key, used, seen, widened(st)))
            for (key, used, seen, st), _raw in decode_records(keyed.data["records"])
        )
        data["_state"] = replace(keyed, data={**keyed.data, "records": records})
    return data


class SpeedingDetector(Detector):
    kinds = ("track.speeding",)
    event_type = "gps"

    STATE = ("_state",)
    STATE_VERSION = 2  # 2: the episode's mean over every fix
    MIGRATIONS: ClassVar[dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {
        1: _with_episode_mean
    }

    def __init__(self, p: SpeedingParams, zones: ZoneCatalog) -> None:
        self.p = p
        self._zone_limit: dict[str, float] = {}
        self.set_zones(zones)
        self._state: KeyedState[_Episode] = KeyedState(p.idle_evict_s * 1000)

    def set_zones(self, zones: ZoneCatalog) -> None:
        limits: dict[str, float] = {}
        for zid, meta in zones.items():
            rule = meta.rules.get(ZONE_RULE) if meta.rules else None
            kmh = rule if rule is not None else self.p.zone_limits_kmh.get(meta.kind)
            if kmh is not None:
                limits[zid] = float(kmh)
        self._zone_limit = limits

    def limit_of(self, ev: GpsEvent) -> tuple[float, str | None]:
        """The limit that applies to a fix, and the zone that sets it (None: its class)."""
        limit, zone = self.p.limits_kmh[ev.cls or ""], None
        for z in ev.zones:
            kmh = self._zone_limit.get(z)
            if kmh is not None and kmh < limit:
                limit, zone = kmh, z
        return limit, zone

    def on_event(self, ev: Event, out: list[Alert]) -> None:
        if not isinstance(ev, GpsEvent) or ev.cls not in self.p.limits_kmh:
            return
        ts = ev.ts_ms
        self._state.take_stale(ev.entity, ts)  # as a watermark would have evicted it
        st = self._state.get(ev.entity, ts)
        if st is None:
            st = _Episode(ts, [(ts, ev.lon, ev.lat, 0.0)])
            self._state.put(ev.entity, st, ts)
            if ev.speed_kmh is None:
                return
        elif ts <= st.last_ts:
            return
        elif ev.speed_kmh is not None:  # reported: a derived speed would start from here
            st.track[:] = [(ts, ev.lon, ev.lat, 0.0)]
        else:
            self._extend(st.track, ev)
        kmh = ev.speed_kmh
        if kmh is None:
            kmh = self._windowed_kmh(st.track)
            if kmh is None:
                return  # too short a track to derive a speed from jitter
        if st.over and ts - st.last_ts > self.p.max_fix_gap_s * 1000:
            st.over = False
        st.last_ts = ts
        limit, zone = self.limit_of(ev)
        if kmh > limit:
            if not st.over:
                st.over, st.first_ts, st.first_id, st.alerted = True, ts, ev.id, False
                st.fixes, st.max_kmh, st.sum_kmh = 0, 0.0, 0.0
                st.seen, st.seen_kmh = 0, 0.0
            st.fixes += 1
            st.max_kmh = max(st.max_kmh, kmh)
            st.sum_kmh += kmh
            st.seen += 1
            st.seen_kmh += kmh
            st.derived = ev.speed_kmh is None
        elif kmh <= limit - self.p.clear_below_kmh or not st.over:
            st.over = False
            return
        else:  # at or just under the limit: in the episode, not over
            st.seen += 1
            st.seen_kmh += kmh
        if st.alerted or ts - st.first_ts < self.p.min_over_s * 1000:
            return
        if st.seen_kmh <= limit * st.seen:
            # held at the limit, not over it: the episode ends, and the next fix over
            # the limit begins a new one (an hour at the limit does not dilute the
            # mean of the speeding that follows)
            st.over = False
        elif kmh > limit and st.fixes >= self.p.min_fixes:
            st.alerted = True
            out.append(self._alert(ev, st, limit, zone))

    def _extend(self, track: list[_Pos], ev: GpsEvent) -> None:
        """Add a fix; keep one fix at least ``speed_window_s`` old and the ones after it."""
        ts0, lon0, lat0, m0 = track[-1]
        track.append((ev.ts_ms, ev.lon, ev.lat, m0 + haversine_m(lon0, lat0, ev.lon, ev.lat)))
        horizon = ev.ts_ms - self.p.speed_window_s * 1000
        drop = 0
        while drop + 1 < len(track) and track[drop + 1][0] <= horizon:
            drop += 1
        drop = max(drop, len(track) - TRACK_MAX)
        if drop:
            del track[:drop]

    def _windowed_kmh(self, track: list[_Pos]) -> float | None:
        """Path length over time from the oldest kept fix; None below ``min_derive_s``."""
        (ts0, _, _, m0), (ts1, _, _, m1) = track[0], track[-1]
        if ts1 - ts0 < self.p.min_derive_s * 1000:
            return None
        return (m1 - m0) / (ts1 - ts0) * 3600.0

    def _alert(self, ev: GpsEvent, st: _Episode, limit: float, zone: str | None) -> Alert:
        return Alert.make(
            "track.speeding",
            self.p.severity,
            ev.entity,
            "gps",
            zone,
            ev.lon,
            ev.lat,
            ts_ms=ev.ts_ms,
            first_ts_ms=st.first_ts,
            evidence={
                "class": ev.cls,
                "cargo": ev.cargo,
                "limit_kmh": limit,
                "limit_zone": zone,
                "speed_kmh": round(st.seen_kmh / st.seen, 1),
                "max_speed_kmh": round(float(st.max_kmh), 1),
                "speed_from": (
                    f"track over {self.p.speed_window_s} s" if st.derived else "reported"
                ),
                "duration_s": (ev.ts_ms - st.first_ts) / 1000,
                "fixes": st.fixes,
                "first_event_id": st.first_id,
                "event_id": ev.id,
            },
        )

    def on_watermark(self, wm_ms: int, out: list[Alert]) -> None:
        self._state.evict_idle(wm_ms)

    def live_keys(self) -> int:
        return len(self._state)

    @classmethod
    def contract_case(cls, seed: int) -> ContractCase:
        """Four tankers at 40-70 km/h; one speeds up to 95-105 km/h from fix 30 on."""
        rng = random.Random(seed)
        t0, period = 1_767_225_600_000, 15_000
        events: list[Event] = []
        anomaly_from = -1
        for k in range(60):
            if k == 30:
                anomaly_from = len(events)
            for v in range(4):
                fast = v == 0 and k >= 30
                kmh = rng.uniform(95, 105) if fast else rng.uniform(40, 70)
                ts = t0 + k * period + v * 700
                events.append(
                    GpsEvent(ts, f"tk-{v}", 121.0 + k * 0.003, 32.0 + v * 0.01, "tanker", kmh)
                )
        det = cls(SpeedingParams(limits_kmh={"tanker": 80}), {})
        return ContractCase(det, events, frozenset(cls.kinds), anomaly_from)
