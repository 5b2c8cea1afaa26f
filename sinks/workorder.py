"""The records of dispatch: where an alert goes (:class:`Route`, :class:`Dispatch`), what
writing it did (:class:`Written`) and the work order itself (:class:`WorkOrder`).

A :class:`WorkOrder` is the typed view of the ``{P}:wo:{WO}`` hash; ``to_hash`` gives
the exact strings stored, and ``from_hash`` reads them back (lifecycle fields such as
``signed_by`` or ``feedback`` ride along unchanged in ``details``)::

    >>> wo = WorkOrder.from_hash(_EXAMPLE_HASH)
    >>> (wo.id, wo.severity, wo.subjects, wo.lon, wo.queued)
    ('wo-1a2b', 'orange', ('cam-1', 'cam-2'), 121.01, True)
    >>> wo.to_hash() == _EXAMPLE_HASH
    True

Work order id: ``wo-`` + the incident's hash (the incident id is ``in-`` + the hash
of the alert that opened it), so the same recording gives the same work orders.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from citywatch.detectors.alerts import SEVERITY_RANK, Alert
from citywatch.detectors.events import format_ts
from citywatch.detectors.incidents import IncidentView


@dataclass(frozen=True, slots=True)
class Route:
    centre: str
    department: str
    level: str
    jurisdiction: str | None

    @property
    def queue(self) -> str:
        return f"{self.centre}|{self.department}"


@dataclass(slots=True)
class Dispatch:
    """An alert on its way to its incident's work order, where it goes, its SLA in seconds."""

    alert: Alert
    route: Route
    sign_sla_s: int
    resolve_sla_s: int
    ingest_ns: int = 0
    incident: IncidentView | None = None


class Written(NamedTuple):
    """What one dispatch did: ``outcome`` is created, merged, rerouted, repeat or silenced."""

    wo_id: str
    outcome: str

    @property
    def created(self) -> bool:
        return self.outcome == "created"

    @property
    def repeat(self) -> bool:
        return self.outcome == "repeat"


def work_order_id(alert: Alert, incident: IncidentView | None = None) -> str:
    """One work order per incident: ``wo-`` + the hash of the id the incident opened
    under (stable while the incident's id moves), else of the alert's incident or id."""
    key = incident.order_key if incident is not None else (alert.incident or alert.id)
    return order_id_of(key)


def order_id_of(incident_key: str) -> str:
    """The work order id keyed by an incident id (``in-X`` -> ``wo-X``).

    >>> order_id_of("in-1a2b")
    'wo-1a2b'
    """
    return "wo-" + incident_key.split("-", 1)[1]


def _csv(items: Sequence[str]) -> str:
    return ",".join(items)


def _split(text: str) -> tuple[str, ...]:
    return tuple(text.split(",")) if text else ()


def _coord(x: float | None) -> str:
    return "" if x is None else f"{x:.6f}"


