"""Distances in metres on the WGS84 sphere approximation.

>>> round(haversine_m(120.0, 32.0, 120.0, 32.001))
111
"""

from __future__ import annotations

import math

import numpy as np

EARTH_RADIUS_M = 6_371_008.8


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance between two points, in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dphi = p2 - p1
    dlmb = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def haversine_m_array(
    lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray, lat2: np.ndarray
) -> np.ndarray:
    """Vectorised :func:`haversine_m`."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    a = (
        np.sin((p2 - p1) / 2) ** 2
        + np.cos(p1) * np.cos(p2) * np.sin(np.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_M * np.arcsin(np.minimum(1.0, np.sqrt(a)))


def offset_deg(lat: float, east_m: float, north_m: float) -> tuple[float, float]:
    """Degrees of longitude and latitude for a small offset in metres at a latitude."""
    dlat = north_m / (EARTH_RADIUS_M * math.pi / 180)
    dlon = east_m / (EARTH_RADIUS_M * math.pi / 180 * math.cos(math.radians(lat)))
    return dlon, dlat
