"""Real public tracks as citywatch recordings: readers, a move onto Nantong, a writer.

Three public formats of moving objects, each read into :class:`Fix` records:

- **tracktable trajectories** (``.traj``, the text format of Sandia's
  Tracktable; PyPI ``tracktable-data`` ships real AIS of New York harbour and
  the US coast in it, BSD-2-Clause): one trajectory per line,
  ``*T*,id,domain,n,...,*P*,...`` then ``n`` points of ``object id,
  YYYY-MM-DD HH:MM:SS, lon, lat[, properties]``.
- **MarineCadastre AIS CSV** (``BaseDateTime,LON,LAT,MMSI,SOG,COG,...``, the US
  Coast Guard / NOAA format; SOG in knots).
- **GPX 1.0 / 1.1** track points with ``<time>`` (what phones, sport watches
  and fleet portals export).

:func:`relocate` moves a whole set of tracks onto another place (the Nantong
sample area) by a local metric translation: every fix keeps its east/north
offset in metres from the set's centre, so distances, speeds and stops are
those of the real tracks. :func:`to_events` maps fixes onto the GPS input
contract (``entity`` prefixed with the source, ``class`` chosen per entity,
``speed`` in km/h where the source had one) and :func:`write_recording` writes
them in event-time order as a recording ``citywatch replay`` reads.

>>> from citywatch.geo.distance import haversine_m
>>> fixes = [Fix("a", 0, -74.0, 40.7), Fix("a", 60_000, -73.99, 40.7)]
>>> moved = relocate(fixes, (120.9, 32.0))
>>> round(haversine_m(moved[0].lon, moved[0].lat, moved[1].lon, moved[1].lat))
843
>>> round(haversine_m(fixes[0].lon, fixes[0].lat, fixes[1].lon, fixes[1].lat))
843
"""

from __future__ import annotations

import csv
import gzip
import math
import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from citywatch.detectors.events import format_ts
from citywatch.geo.distance import EARTH_RADIUS_M, offset_deg
from citywatch.replay.recording import RecordingWriter

KNOT_KMH = 1.852
NANTONG = (120.894, 31.981)  # the sample area's centre (Chongchuan district)
_TS = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}")
_M_PER_DEG = EARTH_RADIUS_M * math.pi / 180


@dataclass(frozen=True, slots=True)
class Fix:
    """One position of one moving object, as read from a public dataset."""

    entity: str
    ts_ms: int
    lon: float
    lat: float
    speed_kmh: float | None = None
    heading: float | None = None


class FormatError(ValueError):
    """A file that is not in the format its reader expects (names file and line)."""


def _utc_ms(text: str) -> int:
    dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def read_tracktable(path: str | Path) -> Iterator[Fix]:
    """Fixes of a tracktable ``.traj`` file (terrestrial domain: lon, lat degrees)."""
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            tok = line.rstrip("\n").split(",")
            if not tok or tok[0] != "*T*":
                if line.strip():
                    msg = f"{path}:{n}: not a tracktable trajectory line (no leading *T*)"
                    raise FormatError(msg)
                continue
            stamps = [i for i, t in enumerate(tok) if _TS.match(t)]
            if not stamps:
                continue
            for i in stamps:
                if i + 2 >= len(tok):
                    msg = f"{path}:{n}: point at field {i} has no lon/lat"
                    raise FormatError(msg)
                try:
                    yield Fix(tok[i - 1], _utc_ms(tok[i]), float(tok[i + 1]), float(tok[i + 2]))
                except ValueError as exc:
                    msg = f"{path}:{n}: bad point at field {i}: {exc}"
                    raise FormatError(msg) from None


def read_marinecadastre(path: str | Path) -> Iterator[Fix]:
    """Fixes of a MarineCadastre AIS CSV (SOG knots -> km/h; COG as heading)."""
    with open(path, encoding="utf-8", newline="") as fh:
        rows = csv.DictReader(fh)
        need = {"BaseDateTime", "LON", "LAT", "MMSI"}
        if not need <= set(rows.fieldnames or ()):
            msg = f"{path}: a MarineCadastre AIS CSV needs columns {sorted(need)}"
            raise FormatError(msg)
        for n, r in enumerate(rows, 2):
            try:
                sog = float(r["SOG"]) if r.get("SOG") not in (None, "") else None
                cog = float(r["COG"]) if r.get("COG") not in (None, "") else None
                yield Fix(
                    r["MMSI"],
                    _utc_ms(r["BaseDateTime"]),
                    float(r["LON"]),
                    float(r["LAT"]),
                    None if sog is None or sog >= 102.3 else sog * KNOT_KMH,  # 102.3: n/a
                    cog % 360 if cog is not None and cog >= -360 else None,
                )
            except (ValueError, KeyError) as exc:
                msg = f"{path}:{n}: bad AIS row: {exc}"
                raise FormatError(msg) from None


