"""Zones: the vectorised index equals brute force; the loader names every bad feature."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import shapely
import shapely.affinity
from hypothesis import given, settings
from hypothesis import strategies as st

from citywatch.flows.config import load_config
from citywatch.geo.errors import ZoneFileError
from citywatch.geo.zones import M_PER_DEG, Zone, ZoneIndex, load_zones, zones_from_geojson

# Test zones (x = lon, y = lat, small numbers for readability; file order as listed):
#   box    square 0..4 x 0..4
#   holey  square 2..8 x 2..8 with a square hole 4..6 x 4..6 (overlaps box on 2..4 x 2..4)
#   multi  two parts: 10..12 x 0..2 and 13..14 x 0..1
#   tri    triangle (9,5) (14,5) (9,10), hypotenuse x + y = 19
ZONES = [
    Zone("box", "Box", "levee", {}, shapely.box(0, 0, 4, 4)),
    Zone(
        "holey",
        "Ring",
        "airport_protection",
        {},
        shapely.Polygon(
            shapely.box(2, 2, 8, 8).exterior.coords, [shapely.box(4, 4, 6, 6).exterior.coords]
        ),
    ),
    Zone(
        "multi",
        "Two reaches",
        "no_fishing",
        {},
        shapely.MultiPolygon([shapely.box(10, 0, 12, 2), shapely.box(13, 0, 14, 1)]),
    ),
    Zone("tri", "Triangle", "residential", {}, shapely.Polygon([(9, 5), (14, 5), (9, 10)])),
]
VERTEX_COORDS = sorted({0.0, 1.0, 2.0, 4.0, 5.0, 6.0, 8.0, 9.0, 10.0, 12.0, 13.0, 14.0})


def brute_force(zones: list[Zone], xs: np.ndarray, ys: np.ndarray) -> list[tuple[str, ...]]:
    """The answer by testing each point against each zone, in file order."""
    return [
        tuple(z.id for z in zones if shapely.intersects_xy(z.geometry, float(x), float(y)))
        for x, y in zip(xs.tolist(), ys.tolist(), strict=True)
    ]


def assert_index_matches_brute_force(zones: list[Zone], xs: list[float], ys: list[float]) -> None:
    lon, lat = np.array(xs, dtype=float), np.array(ys, dtype=float)
    assert ZoneIndex(zones).zones_of(lon, lat) == brute_force(zones, lon, lat)


coord = st.one_of(
    st.floats(-1, 15, allow_nan=False, allow_infinity=False),
    st.sampled_from(VERTEX_COORDS),  # lands on vertices and on axis-parallel edges
)


@settings(max_examples=150, deadline=1000)
@given(st.lists(st.tuples(coord, coord), min_size=1, max_size=40))
def test_zones_of_equals_brute_force_on_random_points(points: list[tuple[float, float]]) -> None:
    xs, ys = zip(*points, strict=True)
    assert_index_matches_brute_force(ZONES, list(xs), list(ys))


@settings(max_examples=100, deadline=1000)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=20))
def test_zones_of_equals_brute_force_on_the_diagonal_edge(ts: list[float]) -> None:
    # points on (or a rounding error off) the triangle's hypotenuse x + y = 19
    xs = [9 + 5 * t for t in ts]
    assert_index_matches_brute_force(ZONES, xs, [19 - x for x in xs])


boxes = st.tuples(
    st.floats(-10, 10), st.floats(-10, 10), st.floats(0.001, 5), st.floats(0.001, 5)
).map(lambda b: shapely.box(b[0], b[1], b[0] + b[2], b[1] + b[3]))


@settings(max_examples=60, deadline=2000)
@given(
    st.lists(boxes, min_size=0, max_size=8),
    st.lists(st.tuples(st.floats(-12, 16), st.floats(-12, 16)), min_size=0, max_size=30),
)
def test_zones_of_equals_brute_force_on_random_overlapping_boxes(
    geoms: list[Any], points: list[tuple[float, float]]
) -> None:
    zones = [Zone(f"z{i}", "", "k", {}, g) for i, g in enumerate(geoms)]
    corners = [c for g in geoms for c in g.exterior.coords]
    pts = points + corners
    assert_index_matches_brute_force(zones, [p[0] for p in pts], [p[1] for p in pts])


@pytest.mark.parametrize(
    ("x", "y", "expected"),
    [
        (0, 0, ("box",)),  # vertex
        (4, 1, ("box",)),  # edge
        (4, 4, ("box", "holey")),  # vertex of box on the hole's corner
        (5, 4, ("holey",)),  # hole edge belongs to the polygon
        (5, 5, ()),  # inside the hole
        (8, 8, ("holey",)),  # outer vertex
        (12, 1, ("multi",)),  # edge of the first part
        (14, 0, ("multi",)),  # vertex of the second part
        (12.5, 1, ()),  # between the parts
        (11.5, 7.5, ("tri",)),  # on the hypotenuse, exactly representable
        (9, 10, ("tri",)),  # apex
    ],
    ids=[
        "box-vertex",
        "box-edge",
        "shared-corner",
        "hole-edge",
        "in-hole",
        "outer-vertex",
        "multi-edge",
        "multi-vertex",
        "between-parts",
        "hypotenuse",
        "apex",
    ],
)
def test_point_on_edge_or_vertex_counts_as_inside(x: float, y: float, expected: tuple) -> None:
    idx = ZoneIndex(ZONES)
    assert idx.zones_of(np.array([x], float), np.array([y], float)) == [expected]


def test_zones_of_keeps_batch_order_and_file_order() -> None:
    idx = ZoneIndex(ZONES)
    xs = np.array([11, 3, 100, 1, 3])
    ys = np.array([1, 3, 100, 1, 3])
    assert idx.zones_of(xs, ys) == [("multi",), ("box", "holey"), (), ("box",), ("box", "holey")]
    pi, zi = idx.locate(xs, ys)
    assert pi.tolist() == [0, 1, 1, 3, 4, 4]
    assert zi.tolist() == [2, 0, 1, 0, 0, 1]


def test_empty_index_and_empty_batch() -> None:
    assert ZoneIndex([]).zones_of(np.array([1.0]), np.array([1.0])) == [()]
    assert len(ZoneIndex([])) == 0
    assert ZoneIndex(ZONES).zones_of(np.array([]), np.array([])) == []


def test_bundled_zones_match_brute_force_and_do_not_overlap() -> None:
    cfg = load_config(env={})
    zones = load_zones(cfg.data.zones, cfg.zone_kinds)
    rng = np.random.default_rng(7)
    lon = np.concatenate(
        [rng.uniform(120.3, 121.9, 3000), [z.geometry.representative_point().x for z in zones]]
    )
    lat = np.concatenate(
        [rng.uniform(31.7, 32.7, 3000), [z.geometry.representative_point().y for z in zones]]
    )
    found = ZoneIndex(zones).zones_of(lon, lat)
    assert found == brute_force(zones, lon, lat)
    assert found[-len(zones) :] == [(z.id,) for z in zones]
    # the airport site centre is in the site, not in the protection ring around it
    assert ZoneIndex(zones).zones_of(np.array([121.245]), np.array([32.04])) == [("airport-site",)]


# -- loader errors -------------------------------------------------------------


def square(x: float = 0.0) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [[[x, 0], [x + 1, 0], [x + 1, 1], [x, 1], [x, 0]]]}


def feature(zid: Any = "z", kind: Any = "levee", geometry: Any = None, **props: Any) -> dict:
    properties = {"id": zid, "name": "Z", "kind": kind, **props}
    if zid is None:
        del properties["id"]
    return {
        "type": "Feature",
        "properties": properties,
        "geometry": square() if geometry is None else geometry,
    }


def collection(*features: Any) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": list(features)}


BOWTIE = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
OPEN_RING = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}
OPEN_HOLE = {
    "type": "Polygon",
    "coordinates": [
        [[0, 0], [4, 0], [4, 4], [0, 4], [0, 0]],
        [[1, 1], [1, 2], [2, 2], [2, 1]],
    ],
}
SWAPPED = {
    "type": "Polygon",
    "coordinates": [[[32.0, 121.0], [32.0, 121.01], [32.01, 121.01], [32.0, 121.0]]],
}
BOUNDS = (-1.0, -1.0, 50.0, 50.0)
KINDS = ("levee", "airport_site")

LOAD_ERRORS = [
    (
        "duplicate-id",
        [feature("a"), feature("a", geometry=square(5))],
        "zones: feature 1 ('a'): duplicate id, first used by feature 0",
    ),
    (
        "unknown-kind",
        [feature("a"), feature("b", kind="volcano")],
        "zones: feature 1 ('b'): unknown kind 'volcano'; expected one of airport_site, levee",
    ),
    (
        "missing-kind",
        [feature("a", kind=None)],
        "zones: feature 0 ('a'): property 'kind' must be a non-empty string",
    ),
    (
        "self-intersecting-ring",
        [feature("a"), feature("bow", geometry=BOWTIE)],
        "zones: feature 1 ('bow'): invalid geometry: Self-intersection",
    ),
    (
        "point-geometry",
        [feature("pt", geometry={"type": "Point", "coordinates": [0, 0]})],
        "zones: feature 0 ('pt'): geometry must be a Polygon or MultiPolygon, got 'Point'",
    ),
    (
        "line-geometry",
        [
            feature("a"),
            feature("ln", geometry={"type": "LineString", "coordinates": [[0, 0], [1, 1]]}),
        ],
        "zones: feature 1 ('ln'): geometry must be a Polygon or MultiPolygon, got 'LineString'",
    ),
    (
        "no-geometry",
        [{"type": "Feature", "properties": {"id": "g", "kind": "levee"}}],
        "zones: feature 0 ('g'): geometry must be a Polygon or MultiPolygon, got None",
    ),
    (
        "too-few-positions",
        [feature("open", geometry={"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1]]]})],
        "zones: feature 0 ('open'): polygon 0 ring 0 has 3 position(s); a closed ring needs at "
        "least 4 (3 corners and the first again)",
    ),
    (
        "unclosed-ring",
        [feature("open", geometry=OPEN_RING)],
        "zones: feature 0 ('open'): polygon 0 ring 0 is not closed: first position [0, 0], "
        "last [0, 1]; hint: repeat the first position at the end",
    ),
    (
        "unclosed-hole",
        [feature("a"), feature("h", geometry=OPEN_HOLE)],
        "zones: feature 1 ('h'): polygon 0 ring 1 is not closed",
    ),
    (
        "self-intersection-point",
        [feature("bow", geometry=BOWTIE)],
        "zones: feature 0 ('bow'): invalid geometry: Self-intersection[0.5 0.5]; hint: fix "
        "self-intersections or use make_valid in a GIS tool",
    ),
    (
        "lat-lon-swapped",
        [feature("sw", geometry=SWAPPED)],
        "zones: feature 0 ('sw'): coordinates look like lat/lon swapped: position [32.0, 121.0] "
        "has latitude 121.0 > 90; GeoJSON positions are [lon, lat]",
    ),
    (
        "outside-city-bounds",
        [feature("a"), feature("far", geometry=square(100))],
        "zones: feature 1 ('far'): lies outside the city bounds [-1, -1, 50, 50] (its bounds: "
        "[100.000000, 0.000000, 101.000000, 1.000000]); hint: coordinates must be WGS84 "
        "[lon, lat] degrees, or widen [zones] bounds",
    ),
    (
        "text-coordinate",
        [
            feature(
                "t",
                geometry={"type": "Polygon", "coordinates": [[[0, 0], [1, "0"], [1, 1], [0, 0]]]},
            )
        ],
        "zones: feature 0 ('t'): polygon 0 ring 0: every position must be [lon, lat] numbers",
    ),
    (
        "multipolygon-part-without-rings",
        [feature("m", geometry={"type": "MultiPolygon", "coordinates": [[]]})],
        "zones: feature 0 ('m'): polygon 0 has no rings",
    ),
    (
        "missing-id",
        [feature("a"), feature("b", geometry=square(3)), feature(None)],
        "zones: feature 2: property 'id' must be a non-empty string",
    ),
    ("empty-id", [feature("")], "zones: feature 0: property 'id' must be a non-empty string"),
    ("numeric-id", [feature(7)], "zones: feature 0 (7): property 'id' must be a non-empty string"),
    (
        "rules-not-object",
        [feature("a", rules=[1])],
        "zones: feature 0 ('a'): property 'rules' must be an object",
    ),
    ("feature-not-object", ["oops"], "zones: feature 0: property 'id' must be a non-empty string"),
]


@pytest.mark.parametrize(
    ("features", "problem"), [e[1:] for e in LOAD_ERRORS], ids=[e[0] for e in LOAD_ERRORS]
)
def test_load_errors_name_the_feature_index(features: list[Any], problem: str) -> None:
    with pytest.raises(ZoneFileError) as info:
        zones_from_geojson(collection(*features), "zones", KINDS, BOUNDS)
    assert problem in info.value.problems[0]
    assert str(info.value).startswith("zones: ")
    assert problem in str(info.value)


def test_every_problem_is_listed_not_just_the_first() -> None:
    features = [
        feature("a"),
        feature("a"),
        feature("b", kind="volcano"),
        feature("c", geometry=BOWTIE),
        feature(None),
    ]
    with pytest.raises(ZoneFileError, match=r"^zones: 4 problem\(s\): ") as info:
        zones_from_geojson(collection(*features), "zones", KINDS)
    assert [p.split(":")[1].strip() for p in info.value.problems] == [
        "feature 1 ('a')",
        "feature 2 ('b')",
        "feature 3 ('c')",
        "feature 4",
    ]


def test_without_known_kinds_any_kind_is_accepted() -> None:
    zones = zones_from_geojson(collection(feature("a", kind="volcano")))
    assert [(z.id, z.kind, z.name) for z in zones] == [("a", "volcano", "Z")]


def test_rules_and_name_are_kept() -> None:
    doc = collection(feature("a", rules={"enter": {"classes": ["tanker"]}}, name=None))
    (zone,) = zones_from_geojson(doc)
    assert zone.rules == {"enter": {"classes": ["tanker"]}}
    assert zone.name == "a"  # no name: the id stands in


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"type": "Feature"}', "expected a GeoJSON FeatureCollection"),
        (b'{"type": "FeatureCollection"}', "FeatureCollection has no 'features' list"),
        (b"{nope", "not valid JSON"),
    ],
    ids=["not-a-collection", "no-features", "bad-json"],
)
def test_load_zones_file_errors_name_the_file(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "zones.geojson"
    path.write_bytes(content)
    with pytest.raises(ZoneFileError, match=message) as info:
        load_zones(path)
    assert str(path) in str(info.value)


def test_load_zones_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ZoneFileError, match="file not found"):
        load_zones(tmp_path / "nope.geojson")


def test_load_zones_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "zones.geojson"
    path.write_bytes(orjson.dumps(collection(feature("a"), feature("b", geometry=square(2)))))
    zones = load_zones(path, KINDS)
    assert [z.id for z in zones] == ["a", "b"]
    assert isinstance(ZoneFileError("x", []), ValueError)


# -- random polygons with holes and multipolygons ------------------------------


@st.composite
def holed_polygons(draw: st.DrawFn) -> Any:
    """A star-shaped polygon, optionally with a hole, or a multipolygon of two such."""

    def star(cx: float, cy: float, r: float) -> Any:
        k = draw(st.integers(4, 9))
        angles = sorted(draw(st.lists(st.floats(0, 6.28), min_size=k, max_size=k, unique=True)))
        radii = draw(st.lists(st.floats(0.4, 1.0), min_size=k, max_size=k))
        pts = [
            (cx + r * f * np.cos(a), cy + r * f * np.sin(a))
            for a, f in zip(angles, radii, strict=True)
        ]
        return shapely.Polygon([(round(x, 3), round(y, 3)) for x, y in pts])

    cx, cy = draw(st.floats(-5, 5)), draw(st.floats(-5, 5))
    outer = star(cx, cy, draw(st.floats(1, 4)))
    if draw(st.booleans()):
        hole = shapely.box(cx - 0.2, cy - 0.2, cx + 0.2, cy + 0.2)
        if outer.is_valid and outer.contains(hole.buffer(0.01)):
            outer = shapely.Polygon(outer.exterior.coords, [hole.exterior.coords])
    if draw(st.booleans()):
        other = star(cx + 10, cy, 1.0)
        if other.is_valid and outer.is_valid:
            outer = shapely.MultiPolygon([outer, other])
    return outer


@settings(max_examples=80, deadline=2000)
@given(
    st.lists(holed_polygons(), min_size=1, max_size=6),
    st.lists(st.tuples(st.floats(-10, 20), st.floats(-10, 10)), max_size=40),
)
def test_index_equals_brute_force_with_holes_multipolygons_edges_and_vertices(
    geoms: list[Any], points: list[tuple[float, float]]
) -> None:
    zones = [Zone(f"z{i}", "", "k", {}, g) for i, g in enumerate(geoms) if g.is_valid]
    # every vertex (outer rings and holes) and every edge midpoint is probed too
    coords = shapely.get_coordinates(shapely.boundary(np.array([z.geometry for z in zones])))
    mids = (coords[:-1] + coords[1:]) / 2 if len(coords) > 1 else coords
    pts = np.concatenate([np.array(points).reshape(-1, 2), coords, mids])
    assert_index_matches_brute_force(zones, pts[:, 0].tolist(), pts[:, 1].tolist())


def test_a_vertex_on_a_cell_border_that_floor_division_puts_one_cell_lower() -> None:
    # Found by the property test above: the zone's east vertex x = 0.827 is
    # (0.827 + 0.398) // cell = 9 but floor((0.827 + 0.398) / cell) = 10 with this grid's
    # cell (0.1225); the zone's cells were once listed with ``//``, so the vertex's
    # cell did not hold the zone and the vertex came out in no zone.
    zone = Zone(
        "z",
        "",
        "k",
        {},
        shapely.Polygon([(0.827, 0), (0.525, 0), (-0.398, -0.784), (0.149, -0.503)]),
    )
    xs, ys = [0.827, 0.525, -0.398, 0.149, 0.676], [0.0, 0.0, -0.784, -0.503, 0.0]
    assert_index_matches_brute_force([zone], xs, ys)
    assert ZoneIndex([zone]).zones_of(np.array([0.827]), np.array([0.0])) == [("z",)]


@settings(max_examples=60, deadline=2000)
@given(st.lists(holed_polygons(), min_size=1, max_size=4))
def test_boundary_rule_every_vertex_is_inside_its_zone(geoms: list[Any]) -> None:
    # The boundary rule: a point on a zone's edge or vertex (outer ring or hole) is inside.
    zones = [Zone(f"z{i}", "", "k", {}, g) for i, g in enumerate(geoms) if g.is_valid]
    idx = ZoneIndex(zones)
    for z in zones:
        xy = shapely.get_coordinates(z.geometry.boundary)
        found = idx.zones_of(xy[:, 0], xy[:, 1])
        assert all(z.id in f for f in found)


@settings(max_examples=60, deadline=2000)
@given(
    st.lists(boxes, min_size=1, max_size=6),
    st.lists(st.tuples(st.floats(-0.2, 0.2), st.floats(-0.2, 0.2)), min_size=1, max_size=20),
    st.floats(10, 5000),
)
def test_near_equals_brute_force_distances_in_metres(
    geoms: list[Any], offsets: list[tuple[float, float]], radius_m: float
) -> None:
    # boxes shrunk to city size around Nantong; brute force: each zone on its own
    city = [shapely.affinity.affine_transform(g, [0.01, 0, 0, 0.01, 121.0, 32.0]) for g in geoms]
    zones = [Zone(f"z{i}", "", "k", {}, g) for i, g in enumerate(city)]
    lon = np.array([121.0 + dx for dx, _ in offsets])
    lat = np.array([32.0 + dy for _, dy in offsets])
    idx = ZoneIndex(zones)
    lon0, lat0, _, _ = idx._metric_index()
    kx, ky = M_PER_DEG * np.cos(np.radians(lat0)), M_PER_DEG
    expected = []
    for p in range(lon.size):
        pt = shapely.Point((lon[p] - lon0) * kx, (lat[p] - lat0) * ky)
        for zi, z in enumerate(zones):
            metric = shapely.transform(z.geometry, lambda c: (c - [lon0, lat0]) * [kx, ky])
            d = shapely.distance(metric, pt)
            if d <= radius_m:
                expected.append((p, zi, round(float(d), 3)))
    pi, zi, dist = idx.near(lon, lat, radius_m)
    got = [
        (p, z, round(d, 3)) for p, z, d in zip(pi.tolist(), zi.tolist(), dist.tolist(), strict=True)
    ]
    assert got == expected


def test_near_distances_agree_with_haversine_within_half_a_percent() -> None:
    from citywatch.geo.distance import haversine_m

    idx = ZoneIndex([Zone("z", "", "k", {}, shapely.box(120.9, 31.9, 121.0, 32.0))])
    lon = np.array([121.0 + 0.005, 121.0 + 0.02, 120.95, 120.95])
    lat = np.array([31.95, 31.95, 32.0 + 0.01, 31.95])
    pi, _, dist = idx.near(lon, lat, 5000)
    truth = [
        haversine_m(121.0, 31.95, lon[0], 31.95),
        haversine_m(121.0, 31.95, lon[1], 31.95),
        haversine_m(120.95, 32.0, 120.95, lat[2]),
        0.0,
    ]
    assert pi.tolist() == [0, 1, 2, 3]
    assert dist[3] == 0.0
    assert np.allclose(dist[:3], truth[:3], rtol=0.005)
