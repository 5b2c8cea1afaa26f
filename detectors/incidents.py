"""Incidents: alerts merged by configurable keys, at once and order-insensitively.

Duty officers must get one incident, not fifty alerts. :class:`IncidentMerger`
takes alerts as the detectors emit them and assigns each to an incident at once:

* **Links.** Two alerts of the same merge *group* (their kind, else their
  family, looked up in ``groups``; by default the family) are linked when any
  configured ``match`` key holds — the same ``subject``, the same ``zone``, or
  positions within ``radius_m`` (``distance``) — and their episodes
  ``[first_ts, ts]`` come within ``quiet_s`` of each other. **Inhibition:**
  a ``red`` (``inhibit_severity``) alert and a lower one of the same group in
  the same zone are linked too.
* **Incidents** are the connected groups of linked alerts. The relation is
  symmetric and looks at pairs only, so the incidents do not depend on the
  order alerts arrive in: an alert that links two incidents merges them.
* **Ids.** An incident's id is ``in-`` + the hash of its earliest alert by
  ``(ts, id)``. The first alert of an incident creates it (``opened``); later
  ones update it (``updated``). When an alert arrives out of order and
  becomes the earliest, or links two incidents, the id moves to the earliest
  alert; the update then carries ``merged_from`` (the ids it replaces).
  Alerts of one arrival batch are merged in ``(ts, id)`` order, which makes
  this rare.
* **Work orders.** ``opened_as`` is the id an incident had when it opened: it
  keys the incident's one work order and never moves, so a late earliest alert
  updates the order officers already have. When an alert links incidents, the
  one opened first absorbs the others: the update carries ``absorbed`` (their
  ``opened_as``, whose work orders are closed as merged into this one) and the
  absorbed incidents' alerts are re-emitted under the survivor, so its work
  order holds every alert.
* **Lifecycle.** No alert links to an incident more than ``quiet_s`` after
  its last alert; its state is dropped once the newest alert time merged
  passes that by the flow's out-of-orderness (``slack_ms``) plus the longest
  alert episode (``MAX_EPISODE_MS``, 6 h), so any alert still allowed to
  arrive finds it.
* **Severity** is the highest seen; every alert stays in the incident as
  evidence.
* ``hold_s`` (opt-in, default 0): hold alerts that much event time and merge
  them in ``(ts, id)`` order; moves fewer ids at the cost of that much delay.

>>> from citywatch.detectors.alerts import Alert
>>> m = IncidentMerger(IncidentParams())
>>> def cam(name, t, sev="yellow"):
...     return Alert.make("video.intrusion", sev, name, "video", "airport-site", 121.0, 32.0,
...                       ts_ms=t, first_ts_ms=t, evidence={})
>>> out = m.push([cam("cam-1", 1_000), cam("cam-2", 2_000, "orange")])
>>> [(v.state, v.alert_count, v.severity) for _, v in out]
[('opened', 1, 'yellow'), ('updated', 2, 'orange')]
>>> out[0][1].id == out[1][1].id
True
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from citywatch.detectors import params
from citywatch.detectors.alerts import SEVERITY_RANK, Alert
from citywatch.detectors.state import Snapshot, Stateful
from citywatch.geo.distance import haversine_m

MATCH_KEYS = ("subject", "zone", "distance")
SWEEP_MS = 60_000  # closed incidents are swept at most once a minute of alert time
# Longest alert episode (ts - first_ts: a dwell, a sensor offline) that still finds the
# incidents its start is linked to: incidents are kept this much longer once quiet.
MAX_EPISODE_MS = 6 * 3_600_000


@dataclass(frozen=True, slots=True, kw_only=True)
class IncidentParams:
    """How alerts merge into incidents (``[incidents]`` in the config)."""

    hold_s: int = 0
    quiet_s: int = 900
    radius_m: float = 500.0
    match: tuple[str, ...] = MATCH_KEYS
    groups: Mapping[str, str] = field(default_factory=dict)
    inhibit: bool = True
    inhibit_severity: str = "red"

    def __post_init__(self) -> None:
        owner = "[incidents]"
        params.non_negative(owner, "hold_s", self.hold_s)
        params.positive(owner, "quiet_s", self.quiet_s)
        params.non_negative(owner, "radius_m", self.radius_m)
        params.severity(f"{owner} inhibit_severity", self.inhibit_severity)
        bad = [m for m in self.match if m not in MATCH_KEYS]
        if bad or not self.match:
            msg = (
                f'{owner}: "match" must be a non-empty list of {", ".join(MATCH_KEYS)}, '
                f"got {list(self.match)!r}"
            )
            raise ValueError(msg)

    def group_of(self, kind: str) -> str:
        """The merge group of a kind: ``groups[kind]``, else ``groups[family]``, else the family.

        >>> IncidentParams(groups={"video.intrusion": "intrusion"}).group_of("video.intrusion")
        'intrusion'
        >>> IncidentParams().group_of("sensor.threshold")
        'sensor'
        """
        family = kind.partition(".")[0]
        return self.groups.get(kind) or self.groups.get(family) or family


@dataclass(frozen=True, slots=True)
class IncidentView:
    """An incident as it stands after one alert: what routing and dispatch need."""

    id: str
    state: str  # opened | updated
    group: str
    severity: str
    first_ts_ms: int
    last_ts_ms: int
    closes_at_ms: int
    alert_count: int
    zone: str | None
    lon: float | None
    lat: float | None
    subjects: tuple[str, ...]
    kinds: tuple[str, ...]
    towns: tuple[str, ...]
    departments: tuple[str, ...]
    inhibited: bool = False
    # Incident ids this one replaces (an out-of-order earliest alert, or two merged).
    merged_from: tuple[str, ...] = ()
    # The id the incident opened under: the key of its work order, stable for its life.
    opened_as: str = ""
    # ``opened_as`` of the incidents this update absorbed (their work orders merge in).
    absorbed: tuple[str, ...] = ()

    @property
    def order_key(self) -> str:
        """The incident id keying its work order (``opened_as``, else the id)."""
        return self.opened_as or self.id


def incident_id(opening_alert_id: str) -> str:
    """``in-`` + the hash part of the incident's earliest alert's id.

    >>> incident_id("al-e2598fcb5352fa3f8001")
    'in-e2598fcb5352fa3f8001'
    """
    return "in-" + opening_alert_id.split("-", 1)[1]


@dataclass(slots=True)
class Member:
    """One alert of an incident, with the town and department it was routed by."""

    alert: Alert
    town: str | None
    department: str | None

    @property
    def order(self) -> tuple[int, str]:
        return self.alert.ts_ms, self.alert.id


@dataclass(slots=True)
class Incident:
    """Mutable state of one open incident: its alerts in ``(ts, id)`` order."""

    id: str
    group: str
    members: list[Member] = field(default_factory=list)
    first_ts_ms: int = 0
    last_ts_ms: int = 0
    opened_as: str = ""  # the id it opened under (keys its work order; never moves)

    def add(self, m: Member) -> None:
        ms = self.members
        ms.append(m)
        if len(ms) > 1 and ms[-2].order > m.order:
            ms.sort(key=lambda x: x.order)
        a = m.alert
        self.first_ts_ms = a.first_ts_ms if len(ms) == 1 else min(self.first_ts_ms, a.first_ts_ms)
        self.last_ts_ms = max(self.last_ts_ms, a.ts_ms)

    def view(
        self,
        state: str,
        quiet_ms: int,
        inhibited: bool,
        merged_from: tuple[str, ...] = (),
        absorbed: tuple[str, ...] = (),
    ) -> IncidentView:
        head = self.members[0].alert
        severity = max((m.alert.severity for m in self.members), key=SEVERITY_RANK.__getitem__)
        return IncidentView(
            self.id,
            state,
            self.group,
            severity,
            self.first_ts_ms,
            self.last_ts_ms,
            self.last_ts_ms + quiet_ms,
            len(self.members),
            head.zone,
            head.lon,
            head.lat,
            _distinct(m.alert.subject for m in self.members),
            _distinct(m.alert.kind for m in self.members),
            _distinct(m.town for m in self.members),
            _distinct(m.department for m in self.members),
            inhibited,
            merged_from,
            self.opened_as or self.id,
            absorbed,
        )


def _members(
    alerts: Iterable[Alert],
    towns: Iterable[str | None] | None,
    departments: Iterable[str | None] | None,
) -> list[Member]:
    """Alerts with their town and department, in ``(ts, id)`` order."""
    alerts = list(alerts)
    tw = list(towns) if towns is not None else [None] * len(alerts)
    dp = list(departments) if departments is not None else [None] * len(alerts)
    out = [Member(a, t, d) for a, t, d in zip(alerts, tw, dp, strict=True)]
    out.sort(key=lambda m: m.order)
    return out


def _distinct(values: Iterable[str | None]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v is not None))


def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 incidents had no ``opened_as``: their work order is keyed by their id."""
    for items in data.get("open_", {}).values():
        for inc in items:
            if not getattr(inc, "opened_as", ""):
                inc.opened_as = inc.id
    return data