def read_gpx(path: str | Path) -> Iterator[Fix]:
    """Timed track points of a GPX file (``.gpx.gz``: gzipped); each ``<trk>`` is one
    entity (file stem + #)."""
    name = Path(path).name
    stem = Path(name.removesuffix(".gz")).stem
    try:
        opened = gzip.open(path) if name.endswith(".gz") else open(path, "rb")  # noqa: SIM115
        with opened as fh:
            # expat (>= 2.4.1) bounds entity expansion and never loads external entities
            root = ElementTree.parse(fh).getroot()  # noqa: S314
    except (ElementTree.ParseError, gzip.BadGzipFile, EOFError) as exc:
        msg = f"{path}: not a GPX file: {exc}"
        raise FormatError(msg) from None
    ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    for k, trk in enumerate(root.iter(f"{ns}trk")):
        entity = f"{stem}#{k}"
        for pt in trk.iter(f"{ns}trkpt"):
            when = pt.find(f"{ns}time")
            if when is None or not when.text:
                continue
            ts = _utc_ms(when.text)
            speed = pt.find(f"{ns}speed")  # GPX 1.0: metres per second
            kmh = float(speed.text) * 3.6 if speed is not None and speed.text else None
            yield Fix(entity, ts, float(pt.attrib["lon"]), float(pt.attrib["lat"]), kmh)


READERS: dict[str, Callable[[str | Path], Iterator[Fix]]] = {
    "tracktable": read_tracktable,
    "marinecadastre": read_marinecadastre,
    "gpx": read_gpx,
}


def read_all(fmt: str, paths: Iterable[str | Path]) -> list[Fix]:
    """Every fix of ``paths`` read with the ``fmt`` reader, duplicates removed, sorted."""
    reader = READERS[fmt]
    seen: dict[tuple[str, int], Fix] = {}
    for path in paths:
        for f in reader(path):
            seen.setdefault((f.entity, f.ts_ms), f)
    return sorted(seen.values(), key=lambda f: (f.ts_ms, f.entity))


def relocate(
    fixes: Sequence[Fix], centre: tuple[float, float] = NANTONG, *, each: bool = False
) -> list[Fix]:
    """Translate ``fixes`` so that their centre lands on ``centre``, keeping every
    fix's east/north offset in metres (the real distances, speeds and stops).

    ``each``: move every entity's own centre there (tracks recorded in different
    countries: one centre for all would put some thousands of kilometres away, where
    the east/west scale of the centre's latitude no longer holds)."""
    if each:
        by: dict[str, list[Fix]] = {}
        for f in fixes:
            by.setdefault(f.entity, []).append(f)
        moved = [m for part in by.values() for m in relocate(part, centre)]
        return sorted(moved, key=lambda f: (f.ts_ms, f.entity))
    if not fixes:
        return []
    lons = sorted(f.lon for f in fixes)
    lats = sorted(f.lat for f in fixes)
    clon, clat = lons[len(lons) // 2], lats[len(lats) // 2]
    tlon, tlat = centre
    cos_c = math.cos(math.radians(clat))
    out = []
    for f in fixes:
        east = (f.lon - clon) * _M_PER_DEG * cos_c
        north = (f.lat - clat) * _M_PER_DEG
        dlat = north / _M_PER_DEG
        dlon, _ = offset_deg(tlat + dlat, east, 0.0)
        out.append(replace(f, lon=tlon + dlon, lat=tlat + dlat))
    return out


def shift_to(fixes: Sequence[Fix], start_ms: int) -> list[Fix]:
    """Move the whole set in time so that its first fix is at ``start_ms``."""
    if not fixes:
        return []
    delta = start_ms - min(f.ts_ms for f in fixes)
    return [replace(f, ts_ms=f.ts_ms + delta) for f in fixes]


def class_picker(spec: str) -> Callable[[str], str]:
    """``hazmat_truck`` (every entity that class) or weights such as
    ``hazmat_truck:2,tanker:1``, spread over entities by a stable hash of their id.

    >>> pick = class_picker("hazmat_truck:2,tanker:1")
    >>> sorted({pick(str(i)) for i in range(30)})
    ['hazmat_truck', 'tanker']
    """
    parts: list[tuple[str, int]] = []
    for item in spec.split(","):
        name, _, weight = item.strip().partition(":")
        if not name or (weight and not weight.isdigit()) or weight == "0":
            msg = f"class must look like hazmat_truck or hazmat_truck:2,tanker:1, got {spec!r}"
            raise ValueError(msg)
        parts.append((name, int(weight or 1)))
    total = sum(w for _, w in parts)

    def pick(entity: str) -> str:
        slot = zlib.crc32(entity.encode()) % total
        for name, w in parts:
            if slot < w:
                return name
            slot -= w
        return parts[-1][0]

    return pick


def to_events(
    fixes: Iterable[Fix], source: str, cls_of: Callable[[str], str]
) -> Iterator[dict[str, Any]]:
    """GPS input events (the input contract) for ``fixes``, entity ids prefixed by
    ``source``; ``src`` names the dataset and ``id`` is ``entity@ts``."""
    for f in fixes:
        entity = f"{source}-{f.entity}"
        ev: dict[str, Any] = {
            "type": "gps",
            "ts": format_ts(f.ts_ms),
            "entity": entity,
            "lon": round(f.lon, 7),
            "lat": round(f.lat, 7),
            "class": cls_of(f.entity),
            "src": source,
            "id": f"{entity}@{f.ts_ms}",
        }
        if f.speed_kmh is not None:
            ev["speed"] = round(f.speed_kmh, 1)
        if f.heading is not None:
            ev["heading"] = round(f.heading, 1)
        yield ev


def write_recording(
    path: str | Path, events: Iterable[dict[str, Any]], header: dict[str, Any]
) -> int:
    """Write ``events`` (already in event-time order) as a recording; returns the count."""
    with RecordingWriter(path, header={"importer": header}) as w:
        for ev in events:
            w.write_event(ev)
        return w.lines
