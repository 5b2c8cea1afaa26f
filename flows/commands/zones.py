"""``citywatch zones check|locate``: validate a zones file; find points' zones."""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson

from citywatch.flows.commands.common import add_config
from citywatch.flows.config import ConfigError, load_config

CHUNK = 100_000


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    zones = sub.add_parser(
        "zones",
        help="check a zones file, or find the zones and jurisdiction of points",
        description="Zone file tools: validation with actionable messages, and point look-ups.",
    )
    zsub = zones.add_subparsers(dest="zones_command", required=True, metavar="{check,locate}")
    check = zsub.add_parser(
        "check",
        help="validate a zones GeoJSON file and summarise it",
        description=(
            "Validates FILE (default: the configured zones) as the flow would (GeoJSON, "
            "rings, geometry validity, "
            "lat/lon order, city bounds from [zones] bounds, kinds from [zones] kinds, "
            "duplicate ids, each zone's rule overrides against the [geofence.*] rules) "
            "and prints every problem with its feature index and id. When valid, prints "
            "a JSON summary: counts and areas by kind, bounds. Exit code 1 if invalid."
        ),
    )
    add_config(check)
    check.add_argument(
        "file",
        type=Path,
        nargs="?",
        default=None,
        help="zones GeoJSON FeatureCollection (default: the configured zones, [data] zones)",
    )
    check.set_defaults(func=run_check)
    locate = zsub.add_parser(
        "locate",
        help="print the zones and jurisdiction of points as JSON lines",
        description=(
            "Prints one JSON line per point: lon, lat, the ids of the zones containing it "
            "(a point on an edge or vertex is inside), and its jurisdiction chain "
            "(town, county, city) from the configured jurisdictions file. Points come "
            "from LON LAT or from a CSV file with lon and lat columns (other columns, "
            "such as id, are copied to the output)."
        ),
    )
    add_config(locate)
    locate.add_argument("file", type=Path, help="zones GeoJSON FeatureCollection")
    locate.add_argument("point", nargs="*", type=float, metavar="LON LAT", help="one point")
    locate.add_argument("--points", type=Path, help="CSV with lon,lat columns (and others)")
    locate.add_argument(
        "--near-m", type=float, default=None, help="also list zones within this many metres"
    )
    locate.set_defaults(func=run_locate)


def run_check(args: argparse.Namespace) -> int:
    from citywatch.flows.zone_reload import load_checked_zones
    from citywatch.geo.errors import ZoneFileError
    from citywatch.geo.zones_check import summarise

    try:
        cfg = load_config(args.config)
        if args.file is None:
            args.file = cfg.data.zones
        zones = load_checked_zones(cfg, args.file)
    except ZoneFileError as exc:
        sys.stderr.write(f"{args.file}: INVALID, {len(exc.problems)} problem(s):\n")
        for p in exc.problems:
            sys.stderr.write(f"  {p}\n")
        return 1
    except ConfigError as exc:
        sys.stderr.write(f"config: {exc}\n")
        return 2
    summary = {"file": str(args.file), "valid": True, **summarise(zones)}
    sys.stdout.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def _points(args: argparse.Namespace) -> Iterator[tuple[np.ndarray, np.ndarray, list[dict]]]:
    if args.points is None:
        lon, lat = args.point
        yield np.array([lon]), np.array([lat]), [{}]
        return
    with args.points.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"lon", "lat"} <= set(reader.fieldnames):
            msg = f"{args.points}: needs a header with lon and lat columns, got {reader.fieldnames}"
            raise ValueError(msg)
        rows: list[dict] = []
        for line_no, row in enumerate(reader, start=2):
            try:
                row["lon"], row["lat"] = float(row["lon"]), float(row["lat"])
            except (TypeError, ValueError):
                msg = f"{args.points}:{line_no}: lon/lat must be numbers, got {row}"
                raise ValueError(msg) from None
            rows.append(row)
            if len(rows) == CHUNK:
                yield _arrays(rows)
                rows = []
        if rows:
            yield _arrays(rows)


def _arrays(rows: list[dict]) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    lon = np.array([r.pop("lon") for r in rows], dtype=float)
    lat = np.array([r.pop("lat") for r in rows], dtype=float)
    return lon, lat, rows


def run_locate(args: argparse.Namespace) -> int:
    from citywatch.flows.zone_reload import load_checked_zones
    from citywatch.geo.errors import ZoneFileError
    from citywatch.geo.jurisdictions import load_jurisdictions
    from citywatch.geo.zones import ZoneIndex

    if args.points is not None and args.point:
        sys.stderr.write("zones locate: give either LON LAT or --points CSV, not both\n")
        return 2
    if args.points is None and len(args.point) != 2:
        sys.stderr.write("zones locate: give LON LAT (two numbers) or --points CSV\n")
        return 2
    try:
        cfg = load_config(args.config)
        index = ZoneIndex(load_checked_zones(cfg, args.file))
        juris = load_jurisdictions(cfg.data.jurisdictions)
    except (ZoneFileError, ConfigError) as exc:
        sys.stderr.write(f"zones locate: {exc}\n")
        return 1
    out = sys.stdout.buffer
    try:
        for lon, lat, extra in _points(args):
            zones = index.zones_of(lon, lat)
            towns = juris.locate(lon, lat)
            near: list[dict[str, float]] = [{} for _ in range(lon.size)]
            if args.near_m is not None:
                pi, zi, dist = index.near(lon, lat, args.near_m)
                for p, z, d in zip(pi.tolist(), zi.tolist(), dist.tolist(), strict=True):
                    near[p][index.ids[z]] = round(d, 1)
            for i in range(lon.size):
                rec = {
                    **extra[i],
                    "lon": float(lon[i]),
                    "lat": float(lat[i]),
                    "zones": list(zones[i]),
                    "jurisdiction": juris.chain(towns[i]),
                }
                if args.near_m is not None:
                    rec["near_m"] = near[i]
                out.write(orjson.dumps(rec) + b"\n")
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"zones locate: {exc}\n")
        return 1
    out.flush()
    return 0