# The hash fields the record types; everything else (the lifecycle's signed_by,
# feedback, ...) is kept as it is in ``details``.
_TYPED = frozenset(
    "id incident state kind kinds severity severity_rank subject subject_type subjects zone "
    "lon lat first_ts ts centre department departments level jurisdiction queue created_ms "
    "updated_ms sign_sla_s resolve_sla_s sign_due_ms resolve_due_ms alert_count "
    "incident_closes_at_ms returns escalations overdue queued queue_entry".split()
)


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkOrder:
    """One work order as stored in ``{P}:wo:{WO}``: times in epoch ms, SLAs in seconds."""

    id: str
    incident: str
    state: str
    kind: str
    kinds: tuple[str, ...]
    severity: str
    subject: str
    subject_type: str
    subjects: tuple[str, ...]
    zone: str | None
    lon: float | None
    lat: float | None
    first_ts: str
    ts: str
    centre: str
    department: str
    departments: tuple[str, ...]
    level: str
    jurisdiction: str | None
    queue: str
    created_ms: int
    updated_ms: int
    sign_sla_s: int
    resolve_sla_s: int
    sign_due_ms: int
    resolve_due_ms: int
    alert_count: int
    incident_closes_at_ms: int
    returns: int = 0
    escalations: int = 0
    overdue: bool = False
    queued: bool = False
    queue_entry: str | None = None
    details: tuple[tuple[str, str], ...] = ()  # lifecycle fields, unchanged

    @classmethod
    def new(cls, d: Dispatch, now_ms: int) -> WorkOrder:
        """The work order a dispatch creates when its incident has none yet."""
        a, inc = d.alert, d.incident
        return cls(
            id=work_order_id(a, inc),
            incident=a.incident or "",
            state="dispatched",
            kind=a.kind,
            kinds=tuple(inc.kinds) if inc else (a.kind,),
            severity=inc.severity if inc else a.severity,
            subject=a.subject,
            subject_type=a.subject_type,
            subjects=tuple(inc.subjects) if inc else (a.subject,),
            zone=a.zone,
            lon=a.lon,
            lat=a.lat,
            first_ts=format_ts(inc.first_ts_ms if inc else a.first_ts_ms),
            ts=format_ts(a.ts_ms),
            centre=d.route.centre,
            department=d.route.department,
            departments=tuple(inc.departments) if inc else (d.route.department,),
            level=d.route.level,
            jurisdiction=d.route.jurisdiction,
            queue=d.route.queue,
            created_ms=now_ms,
            updated_ms=now_ms,
            sign_sla_s=d.sign_sla_s,
            resolve_sla_s=d.resolve_sla_s,
            sign_due_ms=now_ms + d.sign_sla_s * 1000,
            resolve_due_ms=now_ms + d.resolve_sla_s * 1000,
            alert_count=1,
            incident_closes_at_ms=inc.closes_at_ms if inc else a.ts_ms,
        )

    @property
    def severity_rank(self) -> int:
        return SEVERITY_RANK[self.severity]

    def detail(self, name: str, default: str = "") -> str:
        """A lifecycle field (``signed_by``, ``feedback``, ...), or ``default``."""
        return dict(self.details).get(name, default)

    def to_hash(self) -> dict[str, str]:
        """The fields exactly as stored in Redis."""
        out = {
            "id": self.id,
            "incident": self.incident,
            "state": self.state,
            "kind": self.kind,
            "kinds": _csv(self.kinds),
            "severity": self.severity,
            "severity_rank": str(self.severity_rank),
            "subject": self.subject,
            "subject_type": self.subject_type,
            "subjects": _csv(self.subjects),
            "zone": self.zone or "",
            "lon": _coord(self.lon),
            "lat": _coord(self.lat),
            "first_ts": self.first_ts,
            "ts": self.ts,
            "centre": self.centre,
            "department": self.department,
            "departments": _csv(self.departments),
            "level": self.level,
            "jurisdiction": self.jurisdiction or "",
            "queue": self.queue,
            "created_ms": str(self.created_ms),
            "updated_ms": str(self.updated_ms),
            "sign_sla_s": str(self.sign_sla_s),
            "resolve_sla_s": str(self.resolve_sla_s),
            "sign_due_ms": str(self.sign_due_ms),
            "resolve_due_ms": str(self.resolve_due_ms),
            "alert_count": str(self.alert_count),
            "incident_closes_at_ms": str(self.incident_closes_at_ms),
            "returns": str(self.returns),
            "escalations": str(self.escalations),
            "overdue": "1" if self.overdue else "0",
            "queued": "1" if self.queued else "0",
        }
        if self.queue_entry is not None:
            out["queue_entry"] = self.queue_entry
        out.update(self.details)
        return out

    @classmethod
    def from_hash(cls, h: Mapping[str, str]) -> WorkOrder:
        """The record of a hash read with ``decode_responses`` (or decoded by the caller)."""

        def num(name: str) -> int:
            return int(h.get(name) or 0)

        return cls(
            id=h["id"],
            incident=h.get("incident", ""),
            state=h["state"],
            kind=h.get("kind", ""),
            kinds=_split(h.get("kinds", "")),
            severity=h["severity"],
            subject=h.get("subject", ""),
            subject_type=h.get("subject_type", ""),
            subjects=_split(h.get("subjects", "")),
            zone=h.get("zone") or None,
            lon=float(h["lon"]) if h.get("lon") else None,
            lat=float(h["lat"]) if h.get("lat") else None,
            first_ts=h.get("first_ts", ""),
            ts=h.get("ts", ""),
            centre=h["centre"],
            department=h["department"],
            departments=_split(h.get("departments", "")),
            level=h["level"],
            jurisdiction=h.get("jurisdiction") or None,
            queue=h["queue"],
            created_ms=num("created_ms"),
            updated_ms=num("updated_ms"),
            sign_sla_s=num("sign_sla_s"),
            resolve_sla_s=num("resolve_sla_s"),
            sign_due_ms=num("sign_due_ms"),
            resolve_due_ms=num("resolve_due_ms"),
            alert_count=num("alert_count"),
            incident_closes_at_ms=num("incident_closes_at_ms"),
            returns=num("returns"),
            escalations=num("escalations"),
            overdue=h.get("overdue") == "1",
            queued=h.get("queued") == "1",
            queue_entry=h.get("queue_entry"),
            details=tuple((k, v) for k, v in h.items() if k not in _TYPED),
        )


_EXAMPLE_HASH = {
    "id": "wo-1a2b",
    "incident": "in-1a2b",
    "state": "signed",
    "kind": "video.intrusion",
    "kinds": "video.intrusion",
    "severity": "orange",
    "severity_rank": "2",
    "subject": "cam-1",
    "subject_type": "video",
    "subjects": "cam-1,cam-2",
    "zone": "site-1",
    "lon": "121.010000",
    "lat": "32.000000",
    "first_ts": "2026-06-15T12:00:00.000Z",
    "ts": "2026-06-15T12:00:30.000Z",
    "centre": "town:a",
    "department": "public_security",
    "departments": "public_security",
    "level": "town",
    "jurisdiction": "town:a",
    "queue": "town:a|public_security",
    "created_ms": "1781528400000",
    "updated_ms": "1781528401000",
    "sign_sla_s": "60",
    "resolve_sla_s": "3600",
    "sign_due_ms": "1781528460000",
    "resolve_due_ms": "1781532000000",
    "alert_count": "2",
    "incident_closes_at_ms": "1781528430000",
    "returns": "0",
    "escalations": "0",
    "overdue": "0",
    "queued": "1",
    "queue_entry": "1781528400000-0",
    "signed_by": "alice",
    "signed_ms": "1781528401000",
}
