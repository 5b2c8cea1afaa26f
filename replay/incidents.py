"""Injected incidents: each function adds one scripted incident to a block of the run.

The generator splits a run into 40-minute blocks and calls every injector in
``INJECTORS`` once per block with the block's index, start (epoch ms) and
length. An injector adds vehicles, sensor overrides or video detections to the
generator and records the alert it expects with ``gen.expect(...)``; it skips
itself when the block is too short for its story. Add new injectors to
``INJECTORS``; keep each one self-contained.
"""

from __future__ import annotations

import math

from citywatch.geo.distance import haversine_m, offset_deg
from citywatch.replay.incidents_anomaly import group_rental_dwelling, noise_level_shift
from citywatch.replay.incidents_geo import muck_truck_dwells_in_airport_protection
from citywatch.replay.incidents_sensors import (
    SENSOR_VIDEO_INJECTORS,
    corroborated_truth,
    tide_level,
)
from citywatch.replay.incidents_tracks import TRACK_INJECTORS
from citywatch.replay.scene import Injector, Scene, is_night, zone_of_sensor
from citywatch.replay.world import ALLOWED, Leg, Vehicle, approach


def muck_truck_on_airport_site(gen: Scene, b: int, base: int, span: int) -> None:
    """A muck truck drives onto the airport site (geofence.enter)."""
    rng, world = gen.rng, gen.world
    minute = 60_000
    site = world.by_kind.get("airport_site", [])
    if site and span >= 12 * minute:
        zid = site[0]
        inside = world.zone_point(zid)
        geom = gen.ref.zones.by_id[zid].geometry
        minx, _, _, _ = geom.bounds
        outside = (round(minx - 0.02, 6), inside[1])
        t_go = base + 1 * minute + rng.randrange(minute)
        legs = approach(outside, inside, t_go, geom, speed_kmh=30.0)
        t_enter = legs[1].t0
        legs.append(Leg(legs[-1].t1, gen.t_end + minute, inside[0], inside[1], *inside))
        vid = f"muck-inj-{b + 1:03d}"
        gen.vehicles.append(Vehicle(vid, "muck_truck", legs, 20_000, base + 20_000))
        gen.expect(
            "geofence.enter",
            vid,
            zid,
            t_enter - 10_000,
            t_enter + 60_000,
            "muck truck drives onto the airport site",
        )


def fishing_boat_in_no_fishing_reach(gen: Scene, b: int, base: int, span: int) -> None:
    """A fishing boat enters a no-fishing reach (geofence.enter)."""
    world = gen.world
    minute = 60_000
    reaches = world.by_kind.get("no_fishing", [])
    if reaches and span >= 12 * minute:
        zid = reaches[b % len(reaches)]
        geom = gen.ref.zones.by_id[zid].geometry
        inside = world.zone_point(zid)
        _, miny, _, _ = geom.bounds
        outside = (inside[0], round(miny - 0.01, 6))
        t_go = base + 2 * minute
        legs = approach(outside, inside, t_go, geom, speed_kmh=12.0)
        t_enter = legs[1].t0
        if t_enter + 2 * minute > base + span:
            return  # a slow boat: it would enter after the run ends
        legs.append(Leg(legs[-1].t1, gen.t_end + minute, inside[0], inside[1], *inside))
        vid = f"boat-inj-{b + 1:03d}"
        gen.vehicles.append(Vehicle(vid, "fishing_boat", legs, 30_000, base + 30_000))
        gen.expect(
            "geofence.enter",
            vid,
            zid,
            t_enter - 10_000,
            t_enter + 90_000,
            "fishing boat enters the no-fishing reach",
        )


def hazmat_roadside_stop(gen: Scene, b: int, base: int, span: int) -> None:
    """A hazmat truck stops by the road for 22 minutes (track.stop), with one
    jittered fix 150 m away in the middle of the stop."""
    rng, world = gen.rng, gen.world
    minute = 60_000
    fits = span >= 38 * minute
    depots = world.by_kind.get("approved_stop", []) + world.by_kind.get("chemical_park", [])
    if fits and depots:
        vid = f"hz-inj-{b + 1:03d}"
        t_stop = base + 6 * minute
        allowed = ALLOWED["hazmat_truck"]
        for _ in range(200):
            spot = world.free_point(())
            start = (round(spot[0] - 0.03, 6), spot[1])
            depot = world.zone_point(rng.choice(depots))
            if world.path_ok(*start, *spot, allowed) and world.path_ok(*spot, *depot, allowed):
                break
        drive = Leg(base, t_stop, *start, *spot)
        stop = Leg(t_stop, t_stop + 22 * minute, *spot, *spot)
        leave_ms = int(haversine_m(*spot, *depot) / (50 / 3.6) * 1000) + 1000
        leave = Leg(stop.t1, stop.t1 + leave_ms, *spot, *depot)
        park = Leg(leave.t1, gen.t_end + minute, *depot, *depot)
        v = Vehicle(
            vid,
            "hazmat_truck",
            [drive, stop, leave, park],
            15_000,
            base + 15_000,
            cargo="methanol",
        )
        dlon, dlat = offset_deg(spot[1], 150.0, 0.0)
        v.spikes.append((t_stop + 8 * minute, t_stop + 8 * minute + 15_000, dlon, dlat))
        gen.vehicles.append(v)
        # The alert comes with the first fix at least 15 min after the stop began.
        gen.expect(
            "track.stop",
            vid,
            None,
            t_stop + 15 * minute,
            t_stop + 15 * minute + 60_000,
            "hazmat truck stops by the road",
        )


