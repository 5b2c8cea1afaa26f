"""Timed positions of FIT (and TCX) activity files as gzipped GPX 1.0 tracks (one
per file).

The 1-5 s extracts in ``data/real/fit`` and ``data/real/runpandas`` were made with
it from the test files of python-fitparse, tormoder/fit and runpandas (MIT); FIT
needs the ``fitparse`` package (MIT, PyPI), which the project does not depend on
otherwise (TCX is plain XML)::

    pip install fitparse
    python -m citywatch.benchmarks.fit_to_gpx OUT_DIR FILE.fit FILE.tcx ...

A record with a position and a timestamp becomes a ``<trkpt>`` with ``<time>``
(UTC) and, where the file has one, ``<speed>`` (metres per second, the device's own
speed); everything else in the file (heart rate, power, laps) is left out.
"""

from __future__ import annotations

import gzip
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

SEMICIRCLE_DEG = 180 / 2**31


def tcx_points(path: Path) -> list[tuple[datetime, float, float, float | None]]:
    """(time, lat, lon, None) of every TCX ``Trackpoint`` with a position."""
    out: list[tuple[datetime, float, float, float | None]] = []
    root = ElementTree.parse(path).getroot()  # noqa: S314  (a file named by hand)
    for tp in root.iter():
        if not tp.tag.endswith("Trackpoint"):
            continue
        when = lat = lon = None
        for c in tp.iter():
            tag = c.tag.rsplit("}", 1)[-1]
            if tag == "Time":
                when = c.text
            elif tag == "LatitudeDegrees":
                lat = c.text
            elif tag == "LongitudeDegrees":
                lon = c.text
        if when and lat and lon:
            ts = datetime.fromisoformat(when.replace("Z", "+00:00")).astimezone(UTC)
            out.append((ts.replace(tzinfo=None), float(lat), float(lon), None))
    return out


def points(path: Path) -> list[tuple[datetime, float, float, float | None]]:
    """(time, lat, lon, speed m/s) of every record with a position, in file order."""
    if path.suffix.lower() == ".tcx":
        return tcx_points(path)
    import fitparse  # type: ignore[import-not-found]  # noqa: PLC0415  (extracts only)

    out: list[tuple[datetime, float, float, float | None]] = []
    for msg in fitparse.FitFile(str(path)).get_messages("record"):
        v: dict[str, Any] = msg.get_values()
        lat, lon, ts = v.get("position_lat"), v.get("position_long"), v.get("timestamp")
        if lat is None or lon is None or ts is None:
            continue
        speed = v.get("enhanced_speed", v.get("speed"))
        out.append((ts, lat * SEMICIRCLE_DEG, lon * SEMICIRCLE_DEG, speed))
    return out


def gpx(name: str, pts: Sequence[tuple[datetime, float, float, float | None]]) -> str:
    rows = []
    for ts, lat, lon, speed in pts:
        when = ts.replace(tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        sp = f"<speed>{speed:.3f}</speed>" if speed is not None else ""
        rows.append(f'<trkpt lat="{lat:.7f}" lon="{lon:.7f}"><time>{when}</time>{sp}</trkpt>')
    body = "\n".join(rows)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<gpx version="1.0" creator="citywatch fit_to_gpx" '
        'xmlns="http://www.topografix.com/GPX/1/0">\n'
        f"<trk><name>{name}</name><trkseg>\n{body}\n</trkseg></trk>\n</gpx>\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2:
        print(__doc__)
        return 2
    out = Path(args[0])
    out.mkdir(parents=True, exist_ok=True)
    for name in args[1:]:
        path = Path(name)
        try:
            pts = points(path)
        except Exception as exc:  # noqa: BLE001  (a broken test file: say so, go on)
            print(f"{path.name}: skipped ({type(exc).__name__}: {exc})")
            continue
        if len(pts) < 2:
            print(f"{path.name}: skipped ({len(pts)} timed positions)")
            continue
        dest = out / f"{path.stem}.gpx.gz"
        with gzip.GzipFile(dest, "wb", mtime=0) as fh:
            fh.write(gpx(path.stem, pts).encode())
        print(f"{path.name}: {len(pts)} points -> {dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
