"""Geofence detectors over events already annotated with their zones.

Rules are configured per zone kind (``[geofence.<rule>.<zone_kind>]``) and may
be overridden per zone (the zone's ``rules.<rule>`` property; ``false`` turns
the kind's rule off for that zone). Six rules, one alert kind each:

========  ===========================================================================
enter     an entity of a listed class becomes inside the zone
exit      an entity of a listed class that was inside leaves it
inside    on every fix inside, rate-limited to one alert per ``every_s``
outside   an entity that was inside an allowed area (any zone of the kind) leaves
          it, e.g. a hazmat truck off its chemical-park corridor
dwell     inside for ``dwell_s`` or longer (once per stay)
cross     a track passed through the zone (a thin levee strip, a line drawn as a
          small polygon) within ``max_pass_s``, even with no fix inside it
========  ===========================================================================

Filters: entity ``classes`` (GPS), video ``labels`` and ``min_confidence``
(``inside`` and ``dwell`` only, in :mod:`citywatch.detectors.geofence_video`), local
``hours`` and ``days`` windows checked at the time of the alert (Asia/Shanghai by
default), and ``severity``.

**Border hysteresis.** "Inside" is a confirmed state: ``min_inside_fixes``
consecutive fixes inside confirm it and ``min_outside_fixes`` consecutive fixes
outside end it, so a truck parked on a border whose fixes jitter in and out
gives one ``enter`` and no storm of enters and exits. Once a fix of the stay was
more than ``exit_margin_m`` (default 10 m) inside, only fixes more than that
margin outside count as outside (a Schmitt trigger in metres: a truck that drove
in and parked 12 m inside the edge stays inside under ~6 m of GPS noise). The
margin stays below such a parking depth: a truck that crossed a neighbouring
zone to park 12 m from it must count as out of that zone. A stay
that never got that deep (a jitter across the edge of a neighbouring zone, a
strip narrower than twice the margin) ends on any ``min_outside_fixes`` fixes
outside, as does every stay in a zone without geometry. Boundary rule (from the
zone index): a point on a zone's edge or vertex is inside.

Timeline (min_inside_fixes 2, min_outside_fixes 2, a dwell rule of 40 s)::

    fix     0  1  2  3  4  5  6  7  8  9      10 s apart
    where   o  I  I  o  I  I  I  o  o  o
    state   .  .  IN IN IN IN IN IN .  .
    alerts        enter      dwell    exit
                  (first_ts = fix 1, dwell counted from fix 1)

>>> from citywatch.detectors.events import GpsEvent
>>> det = GeofenceDetector({"enter": {"airport_site": EnterRule(classes=("muck_truck",))}},
...                        {"ap": ZoneMeta("ap", "airport_site")})
>>> out = []
>>> det.on_event(GpsEvent(0, "t1", 121.0, 32.0, "muck_truck", zones=("ap",)), out)
>>> [(a.kind, a.subject, a.zone) for a in out]
[('geofence.enter', 't1', 'ap')]
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely

from citywatch.detectors.alerts import Alert
from citywatch.detectors.base import (
    ContractCase,
    KeyedDetector,
    KeyedState,
    LocalClock,
    ZoneCatalog,
    ZoneMeta,
    in_hours,
)
from citywatch.detectors.events import Event, GpsEvent
from citywatch.detectors.geofence_rules import (
    PRESENCE_RULES,
    RULE_KINDS,
    RULE_TYPES,
    CrossRule,
    DwellRule,
    EnterRule,
    ExitRule,
    InsideRule,
    OutsideRule,
    Presence,
    RulesByKind,
    ZoneRule,
    build_rule,
    rules_for_zones,
)
from citywatch.geo.distance import EARTH_RADIUS_M

__all__ = [
    "RULE_KINDS",
    "RULE_TYPES",
    "CrossRule",
    "DwellRule",
    "EnterDetector",
    "EnterRule",
    "ExitRule",
    "GeofenceDetector",
    "InsideRule",
    "OutsideRule",
    "ZoneMeta",
    "ZoneRule",
    "build_rule",
]

M_PER_DEG = EARTH_RADIUS_M * math.pi / 180  # metres per degree of latitude
T_CASE = 1_781_528_400_000  # 2026-06-15T13:00:00Z, 21:00 in Nantong


@dataclass(slots=True)
class _State:
    """One entity in one zone under one rule (or in the allowed area, for ``outside``)."""

    inside: bool = False
    streak: int = 0  # consecutive fixes contradicting `inside`
    streak_first_ts: int = 0
    since_ts: int = 0  # first fix of the confirmed stay
    last_alert_ts: int = -1
    last_ts: int = 0  # video: the latest detection of the stay
    zone: str = ""  # outside: the allowed zone the entity was last in
    deep: bool = False  # a fix of the stay was more than the exit margin inside (v2)


@dataclass(slots=True)
class _Track:
    states: dict[tuple[str, str], _State] = field(default_factory=dict)
    # cross: the previous fix and the passages under way (zone -> first ts)
    last: tuple[float, float, int, tuple[str, ...]] | None = None
    passes: dict[str, int] = field(default_factory=dict)


def _with_deep_flag(data: Any) -> Any:
    """State version 1 -> 2: every :class:`_State` gets ``deep = False`` (unpickled
    from version 1 it lacks the slot)."""
    seen: set[int] = set()

    def walk(x: Any) -> None:
        if id(x) in seen:
            return
        seen.add(id(x))
        if isinstance(x, _State):
            if not hasattr(x, "deep"):
                x.deep = False
        elif isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)
        elif dataclasses.is_dataclass(x) and not isinstance(x, type):
            for f in dataclasses.fields(x):
                walk(getattr(x, f.name, None))
        elif hasattr(x, "__dict__"):
            walk(vars(x))

    walk(data)
    return data


class _WindowMixin:
    _clock: LocalClock

    def _in_window(self, rule: ZoneRule, ts_ms: int) -> bool:
        if rule.hours is not None and not in_hours(self._clock.hour(ts_ms), rule.hours):
            return False
        return rule.days is None or self._clock.weekday(ts_ms) in rule.days


class GeofenceDetector(_WindowMixin, KeyedDetector):
    """enter / exit / inside / outside / dwell / cross over GPS fixes."""

    kinds = tuple(f"geofence.{k}" for k in RULE_KINDS)
    event_type = "gps"

    STATE = ("_state",)
    # v2: _State.deep (a stay's depth for the exit margin); older stays were never deep
    STATE_VERSION = 2
    MIGRATIONS = {1: lambda data: _with_deep_flag(data)}

    def __init__(
        self,
        rules_by_kind: RulesByKind,
        zones: ZoneCatalog,
        *,
        timezone: str = "Asia/Shanghai",
        idle_evict_s: int = 6 * 3600,
    ) -> None:
        self.rules_by_kind = {k: dict(v) for k, v in rules_by_kind.items()}
        for rule_kind in self.rules_by_kind:
            if rule_kind not in RULE_TYPES:
                msg = f"geofence: unknown rule {rule_kind!r}; expected one of {RULE_KINDS}"
                raise ValueError(msg)
        self.timezone = timezone
        self.idle_evict_s = idle_evict_s
        self._clock = LocalClock(timezone)
        self._state: KeyedState[_Track] = KeyedState(idle_evict_s * 1000)
        self.set_zones(zones)

    # -- zones ----------------------------------------------------------------------
    def set_zones(self, zones: ZoneCatalog) -> None:
        """Apply a (new) zone catalog; raises ValueError if a zone override is wrong."""
        per_zone = rules_for_zones(self.rules_by_kind, zones)
        self._zone_kind = {zid: meta.kind for zid, meta in zones.items()}
        # zone -> [(rule kind, rule)] for the presence rules that apply to GPS classes
        self._presence: dict[str, list[tuple[str, Presence]]] = {}
        self._outside: dict[str, OutsideRule] = {}
        self._cross: dict[str, CrossRule] = {}
        for zid, mine in per_zone.items():
            pres = [(k, r) for k, r in mine.items() if k in PRESENCE_RULES and r.classes]
            if pres:
                self._presence[zid] = pres
            if "outside" in mine:
                self._outside[zid] = mine["outside"]
            if "cross" in mine and zones[zid].geometry is not None:
                self._cross[zid] = mine["cross"]
        self._cross_geoms = {zid: zones[zid].geometry for zid in self._cross}
        # exit margins: zone geometries on a local projection in metres, built on first use
        self._geoms = {zid: m.geometry for zid, m in zones.items() if m.geometry is not None}
        self._metric: dict[str, tuple[float, float, float, Any]] = {}
        self._cross_ids = list(self._cross)
        self._cross_bounds = (
            np.array([self._cross_geoms[z].bounds for z in self._cross_ids], dtype=float)
            if self._cross_ids
            else np.empty((0, 4))
        )
        self._outside_kinds = {self._zone_kind[z] for z in self._outside}
        self._watched = frozenset(
            c
            for rules in (
                [r for rs in self._presence.values() for _, r in rs],
                self._outside.values(),
                self._cross.values(),
            )
            for r in rules
            for c in r.classes
        )
        self._cross_classes = frozenset(c for r in self._cross.values() for c in r.classes)

    # -- events ---------------------------------------------------------------------
    def on_event(self, ev: Event, out: list[Alert]) -> None:
        if not isinstance(ev, GpsEvent) or ev.cls not in self._watched:
            return
        track = self._state.get(ev.entity, ev.ts_ms)
        if track is None:
            track = _Track()
            self._state.put(ev.entity, track, ev.ts_ms)
        self._presence_step(ev, track, out)
        if self._outside_kinds:
            self._outside_step(ev, track, out)
        if ev.cls in self._cross_classes:
            self._cross_step(ev, track, out)
        elif not track.states and not track.passes:
            self._state.pop(ev.entity)

    def _presence_step(self, ev: GpsEvent, track: _Track, out: list[Alert]) -> None:
        cls = ev.cls
        states = track.states
        keys: list[tuple[str, str]] = [
            (zid, k)
            for zid in ev.zones
            for k, r in self._presence.get(zid, ())
            if cls in r.classes and (zid, k) not in states
        ]
        keys.extend(k for k in states if k[1] != "outside")
        for key in keys:
            zid, rule_kind = key
            rule = self._rule(zid, rule_kind)
            if rule is None:  # the zone or its rule went away on reload
                states.pop(key, None)
                continue
            st = states.get(key)
            if st is None:
                st = states[key] = _State()
            is_in = zid in ev.zones
            if is_in and not st.deep:
                st.deep = self._margin_side(zid, ev, rule.exit_margin_m, inside=True)
            elif not is_in and st.inside and st.deep:
                is_in = not self._margin_side(zid, ev, rule.exit_margin_m, inside=False)
            if is_in == st.inside:
                st.streak = 0
                if is_in:
                    self._while_inside(ev, zid, rule_kind, rule, st, out)
                else:  # a pending entry that never got confirmed
                    del states[key]
                continue
            if st.streak == 0:
                st.streak_first_ts = ev.ts_ms
            st.streak += 1
            if is_in and st.streak >= rule.min_inside_fixes:
                st.inside, st.streak, st.since_ts = True, 0, st.streak_first_ts
                if rule_kind == "enter" and self._in_window(rule, ev.ts_ms):
                    out.append(
                        self._alert(
                            ev,
                            "enter",
                            rule,
                            zid,
                            st.since_ts,
                            {"fixes_inside": rule.min_inside_fixes, "speed_kmh": ev.speed_kmh},
                        )
                    )
                self._while_inside(ev, zid, rule_kind, rule, st, out)
            elif not is_in and st.streak >= rule.min_outside_fixes:
                if rule_kind == "exit" and self._in_window(rule, ev.ts_ms):
                    out.append(
                        self._alert(
                            ev,
                            "exit",
                            rule,
                            zid,
                            st.streak_first_ts,
                            {
                                "inside_s": (st.streak_first_ts - st.since_ts) // 1000,
                                "fixes_outside": st.streak,
                            },
                        )
                    )
                del states[key]

    def _while_inside(
        self, ev: GpsEvent, zid: str, rule_kind: str, rule: ZoneRule, st: _State, out: list[Alert]
    ) -> None:
        inside_s = (ev.ts_ms - st.since_ts) // 1000
        if rule_kind == "inside":
            assert isinstance(rule, InsideRule)
            due = st.last_alert_ts < 0 or ev.ts_ms - st.last_alert_ts >= rule.every_s * 1000
            if due and self._in_window(rule, ev.ts_ms):
                first = st.since_ts if st.last_alert_ts < 0 else ev.ts_ms
                st.last_alert_ts = ev.ts_ms
                out.append(self._alert(ev, "inside", rule, zid, first, {"inside_s": inside_s}))
        elif rule_kind == "dwell":
            assert isinstance(rule, DwellRule)
            if (
                st.last_alert_ts < 0
                and inside_s >= rule.dwell_s
                and self._in_window(rule, ev.ts_ms)
            ):
                st.last_alert_ts = ev.ts_ms
                out.append(self._alert(ev, "dwell", rule, zid, st.since_ts, {"dwell_s": inside_s}))

    def _outside_step(self, ev: GpsEvent, track: _Track, out: list[Alert]) -> None:
        cls = ev.cls
        in_allowed: dict[str, str] = {}  # zone kind -> allowed zone the fix is in
        for zid in ev.zones:
            rule = self._outside.get(zid)
            if rule is not None and cls in rule.classes:
                in_allowed.setdefault(self._zone_kind[zid], zid)
        for zkind in self._outside_kinds:
            key = (zkind, "outside")
            st = track.states.get(key)
            here = in_allowed.get(zkind)
            if st is None:
                if here is None:
                    continue
                st = track.states[key] = _State(zone=here)
            if here is not None:
                st.zone = here
            rule = self._outside.get(st.zone)
            if rule is None or cls not in rule.classes:
                del track.states[key]
                continue
            if here is not None and not st.deep:
                st.deep = self._margin_side(here, ev, rule.exit_margin_m, inside=True)
            elif here is None and st.inside and st.deep:
                if not self._margin_side(st.zone, ev, rule.exit_margin_m, inside=False):
                    here = st.zone
            if (here is not None) == st.inside:
                st.streak = 0
                if here is None:
                    del track.states[key]
                continue
            if st.streak == 0:
                st.streak_first_ts = ev.ts_ms
            st.streak += 1
            if here is not None and st.streak >= rule.min_inside_fixes:
                st.inside, st.streak, st.since_ts = True, 0, st.streak_first_ts
            elif here is None and st.streak >= rule.min_outside_fixes:
                if self._in_window(rule, ev.ts_ms):
                    out.append(
                        self._alert(
                            ev,
                            "outside",
                            rule,
                            st.zone,
                            st.streak_first_ts,
                            {"allowed_zone_kind": zkind, "fixes_outside": st.streak},
                        )
                    )
                del track.states[key]

    def _cross_step(self, ev: GpsEvent, track: _Track, out: list[Alert]) -> None:
        last, track.last = track.last, (ev.lon, ev.lat, ev.ts_ms, ev.zones)
        if last is None or ev.ts_ms <= last[2]:
            if last is not None:
                track.last = last  # out of order: keep the newer fix
            return
        lon0, lat0, ts0, zones0 = last
        b = self._cross_bounds
        hit = (
            (b[:, 0] <= max(lon0, ev.lon))
            & (b[:, 2] >= min(lon0, ev.lon))
            & (b[:, 1] <= max(lat0, ev.lat))
            & (b[:, 3] >= min(lat0, ev.lat))
        )
        candidates = {self._cross_ids[i] for i in np.flatnonzero(hit).tolist()}
        candidates.update(track.passes)
        segment = None
        for zid in sorted(candidates):
            rule = self._cross.get(zid)
            if rule is None or ev.cls not in rule.classes or ev.ts_ms - ts0 > rule.max_gap_s * 1000:
                track.passes.pop(zid, None)
                continue
            was_in, now_in = zid in zones0, zid in ev.zones
            start = track.passes.get(zid)
            if start is None and not was_in:
                if not now_in:
                    if segment is None:
                        segment = shapely.LineString([(lon0, lat0), (ev.lon, ev.lat)])
                    if not shapely.intersects(segment, self._cross_geoms[zid]):
                        continue
                start = track.passes[zid] = ts0
            if start is None or now_in:
                continue
            del track.passes[zid]
            if ev.ts_ms - start <= rule.max_pass_s * 1000 and self._in_window(rule, ev.ts_ms):
                out.append(
                    self._alert(
                        ev,
                        "cross",
                        rule,
                        zid,
                        start,
                        {
                            "pass_s": (ev.ts_ms - start) // 1000,
                            "from": [lon0, lat0],
                            "to": [ev.lon, ev.lat],
                        },
                    )
                )

    def _margin_side(self, zid: str, ev: GpsEvent, margin_m: float, *, inside: bool) -> bool:
        """Whether a fix inside (``inside``) or outside zone ``zid`` is more than
        ``margin_m`` metres from its boundary (on a local projection around the zone:
        well under 1 % off within a city). Without the zone's geometry or a margin,
        a fix inside is never deep and every fix outside is beyond."""
        if margin_m <= 0 or zid not in self._geoms:
            return not inside
        metric = self._metric.get(zid)
        if metric is None:
            geom = self._geoms[zid]
            minx, miny, maxx, maxy = geom.bounds
            lon0, lat0 = (minx + maxx) / 2, (miny + maxy) / 2
            kx = M_PER_DEG * math.cos(math.radians(lat0))
            scaled = shapely.transform(geom, lambda c: (c - [lon0, lat0]) * [kx, M_PER_DEG])
            metric = self._metric[zid] = (lon0, lat0, kx, scaled.boundary)
        lon0, lat0, kx, edge = metric
        pt = shapely.Point((ev.lon - lon0) * kx, (ev.lat - lat0) * M_PER_DEG)
        return bool(shapely.distance(edge, pt) > margin_m)

    def _rule(self, zid: str, rule_kind: str) -> Presence | None:
        for k, r in self._presence.get(zid, ()):
            if k == rule_kind:
                return r
        return None

    def _alert(
        self,
        ev: GpsEvent,
        rule_kind: str,
        rule: ZoneRule,
        zid: str,
        first_ts: int,
        extra: dict[str, Any],
    ) -> Alert:
        evidence: dict[str, Any] = {"class": ev.cls, "zone_kind": self._zone_kind.get(zid)}
        evidence.update(extra)
        evidence["event_id"] = ev.id
        return Alert.make(
            f"geofence.{rule_kind}",
            rule.severity,
            ev.entity,
            "gps",
            zid,
            ev.lon,
            ev.lat,
            ts_ms=ev.ts_ms,
            first_ts_ms=first_ts,
            evidence=evidence,
        )

    @classmethod
    def contract_case(cls, seed: int) -> ContractCase:
        """Trucks driving around two zones; from ``anomaly_from`` on, a muck truck
        enters the airport site and stays (enter, then dwell)."""
        rng = random.Random(seed)
        site = shapely.box(121.234, 31.941, 121.266, 31.959)
        zones = {
            "ap": ZoneMeta("ap", "airport_site", geometry=site),
            "park": ZoneMeta(
                "park", "chemical_park", geometry=shapely.box(121.0, 32.0, 121.02, 32.02)
            ),
        }
        rules: dict[str, dict[str, ZoneRule]] = {
            "enter": {"airport_site": EnterRule(classes=("muck_truck",), min_inside_fixes=2)},
            "dwell": {"airport_site": DwellRule(classes=("muck_truck",), dwell_s=300)},
        }
        det = cls(rules, zones)
        events: list[Event] = []
        t = T_CASE
        for i in range(200):
            t += rng.randrange(1_000, 5_000)
            lon, lat = rng.uniform(121.1, 121.2), rng.uniform(31.8, 31.9)
            events.append(
                GpsEvent(t, f"bg-{i % 20}", lon, lat, rng.choice(("muck_truck", "tanker")), 30.0)
            )
        anomaly_from = len(events)
        for k in range(40):
            t += 15_000
            events.append(
                GpsEvent(
                    t,
                    "muck-x",
                    121.25 + rng.uniform(-1e-4, 1e-4),
                    31.95,
                    "muck_truck",
                    5.0,
                    zones=("ap",),
                    id=f"x{k}",
                )
            )
        return ContractCase(
            det, events, frozenset({"geofence.enter", "geofence.dwell"}), anomaly_from
        )


class EnterDetector(GeofenceDetector):
    """``geofence.enter`` only, from ``{zone kind: EnterRule}`` (the foundation's form)."""

    kinds = ("geofence.enter",)

    def __init__(
        self,
        rules_by_kind: Mapping[str, EnterRule],
        zones: ZoneCatalog,
        *,
        idle_evict_s: int = 6 * 3600,
        timezone: str = "Asia/Shanghai",
    ) -> None:
        super().__init__(
            {"enter": dict(rules_by_kind)}, zones, timezone=timezone, idle_evict_s=idle_evict_s
        )

    def set_zones(self, zones: ZoneCatalog) -> None:
        # only the enter overrides matter here
        only_enter = {
            zid: dataclasses.replace(meta, rules={"enter": meta.rules["enter"]})
            if meta.rules and "enter" in meta.rules
            else dataclasses.replace(meta, rules={})
            for zid, meta in zones.items()
        }
        super().set_zones(only_enter)

    @classmethod
    def contract_case(cls, seed: int) -> ContractCase:
        """Vessels and trucks outside the zone; then a muck truck drives onto the site."""
        rng = random.Random(seed)
        det = cls(
            {"airport_site": EnterRule(classes=("muck_truck",))},
            {"ap": ZoneMeta("ap", "airport_site")},
        )
        events: list[Event] = []
        t = T_CASE
        for i in range(200):
            t += rng.randrange(1_000, 5_000)
            events.append(
                GpsEvent(t, f"bg-{i % 25}", rng.uniform(121.0, 121.2), 31.9, "muck_truck", 30.0)
            )
        anomaly_from = len(events)
        for _ in range(5):
            t += 20_000
            events.append(GpsEvent(t, "muck-x", 121.25, 31.95, "muck_truck", zones=("ap",)))
        return ContractCase(det, events, frozenset({"geofence.enter"}), anomaly_from)
