"""Zones and jurisdictions: loading, validation, vectorised lookup, distances."""

from geo.distance import haversine_m
from geo.errors import ZoneFileError
from geo.jurisdictions import Jurisdictions, load_jurisdictions
from geo.zones import Zone, ZoneIndex, load_zones

__all__ = [
    "Jurisdictions",
    "Zone",
    "ZoneFileError",
    "ZoneIndex",
    "haversine_m",
    "load_jurisdictions",
    "load_zones",
]
