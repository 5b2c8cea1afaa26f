"""``citywatch import``: real public tracks (AIS, GPX, ...) as a recording on Nantong."""

from __future__ import annotations

import argparse
import sys

from citywatch.detectors.events import parse_ts
from citywatch.replay.real_tracks import (
    NANTONG,
    READERS,
    FormatError,
    class_picker,
    read_all,
    relocate,
    shift_to,
    to_events,
    write_recording,
)


def _centre(text: str) -> tuple[float, float]:
    try:
        lon, lat = (float(v) for v in text.split(","))
    except ValueError:
        msg = f"--centre must be LON,LAT in degrees like 120.894,31.981, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    return lon, lat


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "import",
        help="turn real public tracks (AIS, GPX) into a recording on Nantong",
        description=(
            "Read tracks of moving objects in a public format, move them onto the Nantong "
            "sample area keeping their metric geometry (every fix keeps its offset in "
            "metres from the set's centre, so distances, speeds and stops are real), map "
            "them onto the GPS input contract and write a recording for citywatch replay. "
            "Formats: tracktable (.traj, e.g. the AIS of PyPI tracktable-data), "
            "marinecadastre (AIS CSV with BaseDateTime,LON,LAT,MMSI,SOG,COG), gpx (timed "
            "track points, also gzipped as .gpx.gz). Small extracts ship in the repository "
            "under data/real/."
        ),
    )
    p.add_argument("format", choices=sorted(READERS), help="the input format")
    p.add_argument("paths", nargs="+", metavar="FILE", help="input files")
    p.add_argument("--out", "-o", required=True, help="recording to write (.jsonl, .jsonl.gz)")
    p.add_argument(
        "--class",
        dest="cls",
        default="hazmat_truck",
        help="entity class, or weights spread over entities: hazmat_truck:2,tanker:1 "
        "(default hazmat_truck; vessel for AIS as ships)",
    )
    p.add_argument(
        "--centre",
        type=_centre,
        default=NANTONG,
        help=f"where the set's centre lands, LON,LAT (default {NANTONG[0]},{NANTONG[1]})",
    )
    p.add_argument(
        "--each",
        action="store_true",
        help="move every track's own centre to --centre (tracks recorded in different "
        "cities or countries, such as a collection of GPX or FIT activities)",
    )
    p.add_argument("--start", default=None, help="move the first fix to this time (RFC 3339)")
    p.add_argument("--source", default=None, help="entity id prefix and src (default: format)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        pick = class_picker(args.cls)
        start = parse_ts(args.start) if args.start else None
        fixes = read_all(args.format, args.paths)
    except (OSError, FormatError, ValueError) as exc:
        print(f"citywatch import: {exc}", file=sys.stderr)
        return 2
    if not fixes:
        print(f"citywatch import: no timed fixes in {', '.join(args.paths)}", file=sys.stderr)
        return 2
    fixes = relocate(fixes, args.centre, each=args.each)
    if start is not None:
        fixes = shift_to(fixes, start)
    source = args.source or args.format
    header = {"format": args.format, "files": args.paths, "class": args.cls, "source": source}
    n = write_recording(args.out, to_events(fixes, source, pick), header)
    entities = len({f.entity for f in fixes})
    hours = (fixes[-1].ts_ms - fixes[0].ts_ms) / 3_600_000
    print(f"wrote {n} fixes of {entities} entities over {hours:.1f} h to {args.out}")
    return 0
