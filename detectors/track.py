"""Track detectors over GPS fixes.

``track.stop``: a vehicle of a watched class (hazmat truck, tanker) stays
within ``radius_m`` of where it stopped for ``min_stop_s`` or longer, outside
zones where stopping is allowed (chemical parks, approved stops). A stop with
any fix inside an allowed zone is allowed as a whole, so a truck parked at the
edge of a service area does not alert when jitter or its departure puts one
fix outside. A fix reporting more than ``max_speed_kmh`` is moving. Up to
``max_outlier_fixes`` consecutive fixes outside the radius (GPS jitter) do not
end the stop; missing fixes do not either, as long as the next fix is still
within the radius.

Timeline (radius 50 m, min stop 15 min, one jittered fix tolerated)::

    t(min)  0    5    10   12   15
    fix     A    A    A    J    A      A = at the stop, J = 120 m away
    alert                       ^ track.stop, first_ts = 0, duration 15 min

>>> from citywatch.detectors.events import GpsEvent
>>> det = StopDetector(StopParams(classes=("hazmat_truck",), radius_m=50, min_stop_s=600), {})
>>> out = []
>>> for t in range(0, 11):
...     det.on_event(GpsEvent(t * 60_000, "hz-1", 121.0, 32.0, "hazmat_truck"), out)
>>> [(a.kind, a.evidence["duration_s"]) for a in out]
[('track.stop', 600)]
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from citywatch.detectors import params
from citywatch.detectors.alerts import Alert
from citywatch.detectors.base import ContractCase, Detector, KeyedState, ZoneCatalog
from citywatch.detectors.events import Event, GpsEvent
from citywatch.geo.distance import haversine_m


@dataclass(frozen=True, slots=True, kw_only=True)
class StopParams:
    classes: tuple[str, ...] = ("hazmat_truck", "tanker")
    radius_m: float = 50.0
    min_stop_s: int = 900
    allowed_zone_kinds: tuple[str, ...] = ("chemical_park", "approved_stop")
    max_outlier_fixes: int = 1
    max_speed_kmh: float = 8.0
    severity: str = "orange"
    idle_evict_s: int = 6 * 3600

    def __post_init__(self) -> None:
        owner = "track.stop"
        params.positive(owner, "radius_m", self.radius_m)
        params.positive(owner, "min_stop_s", self.min_stop_s)
        params.non_negative(owner, "max_outlier_fixes", self.max_outlier_fixes)
        params.positive(owner, "max_speed_kmh", self.max_speed_kmh)
        params.positive(owner, "idle_evict_s", self.idle_evict_s)
        params.severity(owner, self.severity)


@dataclass(slots=True)
class _Stop:
    lon: float
    lat: float
    first_ts: int
    last_ts: int
    fixes: int = 1
    outliers: int = 0
    cand_lon: float = 0.0
    cand_lat: float = 0.0
    cand_ts: int = 0
    cand_allowed: bool = False
    allowed: bool = False
    alerted: bool = False


class StopDetector(Detector):
    kinds = ("track.stop",)
    event_type = "gps"

    STATE = ("_state",)

    def __init__(self, p: StopParams, zones: ZoneCatalog) -> None:
        self.p = p
        self._allowed: frozenset[str] = frozenset()
        self.set_zones(zones)
        self._state: KeyedState[_Stop] = KeyedState(p.idle_evict_s * 1000)

    def set_zones(self, zones: ZoneCatalog) -> None:
        self._allowed = frozenset(
            zid for zid, meta in zones.items() if meta.kind in self.p.allowed_zone_kinds
        )

    def on_event(self, ev: Event, out: list[Alert]) -> None:
        if not isinstance(ev, GpsEvent) or ev.cls not in self.p.classes:
            return
        in_allowed = any(z in self._allowed for z in ev.zones)
        st = self._state.get(ev.entity, ev.ts_ms)
        if st is None:
            st = _Stop(ev.lon, ev.lat, ev.ts_ms, ev.ts_ms, allowed=in_allowed)
            self._state.put(ev.entity, st, ev.ts_ms)
            return
        if ev.ts_ms <= st.last_ts:
            return  # out of order within the allowed bound: it adds nothing to a stop
        radius = self.p.radius_m
        moving = ev.speed_kmh is not None and ev.speed_kmh > self.p.max_speed_kmh
        if not moving and haversine_m(st.lon, st.lat, ev.lon, ev.lat) <= radius:
            st.outliers = 0
            st.allowed = st.allowed or in_allowed
        else:
            st.outliers += 1
            if st.outliers == 1:
                st.cand_lon, st.cand_lat, st.cand_ts = ev.lon, ev.lat, ev.ts_ms
                st.cand_allowed = in_allowed
            if st.outliers <= self.p.max_outlier_fixes:
                return
            # It really moved: restart from the first fix away, or from this one.
            if not moving and haversine_m(st.cand_lon, st.cand_lat, ev.lon, ev.lat) <= radius:
                st.lon, st.lat, st.first_ts = st.cand_lon, st.cand_lat, st.cand_ts
                st.allowed = st.cand_allowed or in_allowed
                st.fixes = 1
            else:
                st.lon, st.lat, st.first_ts = ev.lon, ev.lat, ev.ts_ms
                st.allowed = in_allowed
                st.fixes = 0
            st.outliers = 0
            st.alerted = False
        st.fixes += 1
        st.last_ts = ev.ts_ms
        duration_ms = ev.ts_ms - st.first_ts
        if st.alerted or st.allowed or duration_ms < self.p.min_stop_s * 1000:
            return
        st.alerted = True
        out.append(
            Alert.make(
                "track.stop",
                self.p.severity,
                ev.entity,
                "gps",
                ev.zones[0] if ev.zones else None,
                st.lon,
                st.lat,
                ts_ms=ev.ts_ms,
                first_ts_ms=st.first_ts,
                evidence={
                    "class": ev.cls,
                    "cargo": ev.cargo,
                    "duration_s": duration_ms // 1000,
                    "radius_m": radius,
                    "fixes": st.fixes,
                    "event_id": ev.id,
                },
            )
        )

    def on_watermark(self, wm_ms: int, out: list[Alert]) -> None:
        self._state.evict_idle(wm_ms)

    def live_keys(self) -> int:
        return len(self._state)

    @classmethod
    def contract_case(cls, seed: int) -> ContractCase:
        """Three hazmat trucks drive; from fix 30 one stands by the road for 20 minutes,
        with GPS jitter and one fix 120 m off."""
        rng = random.Random(seed)
        t0, period = 1_767_225_600_000, 15_000
        events: list[Event] = []
        anomaly_from = -1
        for k in range(110):
            if k == 30:
                anomaly_from = len(events)
            for v in range(3):
                stopped = v == 0 and k >= 30
                if stopped:
                    off = 0.0013 if k == 50 else rng.uniform(-5e-5, 5e-5)
                    lon, lat, kmh = 121.2 + off, 32.0, rng.uniform(0.0, 1.0)
                else:
                    lon, lat, kmh = 121.0 + k * 0.003, 32.0 + v * 0.01, rng.uniform(40, 60)
                ts = t0 + k * period + v * 900
                events.append(GpsEvent(ts, f"hz-{v}", lon, lat, "hazmat_truck", kmh, id=f"e{k}"))
        det = cls(StopParams(classes=("hazmat_truck",), radius_m=50, min_stop_s=900), {})
        return ContractCase(det, events, frozenset(cls.kinds), anomaly_from)
