"""Border hysteresis in metres: a confirmed stay ends only on fixes more than
``exit_margin_m`` outside the zone once a fix was that deep (a vehicle parked near
an edge under GPS noise)."""

from __future__ import annotations

import math
import random

import pytest
import shapely

from citywatch.detectors.alerts import Alert
from citywatch.detectors.base import ZoneMeta, keyed_v1
from citywatch.detectors.events import GpsEvent
from citywatch.detectors.geofence import (
    DwellRule,
    EnterRule,
    ExitRule,
    GeofenceDetector,
    OutsideRule,
)
from citywatch.detectors.state import Snapshot, decode, encode
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


def parked_on_border(seed: int, inside_m: float = 12.0, noise_m: float = 7.0) -> list[GpsEvent]:
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
    # where   100  50   -5   -8   -15  -60   (only -15 and -60 are beyond 10 m)
    # alert                              ^ exit at fix 5, first_ts = fix 4 (first beyond 10 m)
    events = [fix(i, m) for i, m in enumerate([100, 50, -5, -8, -15, -60])]
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
    stay = [fix(i, m) for i, m in enumerate([100, 30, -8, -6, 5, -9, -4, 40])]
    assert run(GeofenceDetector(rules, CATALOG), stay) == []
    leave = [fix(i, m) for i, m in enumerate([100, 30, -8, -15, -40])]
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


def test_jitter_into_a_neighbouring_zone_is_not_a_long_stay_there() -> None:
    # A protection strip south of the site, sharing its edge. The truck parked 12 m
    # It drove across the strip (deep in it) and parked 12 m inside the site: its fixes
    # more than 10 m from the strip end the strip's stay; later jitters into the strip
    # never get 10 m deep, so two fixes back in the site end them: no dwell there.
    strip = shapely.box(121.0, LAT0 - 300 / M_LAT, 121.0 + 1000 / M_LON, LAT0)
    catalog = {**CATALOG, "pz": ZoneMeta("pz", "airport_protection", geometry=strip)}
    rules = {
        "enter": {"airport_site": EnterRule(classes=MUCK)},
        "dwell": {"airport_protection": DwellRule(classes=MUCK, dwell_s=600)},
    }
    events = [
        GpsEvent(
            ev.ts_ms,
            ev.entity,
            ev.lon,
            ev.lat,
            ev.cls,
            0.0,
            zones=ev.zones or (("pz",) if strip.intersects(shapely.Point(ev.lon, ev.lat)) else ()),
        )
        for ev in [fix(i, -250.0 + 50 * i) for i in range(5)] + parked_on_border(4)[5:]
    ]
    assert sum(1 for ev in events if ev.zones == ("pz",)) > 20
    fired = run(GeofenceDetector(rules, catalog), events)
    assert [a.kind for _, a in fired] == ["geofence.enter"]


def test_state_of_version_1_restores_as_never_deep() -> None:
    det = enter_exit()
    events = parked_on_border(5)
    run(det, events[:100])
    snap = det.state()
    # a version-1 snapshot: the same records without the `deep` slot
    blob = encode(snap)
    old = decode(blob)
    old.data["_state"] = keyed_v1(old.data["_state"])
    for _, track in old.data["_state"].data["items"]:
        for st in track.states.values():
            del st.deep
    old = Snapshot(old.kind, 1, old.data)
    restored = GeofenceDetector.from_state(
        {"enter": {"airport_site": EnterRule(classes=MUCK)}}, CATALOG, state=decode(encode(old))
    )
    (_, track), *_ = keyed_v1(restored.state().data["_state"]).data["items"]
    st = next(iter(track.states.values()))
    assert st.deep is False and st.inside is True
    # never deep: the old stay ends on two fixes outside, even within the margin
    out: list[Alert] = []
    for i, m in enumerate([-5.0, -6.0, 100.0]):
        restored.on_event(fix(200 + i, m), out)
    assert [a.kind for a in out] == ["geofence.enter"]
