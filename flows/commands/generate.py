"""``citywatch generate``: synthetic city traffic with ground truth."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from citywatch.flows.commands.common import add_config
from citywatch.flows.config import load_config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    gen = sub.add_parser(
        "generate",
        help="write synthetic city traffic and its ground truth",
        description=(
            "Writes a mixed recording of GPS, sensor and video events: background "
            "traffic plus injected incidents, with a truth file listing each incident's "
            "expected alert kind, subject, zone and time window. Same seed, same bytes."
        ),
    )
    add_config(gen)
    gen.add_argument("--minutes", type=int, default=40, help="minutes of traffic")
    gen.add_argument("--seed", type=int, default=7)
    gen.add_argument(
        "--start", default="2026-06-15T21:00:00+08:00", help="start time, RFC 3339 with offset"
    )
    gen.add_argument(
        "--scale",
        choices=["small", "medium", "city"],
        default="small",
        help="fleet and sensor counts",
    )
    gen.add_argument(
        "--out", type=Path, required=True, help="recording path (.jsonl, .jsonl.gz or .jsonl.zst)"
    )
    gen.add_argument("--truth", type=Path, default=None, help="ground-truth JSON path")
    gen.add_argument("--no-incidents", action="store_true", help="background traffic only")
    gen.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from citywatch.flows.runner import load_reference
    from citywatch.replay.generator import GenParams, generate

    cfg = load_config(args.config)
    params = GenParams(
        minutes=args.minutes,
        seed=args.seed,
        start=args.start,
        scale=args.scale,
        inject=not args.no_incidents,
    )
    t0 = time.perf_counter()

    def progress(n: int) -> None:
        if sys.stderr.isatty():
            sys.stderr.write(f"\rgenerate: {n:,} events")
            sys.stderr.flush()

    truth = generate(load_reference(cfg), params, args.out, args.truth, progress)
    if sys.stderr.isatty():
        sys.stderr.write("\r\x1b[K")
    print(
        f"wrote {truth.events:,} events to {args.out} in {time.perf_counter() - t0:.1f}s "
        f"({len(truth.incidents)} injected incidents, {truth.dead_letters} corrupt lines, "
        f"{truth.late_events} late)" + (f"; truth in {args.truth}" if args.truth else "")
    )
    return 0