def levee_water_rising(gen: Scene, b: int, base: int, span: int) -> None:
    """A levee water level rises over the warning level (sensor.threshold), fast
    (sensor.rate), and falls back to the tide's level (with a ripple: never stuck)."""
    minute = 60_000
    gauges = [s for s in gen.sensors if s[1] == "water_level" and s[5]]
    if gauges and span >= 25 * minute:
        sid = gauges[b % len(gauges)][0]
        base_level = next(s[4] for s in gen.sensors if s[0] == sid)
        t_rise = base + 4 * minute
        t_peak = t_rise + 10 * minute
        t_fall = t_peak + 8 * minute

        def surge(t: int, b0: float = base_level) -> float:
            ripple = 0.01 * math.sin(t / 47_000)
            if t < t_peak:
                start = tide_level(b0, t_rise)
                return start + (5.0 - start) * (t - t_rise) / (t_peak - t_rise) + ripple
            if t < t_fall:
                return 5.0 + ripple
            return max(tide_level(b0, t), 5.0 - (t - t_fall) / 60_000 * 0.3) + ripple

        gen.sensor_override.setdefault(sid, []).append((t_rise, t_fall + 30 * minute, surge))
        # Crossing 4.5 m: fraction of the ramp; alert on the 2nd reading beyond.
        t_cross = t_rise + int((4.5 - base_level) / (5.0 - base_level) * (t_peak - t_rise))
        gen.expect(
            "sensor.threshold",
            sid,
            zone_of_sensor(gen.ref, sid),
            t_cross,
            t_cross + 3 * minute,
            "levee water level above 4.5 m",
        )
        # Rising ~12 m/h: the 30-minute slope passes 0.6 m/h 3.5-5 minutes in (20 minutes
        # of readings are needed first at a run's start).
        gen.expect(
            "sensor.rate",
            sid,
            zone_of_sensor(gen.ref, sid),
            t_rise + 2 * minute,
            max(t_rise + 7 * minute, gen.t0 + 22 * minute),
            "levee water level rising fast",
        )


def dust_plume(gen: Scene, b: int, base: int, span: int) -> None:
    """Dust over the limit at the construction site (sensor.threshold)."""
    minute = 60_000
    dust = [s for s in gen.sensors if s[1] == "pm10" and s[5]]
    if dust and span >= 20 * minute:
        sid = dust[b % len(dust)][0]
        t_on = base + 12 * minute
        t_off = t_on + 6 * minute

        def plume(t: int) -> float:
            return 210.0 + 20.0 * math.sin(t / 60_000)

        gen.sensor_override.setdefault(sid, []).append((t_on, t_off, plume))
        gen.expect(
            "sensor.threshold",
            sid,
            zone_of_sensor(gen.ref, sid),
            t_on,
            t_on + 4 * minute,
            "PM10 above 150 for several readings",
        )


def people_on_airport_site(gen: Scene, b: int, base: int, span: int) -> None:
    """People on the airport site seen by a camera (video.intrusion)."""
    site = gen.world.by_kind.get("airport_site", [])
    minute = 60_000
    cams = [c for c in gen.cameras if c[4] and c[1] in site]
    if cams and span >= 20 * minute:
        cid, czone, lon, lat, _ = cams[b % len(cams)]
        t_on = base + 15 * minute
        for k in range(12):
            gen.video_injections.append(
                (
                    t_on + k * 20_000,
                    {
                        "type": "video",
                        "camera": cid,
                        "label": "person",
                        "confidence": round(0.8 + 0.015 * (k % 5), 3),
                        "snapshot": f"snap/{cid}/{k}.jpg",
                    },
                )
            )
        gen.expect("video.intrusion", cid, czone, t_on, t_on + 5_000, "people on the airport site")


def person_on_levee_at_night(gen: Scene, b: int, base: int, span: int) -> None:
    """Someone on the levee at night (video.intrusion, night-only rule)."""
    world = gen.world
    minute = 60_000
    levee_cams = [c for c in gen.cameras if c[4] and c[1] in world.by_kind.get("levee", [])]
    if levee_cams and span >= 30 * minute and is_night(base + 25 * minute):
        cid, czone, lon, lat, _ = levee_cams[b % len(levee_cams)]
        t_on = base + 25 * minute
        for k in range(6):
            gen.video_injections.append(
                (
                    t_on + k * 30_000,
                    {
                        "type": "video",
                        "camera": cid,
                        "label": "person",
                        "confidence": 0.9,
                        "snapshot": f"snap/{cid}/n{k}.jpg",
                    },
                )
            )
        gen.expect(
            "video.intrusion", cid, czone, t_on, t_on + 5_000, "a person on the levee at night"
        )


INJECTORS: list[Injector] = [
    muck_truck_on_airport_site,
    fishing_boat_in_no_fishing_reach,
    hazmat_roadside_stop,
    levee_water_rising,
    dust_plume,
    people_on_airport_site,
    person_on_levee_at_night,
    muck_truck_dwells_in_airport_protection,
    group_rental_dwelling,
    noise_level_shift,
    *TRACK_INJECTORS,
    *SENSOR_VIDEO_INJECTORS,
    corroborated_truth,  # keep last: it derives fusion.corroborated from the truth above
]
