"""Injected track incidents (see replay/incidents.py): gap, speeding, rendezvous, teleport.

Each injector adds its own vehicles to one 40-minute block and records the
alert it expects; the thresholds they aim at are the defaults in
``data/nantong/citywatch.toml``. Background traffic reports every 15-30 s at
up to 70 km/h and dwells only in allowed zones, so it triggers none of them.

Block timeline (minutes from the block start)::

    0    5    10   15   20   25   30   35   40
    |----|----|----|----|----|----|----|----|
    gap:        hz drives, silent [10 ... 18]  alert at last fix + 5 min
    speeding:        tk at 95 km/h [12 ... ]   alert ~1 min in
    rendezvous:    tk stops [8 ....... 20], muck truck 12 m away [9 ... 19.5]
                                alert at the truck's first still fix + 8 min
    teleport:           one fix 42 km off at 12  -> a dead letter, no alert
"""

from __future__ import annotations

from typing import Any

import numpy as np

from citywatch.geo.distance import haversine_m, offset_deg
from citywatch.replay.scene import Scene
from citywatch.replay.world import ALLOWED, Leg, Vehicle

MINUTE = 60_000
GAP_SILENCE_S = 300  # [track.gap.max_silence_s] hazmat_truck
SPEEDING_MIN_OVER_S = 60  # [track.speeding] min_over_s
TOGETHER_S = 480  # [track.rendezvous] min_together_s


def _depots(gen: Scene) -> list[str]:
    world = gen.world
    return world.by_kind.get("approved_stop", []) + world.by_kind.get("chemical_park", [])


def _depot_route(
    gen: Scene, cls: str, min_m: float, tries: int = 300
) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """Two depot points at least ``min_m`` apart joined by a path the class may drive."""
    depots, world, rng = _depots(gen), gen.world, gen.rng
    if len(depots) < 2:
        return None
    for _ in range(tries):
        a, b = world.zone_point(rng.choice(depots)), world.zone_point(rng.choice(depots))
        if haversine_m(*a, *b) >= min_m and world.path_ok(*a, *b, ALLOWED[cls]):
            return a, b
    return None


def _drive(t0: int, a: tuple[float, float], b: tuple[float, float], kmh: float) -> Leg:
    return Leg(t0, t0 + int(haversine_m(*a, *b) / (kmh / 3.6) * 1000) + 1000, *a, *b)


def _depot_trip(
    gen: Scene, cls: str, min_m: float, base: int, t_go: int, kmh: float
) -> list[Leg] | None:
    """Parked at one depot, at ``t_go`` off to another at ``kmh``, parked there."""
    route = _depot_route(gen, cls, min_m)
    if route is None:
        return None
    a, c = route
    drive = _drive(t_go, a, c, kmh)
    return [Leg(base, t_go, *a, *a), drive, Leg(drive.t1, gen.t_end + MINUTE, *c, *c)]


def hazmat_gps_gap(gen: Scene, b: int, base: int, span: int) -> None:
    """A hazmat truck's GPS goes silent for 8 minutes while it drives (track.gap)."""
    if span < 30 * MINUTE:
        return
    # It sets off 2 minutes before the silence and is still on the road (straight, at
    # a steady speed, 45 km/h or slower) a minute after it: the silence begins while
    # it drives, and it reappears where driving on would have brought it. (Setting
    # off at +5 min at 45 km/h, a short route had reached its depot before +10 min: a
    # parked truck is allowed parked_silence_s, and 8 silent minutes were rightly not
    # alerted; one that parked during the silence reappeared "off its track".)
    route = _depot_route(gen, "hazmat_truck", 2000.0)
    if route is None:
        return
    a, c = route
    t_go = base + 8 * MINUTE
    kmh = min(45.0, haversine_m(*a, *c) / (11 * MINUTE / 1000) * 3.6)
    drive = _drive(t_go, a, c, kmh)
    legs = [Leg(base, t_go, *a, *a), drive, Leg(drive.t1, gen.t_end + MINUTE, *c, *c)]
    period = 15_000
    v = Vehicle(f"hz-gap-{b + 1:03d}", "hazmat_truck", legs, period, base + 4_000, cargo="LPG")
    silent = (base + 10 * MINUTE, base + 18 * MINUTE)
    last = None
    last_at = (0.0, 0.0)
    t = v.next_ms
    # Scripted fixes (the generator emits any (ts, event) of this list in time order).
    while t < gen.t_end:
        if not silent[0] <= t < silent[1]:
            fix = _fix(gen, v, t)
            gen.video_injections.append((t, fix))
            if t < silent[0]:
                last, last_at = t, (fix["lon"], fix["lat"])
        t += period
    if last is None:
        return
    deadline = last + GAP_SILENCE_S * 1000
    # The alert carries the zone of the last fix: a short route may have reached its
    # depot (zone points keep ~40 m from the edge, so jitter cannot change it).
    zone = gen.ref.zones.zones_of(np.array([last_at[0]]), np.array([last_at[1]]))[0]
    gen.expect(
        "track.gap",
        v.id,
        zone[0] if zone else None,
        deadline,
        deadline,
        "hazmat truck GPS silent 8 minutes",
    )


