"""Zones: GeoJSON loading, validation and a vectorised point-in-zone index.

The index answers for whole batches of points: an STRtree query on the points'
bounding boxes gives candidate (point, zone) pairs, then ``intersects_xy`` on
prepared zone geometries keeps the true ones. Boundary rule: a point exactly on
a zone's edge or vertex counts as inside (closed polygons), the conservative
choice for restricted areas.

>>> idx = ZoneIndex([Zone("z1", "Box", "levee", {}, shapely.box(0, 0, 1, 1))])
>>> idx.zones_of(np.array([0.5, 2.0]), np.array([0.5, 2.0]))
[('z1',), ()]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import shapely
from shapely.geometry.base import BaseGeometry

from geo.errors import ZoneFileError


@dataclass(slots=True)
class Zone:
    """One named area with a kind (``airport_site``, ``levee``, ...) and rule overrides."""

    id: str
    name: str
    kind: str
    rules: dict[str, Any]
    geometry: BaseGeometry = field(repr=False)


def read_geojson(path: str | Path) -> Any:
    try:
        return orjson.loads(Path(path).read_bytes())
    except FileNotFoundError:
        msg = f"{path}: file not found"
        raise ZoneFileError(msg, [f"{path}: file not found"]) from None
    except orjson.JSONDecodeError as exc:
        msg = f"{path}: not valid JSON ({exc})"
        raise ZoneFileError(msg, [msg]) from None


def features_of(doc: Any, source: str) -> list[Mapping[str, Any]]:
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        msg = f"{source}: expected a GeoJSON FeatureCollection"
        raise ZoneFileError(msg, [msg])
    feats = doc.get("features")
    if not isinstance(feats, list):
        msg = f"{source}: FeatureCollection has no 'features' list"
        raise ZoneFileError(msg, [msg])
    return feats


def geometry_of(feat: Any, where: str, problems: list[str]) -> BaseGeometry | None:
    """Shapely geometry of a Polygon/MultiPolygon feature, or None with problems noted."""
    if not isinstance(feat, dict):
        problems.append(f"{where}: expected a Feature object")
        return None
    geom = feat.get("geometry")
    if not isinstance(geom, dict) or geom.get("type") not in ("Polygon", "MultiPolygon"):
        got = geom.get("type") if isinstance(geom, dict) else geom
        problems.append(f"{where}: geometry must be a Polygon or MultiPolygon, got {got!r}")
        return None
    try:
        shape = shapely.from_geojson(orjson.dumps(geom))
    except shapely.errors.GEOSException as exc:
        problems.append(f"{where}: geometry cannot be read ({exc}); hint: check ring closure")
        return None
    if shape.is_empty:
        problems.append(f"{where}: geometry has no coordinates; hint: draw the polygon again")
        return None
    if not shape.is_valid:
        problems.append(
            f"{where}: invalid geometry: {shapely.is_valid_reason(shape)}; "
            "hint: fix self-intersections or use make_valid in a GIS tool"
        )
        return None
    return shape


def load_zones(path: str | Path, known_kinds: Sequence[str] | None = None) -> list[Zone]:
    """Read and validate a zones FeatureCollection; raises ZoneFileError listing every problem."""
    doc = read_geojson(path)
    return zones_from_geojson(doc, str(path), known_kinds)


def zones_from_geojson(
    doc: Any, source: str = "zones", known_kinds: Sequence[str] | None = None
) -> list[Zone]:
    problems: list[str] = []
    zones: list[Zone] = []
    seen: dict[str, int] = {}
    for i, feat in enumerate(features_of(doc, source)):
        props = feat.get("properties") if isinstance(feat, dict) else None
        props = props if isinstance(props, dict) else {}
        zid = props.get("id")
        where = f"{source}: feature {i}" + (f" ({zid!r})" if zid else "")
        if not isinstance(zid, str) or not zid:
            problems.append(f"{where}: property 'id' must be a non-empty string")
            continue
        if zid in seen:
            problems.append(f"{where}: duplicate id, first used by feature {seen[zid]}")
            continue
        seen[zid] = i
        kind = props.get("kind")
        if not isinstance(kind, str) or not kind:
            problems.append(f"{where}: property 'kind' must be a non-empty string")
            continue
        if known_kinds is not None and kind not in known_kinds:
            problems.append(
                f"{where}: unknown kind {kind!r}; expected one of {', '.join(sorted(known_kinds))}"
            )
            continue
        rules = props.get("rules") or {}
        if not isinstance(rules, dict):
            problems.append(f"{where}: property 'rules' must be an object")
            continue
        shape = geometry_of(feat, where, problems)
        if shape is None:
            continue
        zones.append(Zone(zid, str(props.get("name") or zid), kind, rules, shape))
    if problems:
        msg = f"{source}: {len(problems)} problem(s): " + problems[0]
        raise ZoneFileError(msg, problems)
    return zones


class ZoneIndex:
    """Batched point-in-zone queries over many zones.

    ``locate`` returns candidate-filtered (point, zone) pairs; ``zones_of`` turns
    them into a tuple of zone ids per point, ordered by zone order in the file.
    """

    def __init__(self, zones: Sequence[Zone]) -> None:
        self.zones = list(zones)
        self.ids = [z.id for z in self.zones]
        self.by_id = {z.id: z for z in self.zones}
        self._geoms = np.array([z.geometry for z in self.zones], dtype=object)
        shapely.prepare(self._geoms)
        self._tree = shapely.STRtree(self._geoms) if len(self.zones) else None

    def __len__(self) -> int:
        return len(self.zones)

    def locate(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pairs ``(point_index, zone_index)`` of every point inside every zone, by point."""
        lon = np.asarray(lon, dtype=float)
        lat = np.asarray(lat, dtype=float)
        if self._tree is None or lon.size == 0:
            empty = np.empty(0, dtype=np.intp)
            return empty, empty
        pts = shapely.points(lon, lat)
        pi, zi = self._tree.query(pts)
        if pi.size:
            keep = shapely.intersects_xy(self._geoms[zi], lon[pi], lat[pi])
            pi, zi = pi[keep], zi[keep]
        order = np.lexsort((zi, pi))
        return pi[order], zi[order]

    def zones_of(self, lon: np.ndarray, lat: np.ndarray) -> list[tuple[str, ...]]:
        """A tuple of zone ids for each point (empty where the point is in no zone)."""
        n = len(lon)
        out: list[tuple[str, ...]] = [()] * n
        pi, zi = self.locate(lon, lat)
        if pi.size == 0:
            return out
        ids = self.ids
        bounds = np.flatnonzero(np.diff(pi)) + 1
        starts = np.concatenate(([0], bounds))
        ends = np.concatenate((bounds, [pi.size]))
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
            out[int(pi[s])] = tuple(ids[z] for z in zi[s:e].tolist())
        return out
