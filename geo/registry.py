"""Sensor and camera registries: where each fixed device stands.

CSV with a header; ``id``, ``lon`` and ``lat`` are required, other columns are
kept as text (``kind``, ``unit``, ``zone`` for sensors; ``zone``, ``heading``
for cameras).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

from citywatch.geo.errors import ZoneFileError


@dataclass(frozen=True, slots=True)
class Device:
    id: str
    lon: float
    lat: float
    attrs: dict[str, str] = field(default_factory=dict)


def load_registry(path: str | Path | None) -> dict[str, Device]:
    if path is None:
        return {}
    out: dict[str, Device] = {}
    problems: list[str] = []
    with Path(path).open(newline="", encoding="utf-8") as fh:
        for line_no, row in enumerate(csv.DictReader(fh), start=2):
            did = (row.get("id") or "").strip()
            where = f"{path}:{line_no}"
            if not did:
                problems.append(f"{where}: 'id' is empty")
                continue
            if did in out:
                problems.append(f"{where}: duplicate id {did!r}")
                continue
            try:
                lon, lat = float(row["lon"]), float(row["lat"])
            except (KeyError, TypeError, ValueError):
                problems.append(f"{where}: {did!r}: lon/lat must be numbers")
                continue
            if not (math.isfinite(lon) and math.isfinite(lat)) or abs(lat) > 90 or abs(lon) > 180:
                problems.append(f"{where}: {did!r}: lon/lat out of range")
                continue
            attrs = {k: v for k, v in row.items() if k not in ("id", "lon", "lat") and v}
            out[did] = Device(did, lon, lat, attrs)
    if problems:
        msg = f"{path}: {len(problems)} problem(s): {problems[0]}"
        raise ZoneFileError(msg, problems)
    return out
