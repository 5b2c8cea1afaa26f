"""``citywatch replay``: recordings through the flow into Redis."""

from __future__ import annotations

import argparse
from pathlib import Path

from citywatch.flows.commands.common import add_config, check_cluster, speed
from citywatch.flows.config import ConfigError, load_config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    replay = sub.add_parser(
        "replay",
        help="replay recordings through the flow into Redis",
        description=(
            "Replays one or more recordings (JSON Lines, .gz or .zst; several files are "
            "merged by arrival time) through the flow. Work orders go to Redis "
            "(CITYWATCH_REDIS_URL, [redis] url, or an embedded server for the run). "
            "With -p N the replay runs in N processes forming one Bytewax cluster; across "
            "hosts start each process with -i ID and the same -a list, each with the "
            "same recordings and its own output files."
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
    replay.add_argument(
        "--redis-url",
        default=None,
        help="Redis URL (overrides config/env); redis+cluster://h1:p1,h2:p2 for a Redis "
        "Cluster through any of its seed nodes",
    )
    replay.add_argument("-w", "--workers", type=int, default=1, help="Bytewax worker threads")
    replay.add_argument(
        "-p",
        "--processes",
        type=int,
        default=1,
        help="processes on this host, forming one cluster: each key's state lives in one "
        "of them, whole batches go between them, each parses its share of the lines "
        "(at --speed max); the same alerts as one process",
    )
    replay.add_argument(
        "-i",
        "--process-id",
        type=int,
        default=None,
        help="this process's index in a cluster across hosts (with --addresses; every "
        "host reads the same recordings)",
    )
    replay.add_argument(
        "-a",
        "--addresses",
        default=None,
        help="host:port of every process, ';'-separated, the same on all hosts",
    )
    replay.add_argument("--stats-out", type=Path, default=None, help=argparse.SUPPRESS)
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
    check_cluster(args)
    alerts_out = args.alerts_out
    if args.truth and alerts_out is None:
        alerts_out = Path(str(args.truth) + ".alerts.jsonl")
    with redis_for(cfg, args.redis_url) as (url, embedded):
        if args.processes > 1 and args.addresses is None:
            from citywatch.flows.replay_cluster import replay_processes

            outputs = {
                "--alerts-out": alerts_out,
                "--dead-letters": args.dead_letters,
                "--late-out": args.late_out,
            }
            code, result = replay_processes(
                _child_argv(args), args.processes, outputs, redis_url=url
            )
            if code != 0:
                return code
        else:
            result = run_recordings(
                args.files,
                cfg,
                url,
                speed=args.speed,
                workers=args.workers,
                alerts_out=alerts_out,
                dead_out=args.dead_letters,
                late_out=args.late_out,
                progress=not args.quiet and args.stats_out is None,
                process_id=args.process_id,
                addresses=tuple(args.addresses.split(";")) if args.addresses else (),
            )
        if args.stats_out is not None:  # a child of ``-p``: the parent sums and reports
            from citywatch.flows.replay_cluster import stats_to_json

            args.stats_out.write_bytes(stats_to_json(result.stats))
            return 0
        print_summary(result, cfg, embedded is not None, alerts_out=alerts_out, truth=args.truth)
    return 0


def _child_argv(args: argparse.Namespace) -> list[str]:
    """A ``-p`` child's arguments (the Redis URL goes by environment; outputs per child)."""
    out = [str(f) for f in args.files] + ["--quiet", "-w", str(args.workers)]
    if args.config is not None:
        out += ["--config", str(args.config)]
    if args.speed is not None:
        out += ["--speed", str(args.speed)]
    return out
