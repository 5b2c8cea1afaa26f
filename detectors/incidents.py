"""Incidents: alerts merged by configurable keys, in event-time order, deterministically.

Duty officers must get one incident, not fifty alerts. :class:`IncidentMerger`
takes alerts as the detectors emit them and assigns each to an incident:

* **Keys.** An alert joins an open incident of the same merge *group* (its
  kind, else its family, looked up in ``groups``; by default the family) when
  any configured ``match`` key holds: the same ``subject``, the same ``zone``,
  or a position within ``radius_m`` of one of the incident's alerts
  (``distance``), and it started no later than ``quiet_s`` after the
  incident's last alert.
* **Lifecycle.** An incident is ``opened`` by its first alert, ``updated`` by
  every alert merged later, and ``closed`` once event time passes its last
  alert by ``quiet_s``; an alert after that opens a new incident.
* **Severity** is the highest seen; every alert stays in the incident as
  evidence (its id, kind, subject, severity).
* **Inhibition.** While a ``red`` incident of a group is open in a zone, a
  lower-severity alert of that group in that zone that matches nothing else
  is attached to the red incident as inhibited evidence instead of opening a
  new one.

Determinism: arrival order across shards and workers varies with batching, so
alerts are held for ``hold_s`` of event time (the merger's clock is the latest
global watermark — the minimum over the flow's sources — stamped on the alerts
and reported by every detection shard after each batch (``mark_ms``), or, for
alerts without one, the latest alert time seen; the release boundary lags
``LAG_PUSHES`` pushes behind it, so alerts still on their way from other shards
and alerts derived downstream, such as fusion's, arrive in time) and released in
``(ts, id)`` order; ``hold_s = 0`` merges in arrival order. The incident id derives
from the id of the alert that opened it (``in-`` + its hash), so the same
recording gives the same incidents at any speed, batch size or worker count as
long as no alert arrives more than ``hold_s`` behind the latest one (such an
alert is merged at once and counted in ``late``).

>>> from citywatch.detectors.alerts import Alert
>>> m = IncidentMerger(IncidentParams(hold_s=0))
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

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from citywatch.detectors import params
from citywatch.detectors.alerts import SEVERITY_RANK, Alert
from citywatch.detectors.state import Stateful
from citywatch.geo.distance import haversine_m

MATCH_KEYS = ("subject", "zone", "distance")
MAX_POSITIONS = 64  # positions kept per incident for the distance match (bounded state)
LAG_PUSHES = 2  # pushes the release boundary lags behind (see IncidentMerger)


@dataclass(frozen=True, slots=True, kw_only=True)
class IncidentParams:
    """How alerts merge into incidents (``[incidents]`` in the config)."""

    hold_s: int = 60
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


@dataclass(slots=True)
class Incident:
    """Mutable state of one open incident."""

    id: str
    group: str
    severity: str
    first_ts_ms: int
    last_ts_ms: int
    zone: str | None
    lon: float | None
    lat: float | None
    subjects: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    zones: set[str] = field(default_factory=set)
    towns: list[str] = field(default_factory=list)
    departments: list[str] = field(default_factory=list)
    positions: list[tuple[float, float]] = field(default_factory=list)
    alert_ids: list[str] = field(default_factory=list)
    subject_set: set[str] = field(default_factory=set)
    # Bounding box of the positions, for a cheap rejection before distances.
    bbox: list[float] = field(default_factory=lambda: [math.inf, math.inf, -math.inf, -math.inf])

    def view(self, state: str, quiet_ms: int, inhibited: bool) -> IncidentView:
        return IncidentView(
            self.id,
            state,
            self.group,
            self.severity,
            self.first_ts_ms,
            self.last_ts_ms,
            self.last_ts_ms + quiet_ms,
            len(self.alert_ids),
            self.zone,
            self.lon,
            self.lat,
            tuple(self.subjects),
            tuple(self.kinds),
            tuple(self.towns),
            tuple(self.departments),
            inhibited,
        )


def incident_id(opening_alert_id: str) -> str:
    """``in-`` + the hash part of the opening alert's id.

    >>> incident_id("al-e2598fcb5352fa3f8001")
    'in-e2598fcb5352fa3f8001'
    """
    return "in-" + opening_alert_id.split("-", 1)[1]


@dataclass(slots=True)
class _Held:
    alert: Alert
    town: str | None
    department: str | None


class IncidentMerger(Stateful):
    """Merges alerts into incidents; plain state, picklable (the stage's snapshot)."""

    def __init__(self, p: IncidentParams) -> None:
        self.p = p
        self.clock_ms_: int | None = None
        # Clock after each of the last pushes: the release boundary lags LAG_PUSHES
        # pushes behind, so alerts derived downstream of the detectors (fusion), which
        # reach this stage a step later than the alerts they come from, are still held.
        self.recent_clocks_: list[int] = []
        # Watermark reported by each upstream shard (kept here to be in the snapshot);
        # once marks come, they alone move the clock.
        self.shard_marks_: dict[str, int] = {}
        self.released_upto_: int | None = None  # everything at or before this is out
        self.open_: dict[str, list[Incident]] = {}  # group -> open incidents
        self.held_: list[_Held] = []
        self.late_ = 0
        self.closed_ = 0
        self.swept_ms_ = 0

    # -- input ---------------------------------------------------------------------
    def push(
        self,
        alerts: Iterable[Alert],
        towns: Iterable[str | None] | None = None,
        departments: Iterable[str | None] | None = None,
        *,
        mark_ms: int | None = None,
    ) -> list[tuple[Alert, IncidentView]]:
        """Take alerts (with their town and department when known); return what is released.

        ``mark_ms`` is a watermark the flow reports with or without alerts: it moves
        the clock like an alert's watermark would."""
        alerts = list(alerts)
        tw = list(towns) if towns is not None else [None] * len(alerts)
        dp = list(departments) if departments is not None else [None] * len(alerts)
        out: list[tuple[Alert, IncidentView]] = []
        hold_ms = self.p.hold_s * 1000
        for alert, town, dept in zip(alerts, tw, dp, strict=True):
            if self.released_upto_ is not None and alert.ts_ms <= self.released_upto_:
                self.late_ += 1  # behind what is already released: merge now
                out.append(self._merge(alert, town, dept))
                continue
            self.held_.append(_Held(alert, town, dept))
            # The clock follows the global watermark the alert was raised at when the
            # flow stamped one: alert times from a partition that runs ahead would
            # otherwise push the clock past alerts still on their way from the others.
            if self.shard_marks_:
                continue
            tick = alert.ts_ms if alert.wm_ms is None else alert.wm_ms
            if self.clock_ms_ is None or tick > self.clock_ms_:
                self.clock_ms_ = tick
        if mark_ms is not None and (self.clock_ms_ is None or mark_ms > self.clock_ms_):
            self.clock_ms_ = mark_ms
        if self.clock_ms_ is None:
            return out
        if hold_ms == 0:  # no holding: merge in arrival order
            return out + self._release(self.clock_ms_)
        self.recent_clocks_.append(self.clock_ms_)
        if len(self.recent_clocks_) <= LAG_PUSHES:
            return out
        del self.recent_clocks_[: -LAG_PUSHES - 1]
        out += self._release(self.recent_clocks_[0] - hold_ms)
        return out

    def flush(self) -> list[tuple[Alert, IncidentView]]:
        """Release every held alert (end of input, or a wall-clock hold expired)."""
        return self._release(None, everything=True)

    def advance(self, now_ms: int) -> list[tuple[Alert, IncidentView]]:
        """Move the clock to ``now_ms`` (e.g. wall clock in a live run) and release."""
        if self.clock_ms_ is None or now_ms > self.clock_ms_:
            self.clock_ms_ = now_ms
        return self._release(now_ms - self.p.hold_s * 1000)

    # -- state ---------------------------------------------------------------------
    def open_incidents(self) -> int:
        return sum(len(v) for v in self.open_.values())

    def held(self) -> int:
        return len(self.held_)

    # -- internals -----------------------------------------------------------------
    def _release(
        self, upto_ms: int | None, *, everything: bool = False
    ) -> list[tuple[Alert, IncidentView]]:
        if not self.held_:
            return []
        if everything:
            ready, self.held_ = self.held_, []
        else:
            if upto_ms is None:
                return []
            ready = [h for h in self.held_ if h.alert.ts_ms <= upto_ms]
            if not ready:
                return []
            self.held_ = [h for h in self.held_ if h.alert.ts_ms > upto_ms]
        ready.sort(key=lambda h: (h.alert.ts_ms, h.alert.id))
        top = upto_ms if upto_ms is not None else ready[-1].alert.ts_ms
        if self.released_upto_ is None or top > self.released_upto_:
            self.released_upto_ = top
        return [self._merge(h.alert, h.town, h.department) for h in ready]

    def _close_quiet(self, now_ms: int) -> None:
        # Matching checks the quiet period itself; sweeping only bounds the state,
        # so once a minute of event time is enough.
        if now_ms - self.swept_ms_ < 60_000:
            return
        self.swept_ms_ = now_ms
        quiet_ms = self.p.quiet_s * 1000
        for group, items in list(self.open_.items()):
            keep = [i for i in items if i.last_ts_ms + quiet_ms >= now_ms]
            self.closed_ += len(items) - len(keep)
            if keep:
                self.open_[group] = keep
            else:
                del self.open_[group]

    def _matches(self, inc: Incident, a: Alert) -> bool:
        if a.first_ts_ms > inc.last_ts_ms + self.p.quiet_s * 1000:
            return False
        for key in self.p.match:
            if key == "subject" and a.subject in inc.subject_set:
                return True
            if key == "zone" and a.zone is not None and a.zone in inc.zones:
                return True
            if key == "distance" and a.lon is not None and a.lat is not None:
                r_deg = self.p.radius_m / 111_000
                lon0, lat0, lon1, lat1 = inc.bbox
                if not lat0 - r_deg <= a.lat <= lat1 + r_deg:
                    continue
                r_lon = r_deg / max(0.01, math.cos(math.radians(a.lat)))
                if not lon0 - r_lon <= a.lon <= lon1 + r_lon:
                    continue
                radius = self.p.radius_m
                if any(_near(lon, lat, a.lon, a.lat, radius) for lon, lat in inc.positions):
                    return True
        return False

    def _merge(self, a: Alert, town: str | None, dept: str | None) -> tuple[Alert, IncidentView]:
        self._close_quiet(a.ts_ms)
        group = self.p.group_of(a.kind)
        items = self.open_.setdefault(group, [])
        inhibited = False
        found = next((i for i in items if self._matches(i, a)), None)
        if found is None and self.p.inhibit and a.zone is not None:
            top = SEVERITY_RANK[self.p.inhibit_severity]
            if SEVERITY_RANK[a.severity] < top:
                found = next(
                    (
                        i
                        for i in items
                        if a.zone in i.zones
                        and SEVERITY_RANK[i.severity] >= top
                        and a.first_ts_ms <= i.last_ts_ms + self.p.quiet_s * 1000
                    ),
                    None,
                )
                inhibited = found is not None
        quiet_ms = self.p.quiet_s * 1000
        if found is None:
            inc = Incident(
                incident_id(a.id), group, a.severity, a.first_ts_ms, a.ts_ms, a.zone, a.lon, a.lat
            )
            items.append(inc)
            self._add(inc, a, town, dept)
            a.incident = inc.id
            return a, inc.view("opened", quiet_ms, False)
        self._add(found, a, town, dept)
        a.incident = found.id
        return a, found.view("updated", quiet_ms, inhibited)

    @staticmethod
    def _add(inc: Incident, a: Alert, town: str | None, dept: str | None) -> None:
        if SEVERITY_RANK[a.severity] > SEVERITY_RANK[inc.severity]:
            inc.severity = a.severity
        inc.first_ts_ms = min(inc.first_ts_ms, a.first_ts_ms)
        inc.last_ts_ms = max(inc.last_ts_ms, a.ts_ms)
        inc.alert_ids.append(a.id)
        if a.subject not in inc.subject_set:
            inc.subject_set.add(a.subject)
            inc.subjects.append(a.subject)
        if a.kind not in inc.kinds:
            inc.kinds.append(a.kind)
        if a.zone is not None:
            inc.zones.add(a.zone)
        if town is not None and town not in inc.towns:
            inc.towns.append(town)
        if dept is not None and dept not in inc.departments:
            inc.departments.append(dept)
        if a.lon is not None and a.lat is not None and len(inc.positions) < MAX_POSITIONS:
            inc.positions.append((a.lon, a.lat))
            b = inc.bbox
            b[0], b[1] = min(b[0], a.lon), min(b[1], a.lat)
            b[2], b[3] = max(b[2], a.lon), max(b[3], a.lat)


def _near(lon1: float, lat1: float, lon2: float, lat2: float, radius_m: float) -> bool:
    # Cheap rejection in degrees before the great-circle distance.
    if abs(lat1 - lat2) * 111_000 > radius_m:
        return False
    if abs(lon1 - lon2) * 111_000 * math.cos(math.radians(lat1)) > radius_m * 1.01:
        return False
    return haversine_m(lon1, lat1, lon2, lat2) <= radius_m
