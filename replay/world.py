"""The synthetic city's moving parts: vehicles on legs, geometry helpers, signal models.

Used by the generator; nothing here writes files.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely

from citywatch.geo.distance import haversine_m
from citywatch.geo.reference import Reference

REPORT_S = {
    "hazmat_truck": 15,
    "tanker": 15,
    "muck_truck": 20,
    "vessel": 30,
    "patrol": 15,
    "fishing_boat": 30,
}


SPEED_KMH = {
    "hazmat_truck": (40, 70),
    "tanker": (40, 70),
    "muck_truck": (30, 55),
    "vessel": (10, 20),
    "patrol": (30, 60),
    "fishing_boat": (8, 15),
}
# Zone kinds a background vehicle may be in; all others are avoided.


ALLOWED = {
    "hazmat_truck": ("chemical_park", "approved_stop"),
    "tanker": ("chemical_park", "approved_stop"),
    "muck_truck": ("construction_site",),
    "vessel": ("no_fishing",),
    "patrol": ("residential",),
}


EDGE_DEG = 0.0004  # ~40 m: margin kept between background traffic and zone edges


@dataclass(slots=True)
class Leg:
    t0: int
    t1: int
    lon0: float
    lat0: float
    lon1: float
    lat1: float


@dataclass(slots=True)
class Vehicle:
    id: str
    cls: str
    legs: list[Leg]
    period_ms: int
    next_ms: int
    cargo: str | None = None
    jitter_m: float = 4.0
    leg_i: int = 0
    # (t0, t1, lon, lat) windows where the fix is displaced (an injected jitter spike)
    spikes: list[tuple[int, int, float, float]] = field(default_factory=list)

    def position(self, t: int) -> tuple[float, float, float]:
        while self.leg_i < len(self.legs) - 1 and t >= self.legs[self.leg_i].t1:
            self.leg_i += 1
        leg = self.legs[self.leg_i]
        span = max(1, leg.t1 - leg.t0)
        f = min(1.0, max(0.0, (t - leg.t0) / span))
        lon = leg.lon0 + (leg.lon1 - leg.lon0) * f
        lat = leg.lat0 + (leg.lat1 - leg.lat0) * f
        moving = leg.lon0 != leg.lon1 or leg.lat0 != leg.lat1
        speed = (
            haversine_m(leg.lon0, leg.lat0, leg.lon1, leg.lat1) / span * 3600.0 if moving else 0.0
        )
        return lon, lat, speed


class World:
    """Geometry helpers over the reference data: random points, path checks."""

    def __init__(self, ref: Reference, rng: random.Random) -> None:
        self.ref = ref
        self.rng = rng
        city = ref.jurisdictions.items.get("city")
        if city is None:
            msg = "the jurisdictions file needs a 'city' feature to generate traffic"
            raise ValueError(msg)
        self.city = city.geometry
        shapely.prepare(self.city)
        self.zone_kind = {z.id: z.kind for z in ref.zones.zones}
        self.by_kind: dict[str, list[str]] = {}
        self._forbidden_cache: dict[tuple[str, ...], list[tuple[Any, tuple[float, ...]]]] = {}
        for z in ref.zones.zones:
            self.by_kind.setdefault(z.kind, []).append(z.id)

    def point_in(self, geom: Any, tries: int = 500) -> tuple[float, float]:
        minx, miny, maxx, maxy = geom.bounds
        for _ in range(tries):
            x, y = self.rng.uniform(minx, maxx), self.rng.uniform(miny, maxy)
            if shapely.intersects_xy(geom, x, y):
                return round(x, 6), round(y, 6)
        c = geom.representative_point()
        return round(c.x, 6), round(c.y, 6)

    def zone_point(self, zid: str) -> tuple[float, float]:
        """A random point at least ~40 m inside a zone, so GPS jitter stays inside too."""
        geom = self.ref.zones.by_id[zid].geometry
        inner = geom.buffer(-EDGE_DEG)
        return self.point_in(inner if not inner.is_empty else geom)

    def zone_point_of(self, zone_ids: list[str]) -> tuple[float, float]:
        """A point well inside one of the zones, chosen at random."""
        return self.zone_point(self.rng.choice(zone_ids))

    def free_point(self, allowed: tuple[str, ...]) -> tuple[float, float]:
        for _ in range(200):
            lon, lat = self.point_in(self.city)
            if self.path_ok(lon, lat, lon, lat, allowed):
                return lon, lat
        return self.point_in(self.city)

    def path_ok(
        self, lon0: float, lat0: float, lon1: float, lat1: float, allowed: tuple[str, ...]
    ) -> bool:
        """True if a straight path, sampled every ~50 m, stays out of non-allowed zones
        and inside the city."""
        n = max(2, int(haversine_m(lon0, lat0, lon1, lat1) / 50) + 1)
        # The path itself and two copies ~40 m to either side: GPS jitter must not
        # carry a fix into a zone either.
        line_lon = np.linspace(lon0, lon1, n)
        line_lat = np.linspace(lat0, lat1, n)
        lons = np.concatenate([line_lon, line_lon + EDGE_DEG, line_lon - EDGE_DEG])
        lats = np.concatenate([line_lat, line_lat - EDGE_DEG, line_lat + EDGE_DEG])
        if not bool(np.all(shapely.intersects_xy(self.city, lons, lats))):
            return False
        # The samples lie on these three segments: a zone none of them meets holds none.
        segments = shapely.multilinestrings(
            [
                [(lon0, lat0), (lon1, lat1)],
                [(lon0 + EDGE_DEG, lat0 - EDGE_DEG), (lon1 + EDGE_DEG, lat1 - EDGE_DEG)],
                [(lon0 - EDGE_DEG, lat0 + EDGE_DEG), (lon1 - EDGE_DEG, lat1 + EDGE_DEG)],
            ]
        )
        # Same answer as asking the zone index for every point, but only the forbidden
        # zones whose bounding box meets the path's are tested: at city scale, fleet
        # construction is thousands of long paths and this was most of its time.
        x0, x1 = float(lons.min()), float(lons.max())
        y0, y1 = float(lats.min()), float(lats.max())
        for geom, (zx0, zy0, zx1, zy1) in self._forbidden(allowed):
            if (
                zx0 <= x1
                and x0 <= zx1
                and zy0 <= y1
                and y0 <= zy1
                and shapely.intersects(geom, segments)
                and bool(np.any(shapely.intersects_xy(geom, lons, lats)))
            ):
                return False
        return True

    def _forbidden(self, allowed: tuple[str, ...]) -> list[tuple[Any, tuple[float, ...]]]:
        """Prepared geometries and bounds of the zones a vehicle class must avoid."""
        cached = self._forbidden_cache.get(allowed)
        if cached is None:
            cached = []
            for z in self.ref.zones.zones:
                if z.kind not in allowed:
                    shapely.prepare(z.geometry)
                    cached.append((z.geometry, tuple(z.geometry.bounds)))
            self._forbidden_cache[allowed] = cached
        return cached


def trip(
    world: World,
    cls: str,
    t_start: int,
    t_end: int,
    start: tuple[float, float],
    destinations: Callable[[], tuple[float, float]],
    dwell_s: tuple[int, int],
) -> list[Leg]:
    rng = world.rng
    allowed = ALLOWED.get(cls, ())
    lon, lat = start
    t = t_start
    legs: list[Leg] = []
    # Start with a dwell of random length so vehicles are not in phase.
    first = rng.randint(0, dwell_s[1])
    legs.append(Leg(t, t + first * 1000, lon, lat, lon, lat))
    t += first * 1000
    while t < t_end:
        for _ in range(30):
            dlon, dlat = destinations()
            if world.path_ok(lon, lat, dlon, dlat, allowed):
                break
        else:
            dlon, dlat = lon, lat
        lo, hi = SPEED_KMH[cls]
        speed_ms = rng.uniform(lo, hi) / 3.6
        dur = int(haversine_m(lon, lat, dlon, dlat) / speed_ms * 1000) + 1000
        legs.append(Leg(t, t + dur, lon, lat, dlon, dlat))
        t += dur
        dwell = rng.randint(*dwell_s) * 1000
        legs.append(Leg(t, t + dwell, dlon, dlat, dlon, dlat))
        t += dwell
        lon, lat = dlon, dlat
    return legs


PREFIX = {
    "hazmat_truck": "hz",
    "tanker": "tk",
    "muck_truck": "muck",
    "vessel": "ship",
    "patrol": "patrol",
}


def approach(
    outside: tuple[float, float],
    inside: tuple[float, float],
    t_start: int,
    geom: Any,
    speed_kmh: float,
) -> list[Leg]:
    """Legs from ``outside`` to ``inside``, split where the path crosses into ``geom``,
    so the truth knows when the vehicle enters."""
    dist = haversine_m(*outside, *inside)
    dur = int(dist / (speed_kmh / 3.6) * 1000)
    t0 = t_start
    t_arrive = t0 + dur
    n = 400
    f_enter = 1.0
    for k in range(n + 1):
        f = k / n
        x = outside[0] + (inside[0] - outside[0]) * f
        y = outside[1] + (inside[1] - outside[1]) * f
        if shapely.intersects_xy(geom, x, y):
            f_enter = f
            break
    t_enter = t0 + int(dur * f_enter)
    mid = (
        outside[0] + (inside[0] - outside[0]) * f_enter,
        outside[1] + (inside[1] - outside[1]) * f_enter,
    )
    return [Leg(t0, t_enter, *outside, *mid), Leg(t_enter, t_arrive, *mid, *inside)]


def base_value(kind: str, rng: random.Random) -> float:
    return {
        "water_level": rng.uniform(2.6, 3.2),
        "pm10": rng.uniform(40, 80),
        "pm25": rng.uniform(20, 45),
        "noise": rng.uniform(45, 65),
        "water": rng.uniform(0.01, 0.04),
        "power": rng.uniform(0.1, 0.5),
        "gas": rng.uniform(0.01, 0.04),
    }.get(kind, rng.uniform(1, 10))


def normal_value(kind: str, base: float, t: int, rng: random.Random) -> float:
    hours = t / 3_600_000
    if kind == "water_level":  # semi-diurnal tide
        return base + 0.35 * math.sin(2 * math.pi * hours / 12.42) + rng.gauss(0, 0.02)
    if kind in ("pm10", "pm25"):
        return max(1.0, base * (1 + 0.15 * math.sin(2 * math.pi * hours / 24)) + rng.gauss(0, 4))
    if kind == "noise":
        return base + rng.gauss(0, 2)
    return max(
        0.0, base * (1 + 0.5 * math.sin(2 * math.pi * (hours - 6) / 24)) + rng.gauss(0, base * 0.05)
    )