class _Index:
    """Where the open incidents of one group are, by the keys an alert can link by: each
    member's subject, zone and grid cell (``radius_m`` square, in degrees of latitude).
    An alert's candidates are the incidents holding a member with its subject, its zone,
    or a position in a cell near its own: a superset of those it links to, found without
    a scan of every open incident (not state: rebuilt from ``open_``)."""

    __slots__ = ("by_key", "cell_deg", "incidents", "order", "p")

    def __init__(self, p: IncidentParams) -> None:
        self.p = p
        # A cell is radius_m of latitude; a link by distance lies within one cell in
        # latitude and, in longitude, within as many cells as 1 / cos(latitude) says.
        self.cell_deg = max(p.radius_m, 1.0) / 110_000
        self.by_key: dict[tuple[object, ...], set[int]] = {}
        self.incidents: dict[int, Incident] = {}  # opening order -> the incident
        self.order: dict[int, int] = {}  # id() of an incident -> its opening order

    def _keys(self, a: Alert) -> list[tuple[object, ...]]:
        keys: list[tuple[object, ...]] = [("s", a.subject)]
        if a.zone is not None:
            keys.append(("z", a.zone))
        if a.lon is not None and a.lat is not None and "distance" in self.p.match:
            keys.append(("c", int(a.lon // self.cell_deg), int(a.lat // self.cell_deg)))
        return keys

    def add(self, inc: Incident, seq: int) -> None:
        self.incidents[seq] = inc
        self.order[id(inc)] = seq
        for m in inc.members:
            self.note(inc, m.alert)

    def note(self, inc: Incident, a: Alert) -> None:
        """``a`` is now a member of ``inc``."""
        seq = self.order[id(inc)]
        for key in self._keys(a):
            self.by_key.setdefault(key, set()).add(seq)

    def drop(self, inc: Incident) -> None:
        seq = self.order.pop(id(inc))
        del self.incidents[seq]
        for m in inc.members:
            for key in self._keys(m.alert):
                held = self.by_key.get(key)
                if held is not None:
                    held.discard(seq)
                    if not held:
                        del self.by_key[key]

    def candidates(self, a: Alert) -> list[Incident]:
        """The open incidents ``a`` may link to, in opening order."""
        found: set[int] = set()
        by_key = self.by_key
        for key in (("s", a.subject), ("z", a.zone)):  # its subject, its zone
            held = by_key.get(key)
            if held:
                found |= held
        if a.lon is not None and a.lat is not None and "distance" in self.p.match:
            cell = self.cell_deg
            cx, cy = int(a.lon // cell), int(a.lat // cell)
            span = min(89.0, abs(a.lat) + 2 * cell)
            kx = math.ceil(1.05 / max(math.cos(math.radians(span)), 1e-3)) + 1
            for dx in range(-kx, kx + 1):
                for dy in (-1, 0, 1):
                    held = by_key.get(("c", cx + dx, cy + dy))
                    if held:
                        found |= held
        return [self.incidents[seq] for seq in sorted(found)]


class IncidentMerger(Stateful):
    """Merges alerts into incidents; plain state, picklable (the stage's snapshot)."""

    STATE_VERSION: ClassVar[int] = 2  # 2: Incident.opened_as
    MIGRATIONS: ClassVar[dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {1: _v1_to_v2}

    def __init__(self, p: IncidentParams, *, slack_ms: int = 0) -> None:
        self.p = p
        self.slack_ms = slack_ms
        self.open_: dict[str, list[Incident]] = {}  # group -> open incidents
        self.clock_ms_: int | None = None  # newest alert time merged (closes incidents)
        self.seen_ms_: int | None = None  # newest alert time pushed (hold_s > 0)
        self.swept_ms_ = 0
        self.held_: list[tuple[int, str, int, Member]] = []  # hold_s > 0, or replays
        self.released_ms_: int | None = None  # replays: everything up to here is merged
        self.shard_marks_: dict[str, int] = {}  # replays: each shard's watermark
        self._seq = 0
        self.late_ = 0  # new incidents opened by an alert beyond quiet_s + slack behind
        self.closed_ = 0
        self.moved_ = 0  # incidents whose id moved (out-of-order earliest alert, merges)
        # Open incidents by subject, zone and cell, per group (not state: rebuilt from
        # ``open_`` on first use); ``scan`` merges by a walk over them instead.
        self._index: dict[str, _Index] | None = None
        self._opened = 0  # incidents put in the index (their opening order)
        self.scan = False

    def restore(self, snap: Snapshot) -> None:
        super().restore(snap)
        self._index = None

    def _group_index(self, group: str) -> _Index:
        if self._index is None:
            self._index = {}
            for g, items in self.open_.items():
                built = self._index[g] = _Index(self.p)
                for inc in items:
                    self._opened += 1
                    built.add(inc, self._opened)
        ix = self._index.get(group)
        if ix is None:
            ix = self._index[group] = _Index(self.p)
        return ix

    # -- input ---------------------------------------------------------------------
    def push(
        self,
        alerts: Iterable[Alert],
        towns: Iterable[str | None] | None = None,
        departments: Iterable[str | None] | None = None,
    ) -> list[tuple[Alert, IncidentView]]:
        """Take alerts (with their town and department when known); return each alert
        with its incident as it stands after it (plus re-emitted alerts of an incident
        whose id moved)."""
        batch = _members(alerts, towns, departments)
        for m in batch:
            if self.seen_ms_ is None or m.alert.ts_ms > self.seen_ms_:
                self.seen_ms_ = m.alert.ts_ms
        hold_ms = self.p.hold_s * 1000
        if hold_ms == 0:
            out: list[tuple[Alert, IncidentView]] = []
            for m in batch:
                self._merge(m, out)
            return out
        for m in batch:
            self._seq += 1
            heapq.heappush(self.held_, (m.alert.ts_ms, m.alert.id, self._seq, m))
        assert self.seen_ms_ is not None
        return self._release(self.seen_ms_ - hold_ms)

    def hold(
        self,
        alerts: Iterable[Alert],
        towns: Iterable[str | None] | None = None,
        departments: Iterable[str | None] | None = None,
    ) -> list[tuple[Alert, IncidentView]]:
        """Keep alerts until :meth:`release` passes their time (a replay's ordering);
        an alert at or behind what was released already is merged at once."""
        out: list[tuple[Alert, IncidentView]] = []
        for m in _members(alerts, towns, departments):
            a = m.alert
            if self.released_ms_ is not None and a.ts_ms <= self.released_ms_:
                self._merge(m, out)
                continue
            self._seq += 1
            heapq.heappush(self.held_, (a.ts_ms, a.id, self._seq, m))
        return out

    def release(self, upto_ms: int) -> list[tuple[Alert, IncidentView]]:
        """Merge the held alerts at or before ``upto_ms``, in ``(ts, id)`` order."""
        if self.released_ms_ is None or upto_ms > self.released_ms_:
            self.released_ms_ = upto_ms
        return self._release(upto_ms)

    def flush(self) -> list[tuple[Alert, IncidentView]]:
        """Merge every held alert (end of input, or a wall-clock hold expired)."""
        return self._release(None)

    # -- state ---------------------------------------------------------------------
    def open_incidents(self) -> int:
        return sum(len(v) for v in self.open_.values())

    def held(self) -> int:
        return len(self.held_)

    # -- internals -----------------------------------------------------------------
    def _release(self, upto_ms: int | None) -> list[tuple[Alert, IncidentView]]:
        out: list[tuple[Alert, IncidentView]] = []
        held = self.held_
        while held and (upto_ms is None or held[0][0] <= upto_ms):
            self._merge(heapq.heappop(held)[3], out)
        return out

    def _sweep(self) -> None:
        now = self.clock_ms_
        if now is None or now - self.swept_ms_ < SWEEP_MS:
            return
        self.swept_ms_ = now
        horizon = now - self.p.quiet_s * 1000 - self.slack_ms - MAX_EPISODE_MS
        for group, items in list(self.open_.items()):
            keep = [i for i in items if i.last_ts_ms >= horizon]
            self.closed_ += len(items) - len(keep)
            if self._index is not None and len(keep) < len(items):
                ix = self._group_index(group)
                for i in items:
                    if i.last_ts_ms < horizon:
                        ix.drop(i)
            if keep:
                self.open_[group] = keep
            else:
                del self.open_[group]

    def _linked(self, a: Alert, b: Alert) -> bool:
        quiet = self.p.quiet_s * 1000
        if a.first_ts_ms > b.ts_ms + quiet or b.first_ts_ms > a.ts_ms + quiet:
            return False
        for key in self.p.match:
            if key == "subject" and a.subject == b.subject:
                return True
            if key == "zone" and a.zone is not None and a.zone == b.zone:
                return True
            if (
                key == "distance"
                and a.lon is not None
                and a.lat is not None
                and b.lon is not None
                and b.lat is not None
                and _near(a.lon, a.lat, b.lon, b.lat, self.p.radius_m)
            ):
                return True
        return self._inhibits(a, b) or self._inhibits(b, a)

    def _inhibits(self, top: Alert, low: Alert) -> bool:
        """``top`` (red) absorbs the lower ``low`` of the same zone."""
        bar = SEVERITY_RANK[self.p.inhibit_severity]
        return (
            self.p.inhibit
            and low.zone is not None
            and low.zone == top.zone
            and SEVERITY_RANK[top.severity] >= bar > SEVERITY_RANK[low.severity]
        )

    def _merge(self, m: Member, out: list[tuple[Alert, IncidentView]]) -> None:
        a = m.alert
        if self.clock_ms_ is None or a.ts_ms > self.clock_ms_:
            self.clock_ms_ = a.ts_ms
        self._sweep()
        quiet = self.p.quiet_s * 1000
        group = self.p.group_of(a.kind)
        items = self.open_.setdefault(group, [])
        ix = None if self.scan else self._group_index(group)
        linked = [
            inc
            for inc in (items if ix is None else ix.candidates(a))
            if a.first_ts_ms <= inc.last_ts_ms + quiet
            and inc.first_ts_ms <= a.ts_ms + quiet
            and any(self._linked(a, x.alert) for x in inc.members)
        ]
        if not linked:
            inc = Incident(incident_id(a.id), group, opened_as=incident_id(a.id))
            inc.add(m)
            items.append(inc)
            if ix is not None:
                self._opened += 1
                ix.add(inc, self._opened)
            if a.ts_ms < self.clock_ms_ - quiet - self.slack_ms:
                self.late_ += 1
            a.incident = inc.id
            out.append((a, inc.view("opened", quiet, False)))
            return
        # ``items`` keeps opening order: the incident opened first absorbs the others,
        # and its work order stays the one officers have.
        into = linked[0]
        strays: list[Member] = []
        for other in linked[1:]:
            if ix is not None:
                ix.drop(other)
            for x in other.members:
                into.add(x)
                strays.append(x)
                if ix is not None:
                    ix.note(into, x.alert)
            items.remove(other)
        into.add(m)
        if ix is not None:
            ix.note(into, a)
        old = {i.id for i in linked}
        into.id = incident_id(into.members[0].alert.id)
        inhibited = any(self._inhibits(x.alert, a) for x in into.members)
        moved = tuple(sorted(old - {into.id}))
        absorbed = tuple(sorted({i.opened_as or i.id for i in linked[1:]}))
        if moved:
            self.moved_ += 1
        view = into.view("updated", quiet, inhibited, moved, absorbed)
        # The absorbed incidents' alerts join the survivor's work order, earliest first.
        strays.sort(key=lambda x: x.order)
        for x in strays:
            out.append((replace(x.alert, incident=into.id, reissued=True), view))
        a.incident = into.id
        out.append((a, view))


def _near(lon1: float, lat1: float, lon2: float, lat2: float, radius_m: float) -> bool:
    # Cheap rejection in degrees before the great-circle distance.
    if abs(lat1 - lat2) * 111_000 > radius_m:
        return False
    if abs(lon1 - lon2) * 111_000 * math.cos(math.radians(lat1)) > radius_m * 1.01:
        return False
    return haversine_m(lon1, lat1, lon2, lat2) <= radius_m
