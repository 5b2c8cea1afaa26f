"""Incidents of a noisy run: sensor faults, overlapping and border incidents.

Injected only when a run is noisy (:func:`citywatch.replay.noise.is_noisy`), each
with the truth entry of the alert it should raise. Fault sensors are copies of
registry sensors outside every zone (so no fusion pair can form) that no other
injector touches.

Timeline of one 40-minute block (minutes from the block's start)::

    min   0    5    10   15   20   25   30   35   40
          |----|----|----|----|----|----|----|----|
    stuck     PM2.5 copy frozen [5 ........... 30]        sensor.stuck ~19
    saturated          PM2.5 copy at 999.9 [12 ........ 32] threshold ~13, stuck ~26
    calibration   noise copy +14 dB from 10 to the run's end (odd blocks)
    drift         noise copy ramps +20 dB over 2 h from 10 (blocks 1, 5, 9, ...)
    overlap       two muck trucks enter the airport site at ~29-31, one parks
                  12 m inside its border (GPS noise straddles the edge)

What should alert: a stuck or saturated sensor (``sensor.stuck``; saturation is
also over the PM2.5 limit: ``sensor.threshold``), a calibration step and a drift
that grows to 10 standard deviations of the monitor's noise (``sensor.anomaly``,
window: the whole ramp and 20 minutes after the sensor is recalibrated back),
each truck's entry (``geofence.enter``, once: border jitter must not re-enter).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import shapely
from shapely.geometry import LineString, Point

from citywatch.geo.distance import haversine_m
from citywatch.replay.incidents_sensors import _zone_of_point
from citywatch.replay.world import Leg, Vehicle, approach

if TYPE_CHECKING:
    from collections.abc import Callable

    from citywatch.replay.generator import Generator, GenParams

MINUTE = 60_000
HOUR = 60 * MINUTE
NOISE_SD_DB = 2.0  # replay.world.normal_value's noise monitor
SATURATED = 999.9
DRIFT_DB = 10 * NOISE_SD_DB
DRIFT_MS = 2 * HOUR
CALIBRATION_DB = 7 * NOISE_SD_DB
BORDER_M = 12.0
# Zones a muck truck may cross on its way into the airport site.
SITE_ROUTE_KINDS = ("airport_site", "airport_protection", "construction_site")


def _fault_sensor(gen: Generator, kind: str, slot: int) -> tuple[str, float, float, float] | None:
    """A sensor copy of ``kind`` outside every zone that no injector uses yet."""
    copies = [s for s in gen.sensors if s[1] == kind and not s[5]]
    for k in range(min(len(copies), 200)):
        sid, _, lon, lat, level, _ = copies[(slot * 7919 + k) % len(copies)]
        if sid in gen.sensor_override or sid in gen.sensor_silence:
            continue
        if _zone_of_point(gen, lon, lat) is None:
            return sid, lon, lat, level
    return None


def pm25_stuck_at(gen: Generator, b: int, base: int, span: int) -> None:
    """A PM2.5 monitor repeats its last value for 25 minutes (sensor.stuck)."""
    picked = _fault_sensor(gen, "pm25", 4 * b)
    if picked is None or span < 35 * MINUTE:
        return
    sid, _, _, level = picked
    t_s = base + 5 * MINUTE
    frozen = round(level * (1 + 0.15 * math.sin(2 * math.pi * t_s / HOUR / 24)), 3)

    def stuck(t: int, v: float = frozen) -> float:
        return v

    gen.sensor_override.setdefault(sid, []).append((t_s, t_s + 25 * MINUTE, stuck))
    # min_readings 15 at one a minute: the 15th equal reading, 14-15 minutes in.
    gen.expect(
        "sensor.stuck", sid, None, t_s + 13 * MINUTE, t_s + 16 * MINUTE, "PM2.5 monitor stuck"
    )


def pm25_saturated(gen: Generator, b: int, base: int, span: int) -> None:
    """A PM2.5 monitor pinned at full scale for 20 minutes: over the limit
    (sensor.threshold) and one value (sensor.stuck)."""
    picked = _fault_sensor(gen, "pm25", 4 * b + 1)
    if picked is None or span < 35 * MINUTE:
        return
    sid = picked[0]
    t_s = base + 12 * MINUTE

    def saturated(t: int) -> float:
        return SATURATED

    gen.sensor_override.setdefault(sid, []).append((t_s, t_s + 20 * MINUTE, saturated))
    # Third reading over 115 µg/m³ (min_readings 3): 2-3 minutes in.
    gen.expect(
        "sensor.threshold",
        sid,
        None,
        t_s,
        t_s + 4 * MINUTE,
        "PM2.5 monitor saturated at full scale",
    )
    gen.expect(
        "sensor.stuck",
        sid,
        None,
        t_s + 13 * MINUTE,
        t_s + 16 * MINUTE,
        "PM2.5 monitor saturated: one value",
    )


def noise_calibration_step(gen: Generator, b: int, base: int, span: int) -> None:
    """A noise monitor reads 14 dB (7 sd) high from a bad calibration on: a step
    that lasts to the run's end (sensor.anomaly, once)."""
    if b % 2 == 0 or span < 20 * MINUTE:
        return
    picked = _fault_sensor(gen, "noise", 4 * b + 2)
    if picked is None:
        return
    sid, _, _, level = picked
    t_s = base + 10 * MINUTE
    rnd_seed = gen.p.seed * 7919 + 17 * b

    def offset(t: int, level: float = level, seed: int = rnd_seed) -> float:
        return level + CALIBRATION_DB + _noise(seed, t)

    gen.sensor_override.setdefault(sid, []).append((t_s, gen.t_end + MINUTE, offset))
    gen.expect(
        "sensor.anomaly",
        sid,
        None,
        t_s,
        t_s + 5 * MINUTE,
        "noise monitor reads 14 dB high after a calibration step",
    )


