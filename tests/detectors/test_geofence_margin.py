"""Border hysteresis in metres: a confirmed stay ends only on fixes more than
``exit_margin_m`` outside the zone (a vehicle parked near an edge under GPS noise)."""

from __future__ import annotations

import math
import random

import pytest
import shapely

from citywatch.detectors.alerts import Alert
from citywatch.detectors.base import ZoneMeta
from citywatch.detectors.events import GpsEvent
from citywatch.detectors.geofence import EnterRule, ExitRule, GeofenceDetector, OutsideRule
from citywatch.geo.distance import EARTH_RADIUS_M

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
LAT0 = 32.0
M_LAT = EARTH_RADIUS_M * math.pi / 180
M_LON = M_LAT * math.cos(math.radians(LAT0))
# A site 1 km x 1 km whose southern edge is at LAT0.
SITE = shapely.box(121.0, LAT0, 121.0 + 1000 / M_LON, LAT0 + 1000 / M_LAT)
CATALOG = {"ap": ZoneMeta("ap", "airport_site", geometry=SITE)}
MUCK = ("muck_truck",)


def fix(i: int, north_m: float, east_m: float = 500.0) -> GpsEvent:
    """The i-th fix (10 s apart) at ``north_m`` metres north of the site's southern
    edge, annotated with the zone the way the zone index does it."""
    lon, lat = 121.0 + east_m / M_LON, LAT0 + north_m / M_LAT
    zones = ("ap",) if SITE.intersects(shapely.Point(lon, lat)) else ()
    return GpsEvent(T0 + i * 10_000, "t1", lon, lat, "muck_truck", 0.0, zones=zones, id=f"f{i}")


def parked_on_border(seed: int, inside_m: float = 12.0, noise_m: float = 8.0) -> list[GpsEvent]:
    """A truck driving in, then parked ``inside_m`` inside the edge for four hours,
    its fixes jittered by ``noise_m`` per axis (harsher than the generator's ~6 m)."""
    rng = random.Random(seed)
    drive = [fix(i, 200.0 - 40 * i) for i in range(5)]  # 200 m in, then towards the edge
    parked = [
        fix(5 + i, inside_m + rng.gauss(0, noise_m), 500 + rng.gauss(0, noise_m))
        for i in range(1440)
    ]
    return drive + parked


def run(det: GeofenceDetector, events: list[GpsEvent]) -> list[tuple[int, Alert]]:
    fired: list[tuple[int, Alert]] = []
    for i, ev in enumerate(events):
        out: list[Alert] = []
        det.on_event(ev, out)
        fired.extend((i, a) for a in out)
    return fired


def enter_exit(**kw: float) -> GeofenceDetector:
    rules = {
        "enter": {"airport_site": EnterRule(classes=MUCK, **kw)},  # type: ignore[arg-type]
        "exit": {"airport_site": ExitRule(classes=MUCK, **kw)},  # type: ignore[arg-type]
    }
    return GeofenceDetector(rules, CATALOG)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_truck_parked_12_m_inside_the_edge_enters_once_with_the_default_margin(seed: int) -> None:
    events = parked_on_border(seed)
    outside = [i for i, ev in enumerate(events) if not ev.zones]
    runs = sum(1 for a, b in zip(outside, outside[1:], strict=False) if b == a + 1)
    assert runs > 0  # two fixes outside in a row happen: min_outside_fixes alone re-enters
    without = [a.kind for _, a in run(enter_exit(exit_margin_m=0.0), events)]
    assert without.count("geofence.enter") > 1 and "geofence.exit" in without
    fired = run(enter_exit(), events)
    assert [a.kind for _, a in fired] == ["geofence.enter"]


def test_leaving_beyond_the_margin_is_an_exit_from_the_first_fix_beyond_it() -> None:
    # fix     0    1    2    3    4    5     north of the edge, metres (10 s apart)
    # where   100  50   -5   -15  -30  -60   (only -30 and -60 are beyond 20 m)
    # alert                              ^ exit at fix 5, first_ts = fix 4 (first beyond 20 m)
    events = [fix(i, m) for i, m in enumerate([100, 50, -5, -15, -30, -60])]
    fired = run(enter_exit(), events)
    assert [(i, a.kind) for i, a in fired] == [(0, "geofence.enter"), (5, "geofence.exit")]
    assert fired[1][1].first_ts_ms == T0 + 40_000
    # without a margin the stay ends at the first two fixes outside
    fired = run(enter_exit(exit_margin_m=0.0), events)
    assert [(i, a.kind) for i, a in fired] == [(0, "geofence.enter"), (3, "geofence.exit")]


def test_entering_needs_a_fix_inside_not_within_the_margin() -> None:
    events = [fix(i, m) for i, m in enumerate([-60, -15, -5, -1, -10])]
    assert run(enter_exit(), events) == []


def test_outside_rule_ignores_fixes_within_the_margin() -> None:
    rules = {"outside": {"airport_site": OutsideRule(classes=MUCK)}}
    stay = [fix(i, m) for i, m in enumerate([100, 30, -8, -12, 5, -15, -10, 40])]
    assert run(GeofenceDetector(rules, CATALOG), stay) == []
    leave = [fix(i, m) for i, m in enumerate([100, 30, -8, -25, -40])]
    fired = run(GeofenceDetector(rules, CATALOG), leave)
    assert [(i, a.kind) for i, a in fired] == [(4, "geofence.outside")]


def test_a_zone_without_geometry_counts_every_fix_outside() -> None:
    bare = {"ap": ZoneMeta("ap", "airport_site")}
    rules = {"exit": {"airport_site": ExitRule(classes=MUCK)}}
    events = [fix(i, m) for i, m in enumerate([100, 50, -5, -6])]
    events = [GpsEvent(e.ts_ms, e.entity, e.lon, e.lat, e.cls, 0.0, zones=e.zones) for e in events]
    fired = run(GeofenceDetector(rules, bare), events)
    assert [(i, a.kind) for i, a in fired] == [(3, "geofence.exit")]


def test_negative_margin_is_rejected_naming_the_setting() -> None:
    with pytest.raises(ValueError, match='"exit_margin_m" must be >= 0 metres, got -1'):
        EnterRule(classes=MUCK, exit_margin_m=-1.0)
