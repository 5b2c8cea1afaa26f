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
    add_noise_options(gen)
    gen.set_defaults(func=run)


def add_noise_options(gen: argparse.ArgumentParser) -> None:
    from citywatch.replay.noise_options import NOISE_LEVELS

    group = gen.add_argument_group(
        "field noise",
        "GPS, clock and sensor-fault noise (see the README's generator section). On by "
        "default for --scale city, off for small and medium; --noise on|off overrides. "
        "The options below set its levels when it is on.",
    )
    group.add_argument(
        "--noise",
        choices=["auto", "on", "off"],
        default="auto",
        help="field noise: auto (on for --scale city only), on or off (default auto)",
    )
    for name, (default, flag, text) in NOISE_LEVELS.items():
        group.add_argument(
            flag, type=float, default=default, dest=name, help=f"{text} (default {default:g})"
        )
    group.add_argument(
        "--no-sensor-faults",
        action="store_true",
        help="no injected drift, stuck, saturated or calibration-step sensors",
    )
    group.add_argument(
        "--no-overlaps",
        action="store_true",
        help="no overlapping or zone-border incidents",
    )


def run(args: argparse.Namespace) -> int:
    from citywatch.flows.runner import load_reference
    from citywatch.replay.generator import GenParams, generate
    from citywatch.replay.noise_options import NOISE_LEVELS

    cfg = load_config(args.config)
    params = GenParams(
        minutes=args.minutes,
        seed=args.seed,
        start=args.start,
        scale=args.scale,
        inject=not args.no_incidents,
        noise={"auto": None, "on": True, "off": False}[args.noise],
        sensor_faults=not args.no_sensor_faults,
        overlapping_incidents=not args.no_overlaps,
        **{name: getattr(args, name) for name in NOISE_LEVELS},
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
    if truth.noise:
        print("noise: " + ", ".join(f"{v:,} {k.replace('_', ' ')}" for k, v in truth.noise.items()))
    return 0