def noise_drift(gen: Generator, b: int, base: int, span: int) -> None:
    """A noise monitor drifts up 20 dB (10 sd) over two hours, then is recalibrated
    (sensor.anomaly somewhere on the ramp; the return may alert again)."""
    t_s = base + 10 * MINUTE
    t_top = t_s + DRIFT_MS
    if b % 4 != 1 or t_top + 20 * MINUTE > gen.t_end:
        return
    picked = _fault_sensor(gen, "noise", 4 * b + 3)
    if picked is None:
        return
    sid, _, _, level = picked
    rnd_seed = gen.p.seed * 7919 + 31 * b

    def ramp(t: int, level: float = level, seed: int = rnd_seed) -> float:
        return level + DRIFT_DB * (t - t_s) / DRIFT_MS + _noise(seed, t)

    gen.sensor_override.setdefault(sid, []).append((t_s, t_top, ramp))
    gen.expect(
        "sensor.anomaly",
        sid,
        None,
        t_s,
        t_top + 20 * MINUTE,
        "noise monitor drifting up 20 dB over two hours, then recalibrated",
    )


def _noise(seed: int, t: int) -> float:
    """The monitor's reading noise, a function of time only (overrides are called in
    event order, but must not depend on it)."""
    x = math.sin((t // 1000) * 12.9898 + seed * 78.233) * 43758.5453
    u1 = (x - math.floor(x)) or 0.5
    y = math.sin((t // 1000) * 39.3468 + seed * 11.135) * 24634.6345
    u2 = y - math.floor(y)
    return NOISE_SD_DB * math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2)


def _entry(
    gen: Generator, zid: str, inside: tuple[float, float], t_enter: int, name: str, skip: int
) -> tuple[list[Leg], int] | None:
    """Legs of a muck truck entering ``zid`` at about ``t_enter`` and parking at
    ``inside``, from the first clear direction after ``skip`` tries; and its entry time."""
    geom = gen.ref.zones.by_id[zid].geometry
    directions = [(-0.02, 0.0), (0.0, -0.02), (0.02, 0.0), (0.0, 0.02)]
    for dx, dy in directions[skip:] + directions[:skip]:
        outside = (round(inside[0] + dx, 6), round(inside[1] + dy, 6))
        if shapely.intersects_xy(geom, *outside):
            continue
        if not gen.world.path_ok(*outside, *inside, SITE_ROUTE_KINDS):
            continue
        probe = approach(outside, inside, 0, geom, speed_kmh=30.0)
        legs = approach(outside, inside, t_enter - probe[1].t0, geom, speed_kmh=30.0)
        legs.append(Leg(legs[-1].t1, gen.t_end + MINUTE, *inside, *inside))
        return legs, legs[1].t0
    return None


def _border_point(gen: Generator, zid: str, inside: tuple[float, float]) -> tuple[float, float]:
    """A point ``BORDER_M`` inside the zone's edge, south of ``inside``."""
    geom = gen.ref.zones.by_id[zid].geometry
    _, miny, _, _ = geom.bounds
    line = LineString([inside, (inside[0], miny - 0.001)])
    crossing = line.intersection(geom.boundary)
    points = [crossing] if isinstance(crossing, Point) else list(getattr(crossing, "geoms", []))
    if not points:
        return inside
    edge = min(points, key=lambda q: haversine_m(inside[0], inside[1], q.x, q.y))
    d = haversine_m(inside[0], inside[1], edge.x, edge.y)
    if d <= BORDER_M:
        return inside
    f = BORDER_M / d
    return round(edge.x + (inside[0] - edge.x) * f, 6), round(edge.y + (inside[1] - edge.y) * f, 6)


def two_trucks_enter_at_once(gen: Generator, b: int, base: int, span: int) -> None:
    """Two muck trucks enter the airport site within two minutes, while the block's
    first intruder is still there; one parks 12 m inside the border
    (geofence.enter each, once)."""
    sites = gen.world.by_kind.get("airport_site", [])
    if not sites or span < 40 * MINUTE:
        return
    zid = sites[-1]
    deep = gen.world.zone_point(zid)
    border = _border_point(gen, zid, gen.world.zone_point(zid))
    for k, (spot, t_target) in enumerate(
        [(deep, base + 29 * MINUTE), (border, base + 30 * MINUTE + 30_000)]
    ):
        made = _entry(gen, zid, spot, t_target, f"{b}-{k}", skip=k)
        if made is None:
            continue
        legs, t_enter = made
        vid = f"muck-ovl-{b + 1:03d}-{k + 1}"
        # First fix as it sets off (it crosses the protection zone in minutes; waiting
        # there would be a dwell).
        v = Vehicle(vid, "muck_truck", legs, 20_000, legs[0].t0 + k * 7_000)
        # The tracker's own jitter plus the run's GPS noise (the noise stage leaves
        # incident vehicles alone): the border truck's fixes straddle the edge.
        v.jitter_m = math.hypot(v.jitter_m, gen.p.gps_jitter_m)
        gen.vehicles.append(v)
        gen.expect(
            "geofence.enter",
            vid,
            zid,
            t_enter - 10_000,
            t_enter + 60_000,
            "muck truck enters the airport site alongside another"
            + (" and parks on its border" if spot == border else ""),
        )


def noise_injectors(p: GenParams) -> list[Callable[[Generator, int, int, int], None]]:
    """The injectors a noisy run adds (per ``sensor_faults`` and ``overlapping_incidents``)."""
    out: list[Callable[[Generator, int, int, int], None]] = []
    if p.sensor_faults:
        out += [pm25_stuck_at, pm25_saturated, noise_calibration_step, noise_drift]
    if p.overlapping_incidents:
        out.append(two_trucks_enter_at_once)
    return out
