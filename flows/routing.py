"""Routing: which centre, department and level a work order goes to.

Jurisdiction comes from the alert's position (town, else county, else city).
The level comes from the severity ("simple to the town, complex or serious to
the county or city"); the centre is the alert's jurisdiction at that level; the
department comes from the routing table, most specific key first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from detectors.alerts import Alert
from detectors.base import ZoneMeta
from flows.config import RoutingSettings
from geo.jurisdictions import Jurisdictions
from sinks.redis_dispatch import Dispatch, Route


def route_one(
    alert: Alert,
    town: str | None,
    jurisdictions: Jurisdictions,
    routing: RoutingSettings,
    zones: Mapping[str, ZoneMeta],
) -> Route:
    level = routing.level_by_severity.get(alert.severity, "town")
    centre = jurisdictions.at_level(town, level)
    if centre is None:  # no town/county here: the nearest level above that exists
        chain = jurisdictions.chain(town)
        centre = chain[-1] if chain else "city"
        level = jurisdictions.items[centre].level if centre in jurisdictions.items else "city"
    zone = zones.get(alert.zone) if alert.zone else None
    details = (alert.evidence.get("sensor_kind"), zone.kind if zone else None)
    return Route(centre, routing.department(alert.kind, details), level, town)


def route_alerts(
    alerts: Sequence[Alert],
    jurisdictions: Jurisdictions,
    routing: RoutingSettings,
    zones: Mapping[str, ZoneMeta],
) -> list[Dispatch]:
    """Route a batch of alerts (jurisdictions located in one vectorised call)."""
    if not alerts:
        return []
    lon = np.array([a.lon if a.lon is not None else np.nan for a in alerts], dtype=float)
    lat = np.array([a.lat if a.lat is not None else np.nan for a in alerts], dtype=float)
    towns = jurisdictions.locate(lon, lat)
    out: list[Dispatch] = []
    for alert, town in zip(alerts, towns, strict=True):
        route = route_one(alert, town, jurisdictions, routing, zones)
        alert.jurisdiction = town or route.centre
        if alert.incident is None:
            alert.incident = "in-" + alert.id.split("-", 1)[1]
        out.append(
            Dispatch(
                alert,
                route,
                routing.sign_sla_s.get(alert.severity, 3600),
                routing.resolve_sla_s.get(alert.severity, 86400),
            )
        )
    return out
