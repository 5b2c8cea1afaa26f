"""Geofence detectors over GPS fixes already annotated with their zones.

``geofence.enter``: a vehicle of a prohibited class enters a zone whose kind
forbids that class (a muck truck on the airport site, a vessel in the
no-fishing reach). The first fix of an entity inside such a zone counts as an
entry. ``min_inside_fixes`` consecutive fixes inside are needed before the
entry is confirmed, and ``min_outside_fixes`` outside before it is over, so a
truck jittering on the border gives one alert, not a storm.

>>> from detectors.events import GpsEvent
>>> det = EnterDetector({"airport_site": EnterRule(classes=("muck_truck",))},
...                     {"ap": ZoneMeta("ap", "airport_site")})
>>> out = []
>>> det.on_event(GpsEvent(0, "t1", 121.0, 32.0, "muck_truck", zones=("ap",)), out)
>>> [(a.kind, a.subject, a.zone) for a in out]
[('geofence.enter', 't1', 'ap')]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from detectors import params
from detectors.alerts import Alert
from detectors.base import Detector, KeyedState, ZoneCatalog, ZoneMeta
from detectors.events import Event, GpsEvent

__all__ = ["EnterDetector", "EnterRule", "ZoneMeta"]


@dataclass(frozen=True, slots=True, kw_only=True)
class EnterRule:
    """Which entity classes may not enter zones of one kind, and how loud the alert is."""

    classes: tuple[str, ...]
    severity: str = "orange"
    min_inside_fixes: int = 1
    min_outside_fixes: int = 2

    def __post_init__(self) -> None:
        owner = "geofence.enter rule"
        if not self.classes:
            msg = f'{owner}: "classes" must list at least one entity class'
            raise ValueError(msg)
        params.severity(owner, self.severity)
        params.positive(owner, "min_inside_fixes", self.min_inside_fixes)
        params.positive(owner, "min_outside_fixes", self.min_outside_fixes)


@dataclass(slots=True)
class _Presence:
    inside: bool = False
    streak: int = 0  # consecutive fixes contradicting `inside`
    streak_first_ts: int = 0


class EnterDetector(Detector):
    kinds = ("geofence.enter",)
    event_type = "gps"

    def __init__(
        self,
        rules_by_kind: Mapping[str, EnterRule],
        zones: ZoneCatalog,
        *,
        idle_evict_s: int = 6 * 3600,
    ) -> None:
        self.rules_by_kind = dict(rules_by_kind)
        self.idle_evict_s = idle_evict_s
        self._rules: dict[str, EnterRule] = {}
        self.set_zones(zones)
        self._state: KeyedState[dict[str, _Presence]] = KeyedState(idle_evict_s * 1000)

    def set_zones(self, zones: ZoneCatalog) -> None:
        """Rules per zone id, zone overrides (``rules.enter``) over kind defaults."""
        rules: dict[str, EnterRule] = {}
        for zid, meta in zones.items():
            base = self.rules_by_kind.get(meta.kind)
            override = meta.rules.get("enter") if meta.rules else None
            if isinstance(override, dict):
                merged = {**(_as_dict(base) if base else {}), **override}
                rules[zid] = params.build(EnterRule, f"zone {zid!r} rules.enter", merged)
            elif base is not None:
                rules[zid] = base
        self._rules = rules
        self._zone_kind = {zid: meta.kind for zid, meta in zones.items()}

    def on_event(self, ev: Event, out: list[Alert]) -> None:
        if not isinstance(ev, GpsEvent) or ev.cls is None:
            return
        rules = self._rules
        state = self._state.get(ev.entity, ev.ts_ms)
        if state is None:
            if not any(z in rules for z in ev.zones):
                return
            state = {}
            self._state.put(ev.entity, state, ev.ts_ms)
        inside_now = {z for z in ev.zones if z in rules and ev.cls in rules[z].classes}
        for zid in inside_now | state.keys():
            pres = state.get(zid)
            if pres is None:
                pres = state[zid] = _Presence()
            rule = rules.get(zid)
            is_in = zid in inside_now
            if is_in == pres.inside:
                pres.streak = 0
                continue
            if pres.streak == 0:
                pres.streak_first_ts = ev.ts_ms
            pres.streak += 1
            if rule is None:  # the zone or its rule went away on reload
                del state[zid]
                continue
            if is_in and pres.streak >= rule.min_inside_fixes:
                pres.inside, pres.streak = True, 0
                out.append(
                    Alert.make(
                        "geofence.enter",
                        rule.severity,
                        ev.entity,
                        "gps",
                        zid,
                        ev.lon,
                        ev.lat,
                        ts_ms=ev.ts_ms,
                        first_ts_ms=pres.streak_first_ts,
                        evidence={
                            "class": ev.cls,
                            "zone_kind": self._zone_kind.get(zid),
                            "fixes_inside": rule.min_inside_fixes,
                            "speed_kmh": ev.speed_kmh,
                            "event_id": ev.id,
                        },
                    )
                )
            elif not is_in and pres.streak >= rule.min_outside_fixes:
                del state[zid]
        if not state:
            self._state.pop(ev.entity)

    def on_watermark(self, wm_ms: int, out: list[Alert]) -> None:
        self._state.evict_idle(wm_ms)

    def live_keys(self) -> int:
        return len(self._state)


def _as_dict(rule: EnterRule) -> dict[str, object]:
    return {name: getattr(rule, name) for name in rule.__dataclass_fields__}
