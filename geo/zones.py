"""Zones: GeoJSON loading, validation and a vectorised point-in-zone index.

The index answers for whole batches of points: a uniform grid over the zones
gives each point's candidate zones with numpy arithmetic alone (cells wholly
inside a zone need no further test), then ``intersects_xy`` on prepared zone
geometries settles the points in cells a border crosses. An STRtree does the
same where a grid does not fit (a few huge overlapping zones) and serves
``near`` (distances in metres). Boundary rule: a point exactly on
a zone's edge or vertex counts as inside (closed polygons), the conservative
choice for restricted areas.

>>> idx = ZoneIndex([Zone("z1", "Box", "levee", {}, shapely.box(0, 0, 1, 1))])
>>> idx.zones_of(np.array([0.5, 2.0]), np.array([0.5, 2.0]))
[('z1',), ()]
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import shapely
from shapely.geometry.base import BaseGeometry

from citywatch.geo.distance import EARTH_RADIUS_M
from citywatch.geo.errors import ZoneFileError

M_PER_DEG = EARTH_RADIUS_M * math.pi / 180


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


def identified_features(
    doc: Any, source: str, problems: list[str]
) -> Iterator[tuple[Mapping[str, Any], Mapping[str, Any], str, str]]:
    """(feature, properties, id, where) of each feature of a FeatureCollection whose
    ``id`` property is a non-empty string not used before; the others are noted in
    ``problems`` (``where`` names the feature for messages: source, index and id)."""
    seen: dict[str, int] = {}
    for i, feat in enumerate(features_of(doc, source)):
        props = feat.get("properties") if isinstance(feat, dict) else None
        props = props if isinstance(props, dict) else {}
        fid = props.get("id")
        where = f"{source}: feature {i}" + (f" ({fid!r})" if fid else "")
        if not isinstance(fid, str) or not fid:
            problems.append(f"{where}: property 'id' must be a non-empty string")
            continue
        if fid in seen:
            problems.append(f"{where}: duplicate id, first used by feature {seen[fid]}")
            continue
        seen[fid] = i
        yield feat, props, fid, where


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
    ring_problems = _ring_problems(geom)
    if ring_problems:
        problems.extend(f"{where}: {p}" for p in ring_problems)
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


def _ring_problems(geom: Mapping[str, Any]) -> list[str]:
    """Ring structure and coordinate problems of a GeoJSON Polygon/MultiPolygon, in words.

    >>> _ring_problems({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]})
    ['polygon 0 ring 0 is not closed: first position [0, 0], last [0, 1]; hint: repeat the \
first position at the end']
    >>> _ring_problems({"type": "Polygon", "coordinates": [[[32, 121], [32, 122], [33, 121], \
[32, 121]]]})[0][:68]
    'coordinates look like lat/lon swapped: position [32, 121] has latitu'
    """
    coords = geom.get("coordinates")
    polys = [coords] if geom.get("type") == "Polygon" else coords
    if not isinstance(polys, list):
        return ["'coordinates' must be a list of rings"]
    out: list[str] = []
    for pi, rings in enumerate(polys):
        if not isinstance(rings, list) or not rings:
            out.append(f"polygon {pi} has no rings")
            continue
        for ri, ring in enumerate(rings):
            name = f"polygon {pi} ring {ri}"
            ok = isinstance(ring, list) and all(
                isinstance(p, list)
                and len(p) in (2, 3)
                and all(isinstance(c, int | float) and math.isfinite(c) for c in p)
                for p in ring
            )
            if not ok:
                out.append(f"{name}: every position must be [lon, lat] numbers")
                continue
            if len(ring) < 4:
                out.append(
                    f"{name} has {len(ring)} position(s); a closed ring needs at least 4 "
                    "(3 corners and the first again)"
                )
                continue
            if ring[0][:2] != ring[-1][:2]:
                out.append(
                    f"{name} is not closed: first position {ring[0]}, last {ring[-1]}; "
                    "hint: repeat the first position at the end"
                )
                continue
            bad = next((p for p in ring if abs(p[1]) > 90 or abs(p[0]) > 180), None)
            if bad is not None:
                if abs(bad[1]) > 90 and abs(bad[0]) <= 90:
                    out.append(
                        f"coordinates look like lat/lon swapped: position {bad} has latitude "
                        f"{bad[1]} > 90; GeoJSON positions are [lon, lat]"
                    )
                else:
                    out.append(f"{name}: position {bad} is outside [-180, 180] x [-90, 90]")
                break
    return out


Bounds = tuple[float, float, float, float]  # min lon, min lat, max lon, max lat


def load_zones(
    path: str | Path, known_kinds: Sequence[str] | None = None, bounds: Bounds | None = None
) -> list[Zone]:
    """Read and validate a zones FeatureCollection; raises ZoneFileError listing every problem.

    ``bounds`` (the city's extent), when given, rejects zones reaching outside it.
    """
    doc = read_geojson(path)
    return zones_from_geojson(doc, str(path), known_kinds, bounds)


def zones_from_geojson(
    doc: Any,
    source: str = "zones",
    known_kinds: Sequence[str] | None = None,
    bounds: Bounds | None = None,
) -> list[Zone]:
    problems: list[str] = []
    zones: list[Zone] = []
    for feat, props, zid, where in identified_features(doc, source, problems):
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
        if bounds is not None and not _within(shape.bounds, bounds):
            got = ", ".join(f"{v:.6f}" for v in shape.bounds)
            want = ", ".join(f"{v:g}" for v in bounds)
            problems.append(
                f"{where}: lies outside the city bounds [{want}] (its bounds: [{got}]); "
                "hint: coordinates must be WGS84 [lon, lat] degrees, or widen [zones] bounds"
            )
            continue
        zones.append(Zone(zid, str(props.get("name") or zid), kind, rules, shape))
    if problems:
        msg = f"{source}: {len(problems)} problem(s): " + problems[0]
        raise ZoneFileError(msg, problems)
    return zones


class _Grid:
    """A uniform grid over the zones' extent: for each cell, the zones touching it and
    whether the cell lies wholly inside each (then its points need no geometry test).

    A point's cell is two numpy divisions away, so points in empty cells (most of a
    city) cost no shapely call at all, and the cost per point hardly grows with the
    number of zones. Cells are tested slightly enlarged, so a point that rounding
    puts in a neighbouring cell is still answered right.
    """

    MAX_CELLS = 1 << 20
    CELLS_PER_ZONE = 16
    MAX_PAIRS = 4_000_000

    def __init__(
        self,
        origin: tuple[float, float],
        cell: float,
        shape: tuple[int, int],
        ptr: np.ndarray,
        zone: np.ndarray,
        full: np.ndarray,
    ) -> None:
        self.x0, self.y0 = origin
        self.cell = cell
        self.nx, self.ny = shape
        self.ptr, self.zone, self.full = ptr, zone, full

    @classmethod
    def build(cls, geoms: np.ndarray) -> _Grid | None:
        minx, miny, maxx, maxy = (float(v) for v in shapely.total_bounds(geoms))
        w, h = maxx - minx, maxy - miny
        if not (w > 0 and h > 0):
            return None
        target = min(cls.MAX_CELLS, max(64, cls.CELLS_PER_ZONE * len(geoms)))
        cell = math.sqrt(w * h / target)
        nx, ny = int(w / cell) + 1, int(h / cell) + 1
        b = shapely.bounds(geoms)
        # A zone's cells by the very expression ``locate`` puts a point in its cell
        # (floor of the division, not ``//``: the two differ on some cell borders), so
        # every point within a zone's bounds lands in one of that zone's cells (both
        # are monotone in the coordinate).
        ix0 = np.clip(np.floor((b[:, 0] - minx) / cell).astype(np.int64), 0, nx - 1)
        ix1 = np.clip(np.floor((b[:, 2] - minx) / cell).astype(np.int64), 0, nx - 1)
        iy0 = np.clip(np.floor((b[:, 1] - miny) / cell).astype(np.int64), 0, ny - 1)
        iy1 = np.clip(np.floor((b[:, 3] - miny) / cell).astype(np.int64), 0, ny - 1)
        wz = ix1 - ix0 + 1
        counts = wz * (iy1 - iy0 + 1)
        total = int(counts.sum())
        if total > cls.MAX_PAIRS:
            return None  # huge overlapping zones: the STRtree path does better
        z = np.repeat(np.arange(len(geoms)), counts)
        k = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        cx = ix0[z] + k % wz[z]
        cy = iy0[z] + k // wz[z]
        eps = cell * 1e-6
        boxes = shapely.box(
            minx + cx * cell - eps,
            miny + cy * cell - eps,
            minx + (cx + 1) * cell + eps,
            miny + (cy + 1) * cell + eps,
        )
        touch = shapely.intersects(geoms[z], boxes)
        z, cx, cy, boxes = z[touch], cx[touch], cy[touch], boxes[touch]
        full = shapely.contains(geoms[z], boxes)
        cid = cy * nx + cx
        order = np.lexsort((z, cid))
        ptr = np.zeros(nx * ny + 1, dtype=np.int64)
        np.cumsum(np.bincount(cid, minlength=nx * ny), out=ptr[1:])
        return cls((minx, miny), cell, (nx, ny), ptr, z[order], full[order])

    def locate(
        self, geoms: np.ndarray, lon: np.ndarray, lat: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        with np.errstate(invalid="ignore"):
            fx = np.floor((lon - self.x0) / self.cell)
            fy = np.floor((lat - self.y0) / self.cell)
            ok = (fx >= 0) & (fx < self.nx) & (fy >= 0) & (fy < self.ny)
        pidx = np.flatnonzero(ok)
        c = fy[ok].astype(np.int64) * self.nx + fx[ok].astype(np.int64)
        cnt = self.ptr[c + 1] - self.ptr[c]
        some = cnt > 0
        pidx, c, cnt = pidx[some], c[some], cnt[some]
        total = int(cnt.sum())
        pi = np.repeat(pidx, cnt)
        j = np.repeat(self.ptr[c] - (np.cumsum(cnt) - cnt), cnt) + np.arange(total)
        zi = self.zone[j]
        keep = self.full[j].copy()
        test = np.flatnonzero(~keep)
        if test.size:
            keep[test] = shapely.intersects_xy(geoms[zi[test]], lon[pi[test]], lat[pi[test]])
        return pi[keep], zi[keep]


def _within(inner: tuple[float, ...], outer: Bounds) -> bool:
    return (
        inner[0] >= outer[0]
        and inner[1] >= outer[1]
        and inner[2] <= outer[2]
        and inner[3] <= outer[3]
    )


class ZoneIndex:
    """Batched point-in-zone queries over many zones.

    ``locate`` returns candidate-filtered (point, zone) pairs; ``zones_of`` turns
    them into a tuple of zone ids per point, ordered by zone order in the file.
    """

    def __init__(self, zones: Sequence[Zone]) -> None:
        self.zones = list(zones)
        self.ids = [z.id for z in self.zones]
        self._alone = [(i,) for i in self.ids]  # the answer for a point in one zone
        self.by_id = {z.id: z for z in self.zones}
        self._geoms = np.array([z.geometry for z in self.zones], dtype=object)
        shapely.prepare(self._geoms)
        self._tree = shapely.STRtree(self._geoms) if len(self.zones) else None
        self._metric: tuple[float, float, np.ndarray, Any] | None = None
        self._grid = _Grid.build(self._geoms) if len(self.zones) else None

    def __len__(self) -> int:
        return len(self.zones)

    def _metric_index(self) -> tuple[float, float, np.ndarray, Any]:
        """Zones on a local equirectangular projection in metres (built on first use)."""
        if self._metric is None:
            minx, miny, maxx, maxy = shapely.total_bounds(self._geoms)
            lon0, lat0 = (minx + maxx) / 2, (miny + maxy) / 2
            kx, ky = M_PER_DEG * math.cos(math.radians(lat0)), M_PER_DEG
            geoms = shapely.transform(
                self._geoms,
                lambda c: (c - [lon0, lat0]) * [kx, ky],  # noqa: B023
            )
            shapely.prepare(geoms)
            self._metric = (lon0, lat0, geoms, shapely.STRtree(geoms))
        return self._metric

    def near(
        self, lon: np.ndarray, lat: np.ndarray, radius_m: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(point_index, zone_index, distance_m)`` of every point within ``radius_m``
        of a zone (distance 0 inside), by point; for "near" rules and buffers.

        Distances are on a local projection around the zones' centre: well under
        1 % off within a city.

        >>> box = shapely.box(120.0, 32.0, 120.01, 32.01)
        >>> idx = ZoneIndex([Zone("z1", "Box", "levee", {}, box)])
        >>> pi, zi, d = idx.near(np.array([120.005, 120.0105, 121.0]), np.array([32.005] * 3), 100)
        >>> pi.tolist(), zi.tolist(), d.round().tolist()
        ([0, 1], [0, 0], [0.0, 47.0])
        """
        lon = np.asarray(lon, dtype=float)
        lat = np.asarray(lat, dtype=float)
        if self._tree is None or lon.size == 0:
            empty = np.empty(0, dtype=np.intp)
            return empty, empty, np.empty(0)
        lon0, lat0, geoms, tree = self._metric_index()
        kx = M_PER_DEG * math.cos(math.radians(lat0))
        pts = shapely.points((lon - lon0) * kx, (lat - lat0) * M_PER_DEG)
        pi, zi = tree.query(pts, predicate="dwithin", distance=radius_m)
        dist = shapely.distance(geoms[zi], pts[pi])
        order = np.lexsort((zi, pi))
        return pi[order], zi[order], dist[order]

    def locate(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pairs ``(point_index, zone_index)`` of every point inside every zone, by point."""
        lon = np.asarray(lon, dtype=float)
        lat = np.asarray(lat, dtype=float)
        if self._tree is None or lon.size == 0:
            empty = np.empty(0, dtype=np.intp)
            return empty, empty
        if self._grid is not None:
            return self._grid.locate(self._geoms, lon, lat)
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
        ids, alone = self.ids, self._alone
        prev = -1
        for p, z in zip(pi.tolist(), zi.tolist(), strict=True):  # sorted by point, then zone
            if p == prev:
                out[p] = (*out[p], ids[z])
            else:
                out[p], prev = alone[z], p
        return out
