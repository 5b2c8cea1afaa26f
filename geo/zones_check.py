"""Figures of a zones file beyond its geometry, and its rule overrides read leniently.

``raw_rules`` lists each zone's ``rules`` overrides (for
:func:`citywatch.detectors.geofence_rules.check_rules`, which tries them the way
the detectors will apply them); ``summarise`` gives the counts by kind, areas and
bounds that ``citywatch zones check`` prints.

>>> import shapely
>>> from citywatch.geo.zones import Zone
>>> z = Zone("a", "A", "levee", {"dwell": {"dwell_s": -5}}, shapely.box(121, 32, 121.01, 32.01))
>>> summarise([z])["by_kind"]
{'levee': {'zones': 1, 'area_km2': 1.048}}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import shapely

from citywatch.geo.distance import EARTH_RADIUS_M
from citywatch.geo.zones import Zone

M_PER_DEG = EARTH_RADIUS_M * math.pi / 180


def raw_rules(doc: Any) -> list[tuple[str, str, Mapping[str, Any]]]:
    """(id, kind, rules) of the features of a zones document that have rule overrides,
    read leniently so rules are checked even when a geometry is broken."""
    feats = doc.get("features") if isinstance(doc, dict) else None
    out: list[tuple[str, str, Mapping[str, Any]]] = []
    for feat in feats if isinstance(feats, list) else []:
        props = feat.get("properties") if isinstance(feat, dict) else None
        if isinstance(props, dict) and isinstance(props.get("rules"), dict) and props["rules"]:
            out.append((str(props.get("id")), str(props.get("kind")), props["rules"]))
    return out


def area_km2(geom: Any) -> float:
    """Area of a lon/lat geometry in km², on a local equirectangular projection."""
    lat0 = (geom.bounds[1] + geom.bounds[3]) / 2
    scale = M_PER_DEG**2 * math.cos(math.radians(lat0))
    return float(geom.area) * scale / 1e6


def summarise(zones: Sequence[Zone]) -> dict[str, Any]:
    """Counts and areas by kind, overall bounds, and the zones with rule overrides."""
    by_kind: dict[str, dict[str, Any]] = {}
    for z in zones:
        entry = by_kind.setdefault(z.kind, {"zones": 0, "area_km2": 0.0})
        entry["zones"] += 1
        entry["area_km2"] += area_km2(z.geometry)
    for entry in by_kind.values():
        entry["area_km2"] = round(entry["area_km2"], 3)
    bounds = (
        [round(float(v), 6) for v in shapely.total_bounds(np.array([z.geometry for z in zones]))]
        if zones
        else None
    )
    return {
        "zones": len(zones),
        "by_kind": dict(sorted(by_kind.items())),
        "bounds": bounds,
        "with_rules": sorted(z.id for z in zones if z.rules),
    }
