"""``citywatch replay``: recordings through the flow into Redis."""

from __future__ import annotations

import argparse
from pathlib import Path

from citywatch.flows.commands.common import add_config, speed
from citywatch.flows.config import ConfigError, load_config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    add_config(replay)
    replay.add_argument(
        "--speed",
        type=speed,
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
    replay.add_argument(
        "--to",
        choices=["flow", "kafka"],
        default="flow",
        help="'kafka' produces the recordings into the input topics ([kafka] in the config; "
        "keyed by entity/sensor/camera, paced by --speed) instead of running the flow",
    )
    replay.add_argument("--bootstrap", default=None, help="Kafka bootstrap servers for --to kafka")

    replay.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from citywatch.flows.runner import redis_for, run_recordings
    from citywatch.flows.summary import print_summary

    cfg = load_config(args.config)
    for f in args.files:
        if not f.exists():
            msg = f"recording {f} not found"
            raise ConfigError(msg)
    if args.to == "kafka":
        from citywatch.flows.kafka_io import replay_to_kafka

        return replay_to_kafka(args.files, cfg, args.bootstrap, args.speed, quiet=args.quiet)
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
