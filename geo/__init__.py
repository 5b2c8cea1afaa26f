"""Zones and jurisdictions: loading, validation, vectorised lookup, distances."""

from citywatch.geo.distance import haversine_m
from citywatch.geo.errors import ZoneFileError
from citywatch.geo.jurisdictions import Jurisdictions, load_jurisdictions
from citywatch.geo.zones import Zone, ZoneIndex, load_zones

__all__ = [
    "Jurisdictions",
    "Zone",
    "ZoneFileError",
    "ZoneIndex",
    "haversine_m",
    "load_jurisdictions",
    "load_zones",
]
