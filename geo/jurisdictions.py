"""Jurisdictions: city → county → town polygons, and the town of every point.

>>> import shapely
>>> j = Jurisdictions([
...     Jurisdiction("city", "city", None, "City", shapely.box(0, 0, 2, 1)),
...     Jurisdiction("county:a", "county", "city", "A", shapely.box(0, 0, 1, 1)),
...     Jurisdiction("town:a1", "town", "county:a", "A1", shapely.box(0, 0, 1, 1)),
... ])
>>> j.locate(np.array([0.5, 1.5, 5.0]), np.array([0.5, 0.5, 5.0]))
['town:a1', 'city', None]
>>> j.chain("town:a1")
['town:a1', 'county:a', 'city']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from shapely.geometry.base import BaseGeometry

from citywatch.geo.errors import ZoneFileError
from citywatch.geo.zones import Zone, ZoneIndex, geometry_of, identified_features, read_geojson

LEVELS = ("city", "county", "town")


@dataclass(slots=True)
class Jurisdiction:
    id: str
    level: str
    parent: str | None
    name: str
    geometry: BaseGeometry = field(repr=False)


def load_jurisdictions(path: str | Path) -> Jurisdictions:
    return Jurisdictions(jurisdictions_from_geojson(read_geojson(path), str(path)))


def jurisdictions_from_geojson(doc: Any, source: str = "jurisdictions") -> list[Jurisdiction]:
    problems: list[str] = []
    out: list[Jurisdiction] = []
    for feat, props, jid, where in identified_features(doc, source, problems):
        level, parent = props.get("level"), props.get("parent")
        if level not in LEVELS:
            problems.append(f"{where}: 'level' must be one of city, county, town; got {level!r}")
            continue
        if level != "city" and not isinstance(parent, str):
            problems.append(f"{where}: a {level} needs a 'parent' id")
            continue
        shape = geometry_of(feat, where, problems)
        if shape is not None:
            out.append(Jurisdiction(jid, level, parent, str(props.get("name") or jid), shape))
    ids = {j.id for j in out}
    for j in out:
        if j.parent is not None and j.parent not in ids:
            problems.append(f"{source}: {j.id!r}: parent {j.parent!r} is not defined")
    if problems:
        msg = f"{source}: {len(problems)} problem(s): " + problems[0]
        raise ZoneFileError(msg, problems)
    return out


class Jurisdictions:
    """Finds the most specific jurisdiction (town, else county, else city) of points."""

    def __init__(self, items: Sequence[Jurisdiction]) -> None:
        self.items = {j.id: j for j in items}
        # Most specific level first: a point takes the first level that contains it.
        # Each level is a ZoneIndex, whose grid answers most points (cells wholly
        # inside one polygon) without a geometry test.
        self._levels: list[ZoneIndex] = []
        for level in ("town", "county", "city"):
            chosen = [j for j in items if j.level == level]
            if chosen:
                self._levels.append(
                    ZoneIndex([Zone(j.id, j.name, level, {}, j.geometry) for j in chosen])
                )

    def locate(self, lon: np.ndarray, lat: np.ndarray) -> list[str | None]:
        lon = np.asarray(lon, dtype=float)
        lat = np.asarray(lat, dtype=float)
        out: list[str | None] = [None] * lon.size
        pending = np.arange(lon.size)
        for index in self._levels:
            if pending.size == 0:
                break
            pi, zi = index.locate(lon[pending], lat[pending])  # sorted by point
            found = np.zeros(pending.size, dtype=bool)
            if pi.size:
                first = np.ones(pi.size, dtype=bool)
                first[1:] = pi[1:] != pi[:-1]  # the first zone of each point, in file order
                ids = index.ids
                for p, z in zip(pi[first].tolist(), zi[first].tolist(), strict=True):
                    found[p] = True
                    out[int(pending[p])] = ids[z]
            pending = pending[~found]
        return out

    def chain(self, jid: str | None) -> list[str]:
        """The jurisdiction and its ancestors, most specific first."""
        out: list[str] = []
        while jid is not None and jid in self.items and jid not in out:
            out.append(jid)
            jid = self.items[jid].parent
        return out

    def at_level(self, jid: str | None, level: str) -> str | None:
        for cid in self.chain(jid):
            if self.items[cid].level == level:
                return cid
        return None
