"""The ``citywatch`` command line."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from flows.config import Config, ConfigError, load_config
from geo.errors import ZoneFileError
from sinks.embedded_redis import EmbeddedRedisError
from sinks.redis_dispatch import DispatchError

EPILOG = """\
Configuration: one TOML file (--config; default: the bundled Nantong sample),
overridden by CITYWATCH_REDIS_URL, CITYWATCH_REDIS_PREFIX,
CITYWATCH_KAFKA_BOOTSTRAP and CITYWATCH_ZONES. Without a Redis URL an embedded
redis-server is started and stopped by the program.
"""


def _speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        msg = f"speed must be a number like 50 or 'max', got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if value <= 0:
        msg = f"speed must be > 0, got {text}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="TOML configuration (default: data/nantong/citywatch.toml)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="citywatch",
        description="Real-time warning engine for a city command centre.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="generate city traffic, run the whole flow into an embedded Redis, show alerts",
        description=(
            "The main job on embedded defaults: generates a recording of synthetic "
            "Nantong traffic with injected incidents (or uses --recording), replays it "
            "through the flow into Redis, prints each work order as it is dispatched, "
            "and ends with a summary and how to inspect the result in Redis."
        ),
    )
    _add_config(demo)
    demo.add_argument(
        "--recording",
        type=Path,
        nargs="*",
        default=None,
        help="replay these recordings instead of generating one",
    )
    demo.add_argument("--minutes", type=int, default=40, help="minutes of traffic to generate")
    demo.add_argument("--seed", type=int, default=7, help="generator seed")
    demo.add_argument(
        "--speed",
        type=_speed,
        default=_speed("240"),
        help="replay speed: N times real time, or 'max' (default 240)",
    )
    demo.add_argument(
        "--out",
        type=Path,
        default=Path("out/demo"),
        help="folder for the recording, truth, alerts and dead letters",
    )
    demo.add_argument(
        "--keep",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="keep the embedded Redis running until Ctrl-C (default: when run from a terminal)",
    )

    replay = sub.add_parser(
        "replay",
        help="replay recordings through the flow into Redis",
        description=(
            "Replays one or more recordings (JSON Lines, .gz or .zst; several files are "
            "merged by arrival time) through the flow. Work orders go to Redis "
            "(CITYWATCH_REDIS_URL, [redis] url, or an embedded server for the run)."
        ),
    )
    replay.add_argument("files", type=Path, nargs="+", metavar="FILE")
    _add_config(replay)
    replay.add_argument(
        "--speed",
        type=_speed,
        default=None,
        help="N times real time (paced on event time), or 'max' (default)",
    )
    replay.add_argument(
        "--alerts-out",
        type=Path,
        default=None,
        help="also write every alert as JSON Lines to this file",
    )
    replay.add_argument(
        "--dead-letters",
        type=Path,
        default=None,
        help="also write dead letters (raw line and reason) to this file",
    )
    replay.add_argument(
        "--late-out",
        type=Path,
        default=None,
        help="write late events (the late side output) to this file",
    )
    replay.add_argument("--redis-url", default=None, help="Redis URL (overrides config/env)")
    replay.add_argument("-w", "--workers", type=int, default=1, help="Bytewax worker threads")
    replay.add_argument(
        "--truth", type=Path, default=None, help="score the alerts against this ground-truth file"
    )
    replay.add_argument("--quiet", action="store_true", help="no progress line")

    gen = sub.add_parser(
        "generate",
        help="write synthetic city traffic and its ground truth",
        description=(
            "Writes a mixed recording of GPS, sensor and video events: background "
            "traffic plus injected incidents, with a truth file listing each incident's "
            "expected alert kind, subject, zone and time window. Same seed, same bytes."
        ),
    )
    _add_config(gen)
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
    return parser


def _reference(cfg: Config):  # type: ignore[no-untyped-def]
    from flows.runner import load_reference

    return load_reference(cfg)


def cmd_generate(args: argparse.Namespace) -> int:
    from replay.generator import GenParams, generate

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

    truth = generate(_reference(cfg), params, args.out, args.truth, progress)
    if sys.stderr.isatty():
        sys.stderr.write("\r\x1b[K")
    print(
        f"wrote {truth.events:,} events to {args.out} in {time.perf_counter() - t0:.1f}s "
        f"({len(truth.incidents)} injected incidents, {truth.dead_letters} corrupt lines, "
        f"{truth.late_events} late)" + (f"; truth in {args.truth}" if args.truth else "")
    )
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from flows.runner import redis_for, run_recordings
    from flows.summary import print_summary

    cfg = load_config(args.config)
    for f in args.files:
        if not f.exists():
            msg = f"recording {f} not found"
            raise ConfigError(msg)
    alerts_out = args.alerts_out
    if args.truth and alerts_out is None:
        alerts_out = Path(str(args.truth) + ".alerts.jsonl")
    with redis_for(cfg, args.redis_url) as (url, embedded):
        result = run_recordings(
            args.files,
            cfg,
            url,
            speed=args.speed,
            workers=args.workers,
            alerts_out=alerts_out,
            dead_out=args.dead_letters,
            late_out=args.late_out,
            progress=not args.quiet,
        )
        print_summary(result, cfg, embedded is not None, alerts_out=alerts_out, truth=args.truth)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from flows.demo import run_demo

    return run_demo(args)


COMMANDS = {"generate": cmd_generate, "replay": cmd_replay, "demo": cmd_demo}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (ConfigError, ZoneFileError, DispatchError, EmbeddedRedisError, ValueError) as exc:
        print(f"citywatch {args.command}: error: {exc}", file=sys.stderr)
        for line in getattr(exc, "problems", [])[1:]:
            print(f"  {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ncitywatch {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
