"""Zones: the vectorised index equals brute force; the loader names every bad feature."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.config import load_config
from geo.errors import ZoneFileError
from geo.zones import Zone, ZoneIndex, load_zones, zones_from_geojson

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
    assert ZoneIndex(zones).zones_of(np.array([121.25]), np.array([31.95])) == [("airport-site",)]


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
        "unclosed-ring",
        [feature("open", geometry={"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1]]]})],
        "zones: feature 0 ('open'): geometry cannot be read",
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
        zones_from_geojson(collection(*features), "zones", KINDS)
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