def _fix(gen: Scene, v: Vehicle, t: int) -> dict[str, Any]:
    lon, lat, speed = v.position(t)
    jlon, jlat = offset_deg(lat, gen.rng.gauss(0, v.jitter_m), gen.rng.gauss(0, v.jitter_m))
    return {
        "type": "gps",
        "entity": v.id,
        "class": v.cls,
        "lon": round(lon + jlon, 6),
        "lat": round(lat + jlat, 6),
        "speed": round(max(0.0, speed + gen.rng.gauss(0, 1.0 if speed else 0.2)), 1),
        "cargo": v.cargo,
    }


def tanker_speeding(gen: Scene, b: int, base: int, span: int) -> None:
    """A tanker drives between depots at 95 km/h, over the 80 km/h limit (track.speeding)."""
    if span < 25 * MINUTE:
        return
    t_go = base + 12 * MINUTE
    legs = _depot_trip(gen, "tanker", 6000.0, base, t_go, 95.0)
    if legs is None:
        return
    period = 15_000
    first = base + 6_000
    v = Vehicle(f"tk-fast-{b + 1:03d}", "tanker", legs, period, first, cargo="diesel")
    gen.vehicles.append(v)
    # The first fix over the limit comes within one period of t_go; the alert with
    # the first fix at least min_over_s after it (and 3 fixes over).
    k = -(-(t_go - first) // period)
    first_over = first + k * period
    t_alert = first_over + SPEEDING_MIN_OVER_S * 1000
    gen.expect("track.speeding", v.id, None, t_alert, t_alert + period, "tanker at 95 km/h")


def tanker_meets_muck_truck(gen: Scene, b: int, base: int, span: int) -> None:
    """A tanker and a muck truck stand 12 m apart by the road for 10 minutes: mobile
    refuelling (track.rendezvous); too short for track.stop (15 minutes)."""
    if span < 30 * MINUTE or not _depots(gen):
        return
    world, rng = gen.world, gen.rng
    for _ in range(200):
        spot = world.free_point(())
        depot = world.zone_point(rng.choice(_depots(gen)))
        east = (round(spot[0] + 0.07, 6), spot[1])  # ~6.6 km: 8 minutes at 50 km/h
        west = (round(spot[0] - 0.03, 6), spot[1])
        dlon, _ = offset_deg(spot[1], 12.0, 0.0)
        near = (round(spot[0] + dlon, 6), spot[1])
        if (
            world.path_ok(*east, *spot, ALLOWED["tanker"])
            and world.path_ok(*spot, *depot, ALLOWED["tanker"])
            and world.path_ok(*west, *near, ALLOWED["muck_truck"])
        ):
            break
    else:
        return
    t_arrive = base + 8 * MINUTE
    leave = _drive(base + 20 * MINUTE, spot, depot, 50.0)
    tanker = Vehicle(
        f"tk-meet-{b + 1:03d}",
        "tanker",
        [
            Leg(base, t_arrive, *east, *spot),
            Leg(t_arrive, leave.t0, *spot, *spot),
            leave,
            Leg(leave.t1, gen.t_end + MINUTE, *depot, *depot),
        ],
        15_000,
        base + 2_000,
        cargo="diesel",
    )
    p_arrive = base + 9 * MINUTE
    come = Leg(p_arrive - 4 * MINUTE, p_arrive, *west, *near)
    go = Leg(base + 19 * MINUTE + 30_000, base + 23 * MINUTE + 30_000, *near, *west)
    truck = Vehicle(
        f"muck-meet-{b + 1:03d}",
        "muck_truck",
        [
            Leg(base, come.t0, *west, *west),
            come,
            Leg(p_arrive, go.t0, *near, *near),
            go,
            Leg(go.t1, gen.t_end + MINUTE, *west, *west),
        ],
        20_000,
        base + 9_000,
    )
    gen.vehicles += [tanker, truck]
    # The meeting starts with the truck's first fix at the spot (the later of the two).
    k = -(-(p_arrive - truck.next_ms) // truck.period_ms)
    t_meet = truck.next_ms + k * truck.period_ms
    t_alert = t_meet + TOGETHER_S * 1000
    gen.expect(
        "track.rendezvous", tanker.id, None, t_alert, t_alert + 1, "tanker meets a muck truck"
    )


def hazmat_teleport(gen: Scene, b: int, base: int, span: int) -> None:
    """One fix of a parked hazmat truck lands 42 km away: bad data for the dead letters,
    no alert (the truth counts one more dead letter)."""
    depots = _depots(gen)
    t_spike = base + 12 * MINUTE
    if not depots or span < 20 * MINUTE or t_spike >= gen.t_end:
        return
    spot = gen.world.zone_point(depots[b % len(depots)])
    period = 15_000
    vid = f"hz-jump-{b + 1:03d}"
    v = Vehicle(
        vid,
        "hazmat_truck",
        [Leg(base, gen.t_end + MINUTE, *spot, *spot)],
        period,
        base + 5_000,
        cargo="methanol",
    )
    # Exactly one fix falls in a window one period long.
    v.spikes.append((t_spike, t_spike + period, 0.45, 0.0))
    gen.vehicles.append(v)
    gen.clean_subjects.add(vid)
    gen.truth.dead_letters += 1


TRACK_INJECTORS = [hazmat_gps_gap, tanker_speeding, tanker_meets_muck_truck, hazmat_teleport]
