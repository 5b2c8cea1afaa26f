"""Routing: which centre, department and level an incident's work order goes to.

* **Jurisdiction** from the position (town, else county, else city; the
  incident's first located town).
* **Department** from ``[routing.departments]``, most specific key first
  (``kind:sensor_kind`` / ``kind:zone_kind``, ``kind``, family, ``default``);
  an incident that involves several departments goes to the
  ``coordinating_department``.
* **Level** ("simple to the town, complex or serious to the county or city"):
  the highest of ``level_by_severity[severity]``, ``multi_department_level``
  when several departments are involved, ``cross_town_level`` when the
  incident spans towns of one county and ``cross_county_level`` when it spans
  counties. The centre is the jurisdiction at that level.

All of it comes from the config; ``citywatch route`` shows the decision and
its reasons for a given alert.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from citywatch.detectors.alerts import Alert
from citywatch.detectors.base import ZoneMeta
from citywatch.detectors.incidents import IncidentView
from citywatch.flows.config import RoutingSettings
from citywatch.geo.jurisdictions import Jurisdictions
from citywatch.sinks.dispatch import LEVEL_RANK, Dispatch, Route


def department_of(alert: Alert, routing: RoutingSettings, zones: Mapping[str, ZoneMeta]) -> str:
    zone = zones.get(alert.zone) if alert.zone else None
    details = (alert.evidence.get("sensor_kind"), zone.kind if zone else None)
    return routing.department(alert.kind, details)


def decide(
    alert: Alert,
    town: str | None,
    jurisdictions: Jurisdictions,
    routing: RoutingSettings,
    zones: Mapping[str, ZoneMeta],
    incident: IncidentView | None = None,
) -> tuple[Route, list[str]]:
    """The route of the alert's incident, and the reasons, one line each."""
    severity = incident.severity if incident else alert.severity
    departments = list(incident.departments) if incident and incident.departments else []
    own = department_of(alert, routing, zones)
    if own not in departments:
        departments.append(own)
    towns = [t for t in (incident.towns if incident else ()) if t] or ([town] if town else [])
    home = towns[0] if towns else town
    level = routing.level_by_severity.get(severity, "town")
    why = [f"severity {severity} -> {level} (routing.level_by_severity)"]

    def raise_to(candidate: str, reason: str) -> None:
        nonlocal level
        if candidate and LEVEL_RANK[candidate] > LEVEL_RANK[level]:
            level = candidate
            why.append(f"{reason} -> {candidate}")

    if len(departments) > 1:
        raise_to(
            routing.multi_department_level,
            f"departments {', '.join(departments)} (routing.multi_department_level)",
        )
    if len(towns) > 1:
        counties = {jurisdictions.at_level(t, "county") for t in towns}
        if len(counties) > 1:
            raise_to(
                routing.cross_county_level,
                f"spans counties {', '.join(sorted(c or '?' for c in counties))} "
                "(routing.cross_county_level)",
            )
        else:
            raise_to(
                routing.cross_town_level,
                f"spans towns {', '.join(towns)} (routing.cross_town_level)",
            )
    centre = jurisdictions.at_level(home, level)
    if centre is None:  # no town/county here: the nearest level above that exists
        chain = jurisdictions.chain(home)
        centre = chain[-1] if chain else "city"
        level = jurisdictions.items[centre].level if centre in jurisdictions.items else "city"
        why.append(f"no {level} jurisdiction at the position -> {centre}")
    why.append(f"jurisdiction {home or 'unknown'} at level {level} -> centre {centre}")
    if len(departments) > 1:
        dept = routing.coordinating_department
        why.append(f"several departments -> {dept} (routing.coordinating_department)")
    else:
        dept = departments[0]
        why.append(f"kind {alert.kind} -> department {dept} (routing.departments)")
    return Route(centre, dept, level, home), why


def route_one(
    alert: Alert,
    town: str | None,
    jurisdictions: Jurisdictions,
    routing: RoutingSettings,
    zones: Mapping[str, ZoneMeta],
    incident: IncidentView | None = None,
) -> Route:
    return decide(alert, town, jurisdictions, routing, zones, incident)[0]


def locate_towns(alerts: Sequence[Alert], jurisdictions: Jurisdictions) -> list[str | None]:
    """The most specific jurisdiction of each alert's position (one vectorised call)."""
    if not alerts:
        return []
    lon = np.array([a.lon if a.lon is not None else np.nan for a in alerts], dtype=float)
    lat = np.array([a.lat if a.lat is not None else np.nan for a in alerts], dtype=float)
    return jurisdictions.locate(lon, lat)


def route_alerts(
    alerts: Sequence[Alert],
    jurisdictions: Jurisdictions,
    routing: RoutingSettings,
    zones: Mapping[str, ZoneMeta],
    incidents: Sequence[IncidentView] | None = None,
) -> list[Dispatch]:
    """Route a batch of alerts; with ``incidents`` (``incidents[i]`` the incident of
    ``alerts[i]``) each alert is routed as part of its incident."""
    if not alerts:
        return []
    views: Sequence[IncidentView | None] = incidents or [None] * len(alerts)
    towns = locate_towns(alerts, jurisdictions)
    out: list[Dispatch] = []
    for alert, town, view in zip(alerts, towns, views, strict=True):
        route = route_one(alert, town, jurisdictions, routing, zones, view)
        alert.jurisdiction = town or route.centre
        if alert.incident is None:
            alert.incident = "in-" + alert.id.split("-", 1)[1]
        severity = view.severity if view else alert.severity
        out.append(
            Dispatch(
                alert,
                route,
                routing.sign_sla_s.get(severity, 3600),
                routing.resolve_sla_s.get(severity, 86400),
                incident=view,
            )
        )
    return out
