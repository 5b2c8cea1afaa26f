"""Injected geofence incidents beyond ``geofence.enter`` (see replay/incidents.py).

``muck_truck_dwells_in_airport_protection``: a muck truck drives into the new
airport's protection zone from outside (west of the site, never touching it)
and stays parked there; the default ``[geofence.dwell.airport_protection]``
rule (10 minutes) must raise one ``geofence.dwell``.
"""

from __future__ import annotations

from citywatch.replay.scene import Scene
from citywatch.replay.world import Leg, Vehicle, approach

MINUTE = 60_000
DWELL_S = 600  # the default rule's dwell_s in data/nantong/citywatch.toml
REPORT_MS = 20_000


def muck_truck_dwells_in_airport_protection(gen: Scene, b: int, base: int, span: int) -> None:
    """A muck truck parks in the airport protection zone for over 10 minutes (geofence.dwell)."""
    world = gen.world
    ring = world.by_kind.get("airport_protection", [])
    site = world.by_kind.get("airport_site", [])
    if not ring or span < 25 * MINUTE:
        return
    zid = ring[0]
    geom = gen.ref.zones.by_id[zid].geometry
    site_minx = min((gen.ref.zones.by_id[s].geometry.bounds[0] for s in site), default=1e9)
    minx = geom.bounds[0]
    for _ in range(200):
        inside = world.zone_point(zid)
        # West of the site, so the straight way in from the west never touches it.
        if inside[0] < site_minx - 0.004:
            outside = (round(minx - 0.01, 6), inside[1])
            if world.path_ok(*outside, *inside, ("airport_protection",)):
                break
    else:
        return
    t_go = base + 3 * MINUTE
    legs = approach(outside, inside, t_go, geom, speed_kmh=25.0)
    t_enter = legs[1].t0
    legs.append(Leg(legs[-1].t1, gen.t_end + MINUTE, *inside, *inside))
    vid = f"muck-dwell-{b + 1:03d}"
    gen.vehicles.append(Vehicle(vid, "muck_truck", legs, REPORT_MS, base + 7_000))
    # The stay counts from the first fix inside (at most one report period after
    # the truck crosses the border); the alert comes with the first fix DWELL_S later.
    gen.expect(
        "geofence.dwell",
        vid,
        zid,
        t_enter + DWELL_S * 1000 - 10_000,
        t_enter + DWELL_S * 1000 + 2 * REPORT_MS + 10_000,
        "muck truck parked in the airport protection zone for 10 minutes",
    )
