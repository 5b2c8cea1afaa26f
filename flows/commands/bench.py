"""``citywatch bench``: throughput, latency, memory and detection quality in one command."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from citywatch.flows.commands.common import add_config, positive_or_none
from citywatch.flows.config import ConfigError, load_config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = sub.add_parser(
        "bench",
        help="benchmark the full flow on a recording: events/s, latency, memory, quality",
        description=(
            "Runs the full flow (every detector, incidents, Redis dispatch) over a recording "
            "at --speed max, then again paced at --paced-rate events/s to measure "
            "ingest-to-work-order latency per alert; with --truth scores precision and recall "
            "per alert kind; with --compare also runs a hand-written single-process baseline "
            "(no Bytewax) in the same run. Prints Markdown and writes report.json and "
            "report.md to --out. Each run gets a fresh embedded redis-server unless "
            "--redis-url is given (then each run uses its own key prefix)."
        ),
    )
    bench.add_argument("files", type=Path, nargs="+", metavar="FILE", help="recording(s)")
    add_config(bench)
    bench.add_argument(
        "--truth", type=Path, default=None, help="ground-truth JSON to score against"
    )
    bench.add_argument("--out", type=Path, default=Path("out/bench"), help="report folder")
    bench.add_argument("--redis-url", default=None, help="Redis URL (default: embedded server)")
    bench.add_argument(
        "--paced-rate",
        type=positive_or_none("--paced-rate", ("off", "none", "0"), "10000 events/s"),
        default=10_000.0,
        help="events/s of the paced latency run, or 'off' (default 10000)",
    )
    bench.add_argument(
        "--paced-seconds",
        type=float,
        default=60.0,
        help="wall seconds of the paced run: the recording's first rate × seconds lines "
        "(0: the whole recording; default 60)",
    )
    bench.add_argument(
        "--compare", action="store_true", help="also run the single-process baseline"
    )
    bench.add_argument("-w", "--workers", type=int, default=1, help="Bytewax worker threads")
    bench.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="input lines per batch for every run (default: [flow] batch_size)",
    )
    bench.add_argument("--quiet", action="store_true", help="no progress bars")
    bench.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from citywatch.flows.bench import BenchOptions, markdown, run_bench

    cfg = load_config(args.config)
    for f in [*args.files, *([args.truth] if args.truth else [])]:
        if not f.exists():
            msg = f"bench: {f} not found"
            raise ConfigError(msg)
    opts = BenchOptions(
        paths=tuple(args.files),
        out=args.out,
        truth=args.truth,
        redis_url=args.redis_url,
        paced_rate=args.paced_rate,
        paced_seconds=args.paced_seconds,
        compare=args.compare,
        workers=args.workers,
        batch_size=args.batch_size,
        progress=not args.quiet,
        command=shlex.join(["citywatch", *sys.argv[1:]]),
    )
    report = run_bench(opts, cfg)
    print(markdown(report))
    print(f"report: {args.out / 'report.json'} and {args.out / 'report.md'}")
    return 0
