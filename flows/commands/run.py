"""``citywatch run``: Kafka topics through the flow into Redis, for production."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from pathlib import Path

from citywatch.flows.commands.common import add_config, check_cluster
from citywatch.flows.config import ConfigError, load_config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = sub.add_parser(
        "run",
        help="consume the Kafka topics and dispatch work orders to Redis (production)",
        description=(
            "Consumes the gps, sensor and video topics ([kafka] in the config), runs the "
            "flow and writes work orders to Redis; dead letters go to the DLQ topic (reason "
            "in a header) and the Redis dead-letter stream. State and Kafka offsets are "
            "snapshotted to the recovery directory ([run] recovery_dir, created on first "
            "start) every snapshot_interval_s (60 s; each stops the flow while it is taken); "
            "after a crash, run again with the same "
            "directory and it resumes from the last snapshot. SIGTERM or Ctrl-C stops "
            "cleanly. Logs are JSON lines on stderr; metrics on http://HOST:PORT/metrics. "
            "Redis: waits for it at start (--redis-wait); while it is unreachable or full "
            "(OOM) the flow holds its input and resumes on its own; without a URL a "
            "throw-away embedded server is used (and announced). With -p, the children die "
            "with this process and get the Redis URL by environment, not on their command "
            "line."
        ),
    )
    add_config(run)
    run.add_argument("--bootstrap", default=None, help="Kafka bootstrap servers (host:port,...)")
    run.add_argument(
        "--redis-url",
        default=None,
        help="Redis URL (overrides config/env); redis+cluster://host:port for a Redis Cluster, "
        "redis+cluster://h1:p1,h2:p2 with several seed nodes (a start survives one down)",
    )
    run.add_argument(
        "--redis-wait",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long to wait for an unreachable Redis at start, retrying with capped "
        "backoff and a log line each time (default: wait for ever; 0: fail at once)",
    )
    run.add_argument("--group", default=None, help="consumer group (overrides [kafka] group_id)")
    run.add_argument("--recovery-dir", type=Path, default=None, help="overrides [run] recovery_dir")
    run.add_argument(
        "--snapshot-interval",
        type=float,
        default=None,
        metavar="S",
        help="seconds between snapshots (overrides [run] snapshot_interval_s)",
    )
    run.add_argument("-w", "--workers", type=int, default=1, help="worker threads per process")
    run.add_argument(
        "-p",
        "--processes",
        type=int,
        default=1,
        help="processes on this host, forming one cluster (partitions >= workers in total)",
    )
    run.add_argument(
        "-i",
        "--process-id",
        type=int,
        default=None,
        help="this process's index in a multi-host cluster (with --addresses)",
    )
    run.add_argument(
        "-a",
        "--addresses",
        default=None,
        help="host:port of every process, ';'-separated, the same on all hosts",
    )
    run.add_argument(
        "--stop-at-end",
        action="store_true",
        help="stop once every partition is read to the end it had (backfills, tests)",
    )
    run.add_argument(
        "--alerts-out", type=Path, default=None, help="also append every alert to this JSONL file"
    )
    run.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="Prometheus port (overrides [run] metrics_port; 0 turns it off; +process id)",
    )
    run.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="messages per partition and poll (overrides [flow] batch_size)",
    )
    run.add_argument(
        "--timers",
        choices=["wall", "event"],
        default=None,
        help=(
            "timeouts on wall-clock (live default: a quiet key's gap/offline about "
            "[flow] source_slack_ms + tick_ms after its allowance has passed since its last "
            "event was read, while its Kafka partition is read to its end, never while it is "
            "behind) or on event time (deterministic)"
        ),
    )
    run.add_argument(
        "--reset-state",
        action="append",
        default=[],
        metavar="STEP",
        help=(
            "drop the recovery state of one stateful step before starting (repeatable): "
            "watermark, detect, rdv_match, peer, fusion or incidents; that step starts empty while "
            "Kafka offsets and the other steps resume. Needed only when a snapshot cannot "
            "be restored (the error names the step)"
        ),
    )
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    run.set_defaults(func=main)


def _child_argv(args: argparse.Namespace) -> list[str]:
    """The children's arguments; the Redis URL (and its password) goes by environment."""
    out: list[str] = ["-w", str(args.workers)]
    for flag, value in (
        ("--config", args.config),
        ("--bootstrap", args.bootstrap),
        ("--group", args.group),
        ("--recovery-dir", args.recovery_dir),
        ("--snapshot-interval", args.snapshot_interval),
        ("--alerts-out", args.alerts_out),
        ("--metrics-port", args.metrics_port),
        ("--log-level", args.log_level),
        ("--batch-size", args.batch_size),
        ("--timers", args.timers),
    ):
        if value is not None:
            out += [flag, str(value)]
    if args.stop_at_end:
        out.append("--stop-at-end")
    return out  # --reset-state is done once by the parent, before the children start


def main(args: argparse.Namespace) -> int:
    from citywatch.flows.live import SPAWNED_ENV, RunOptions, run_live, spawn_processes
    from citywatch.flows.logs import resolve_format, setup_logging
    from citywatch.flows.runner import announce_embedded, check_redis, redis_for

    setup_logging(resolve_format(None), getattr(logging, args.log_level.upper()))
    cfg = load_config(args.config)
    kafka = cfg.kafka
    if args.bootstrap:
        kafka = dataclasses.replace(kafka, bootstrap=args.bootstrap)
    if args.group:
        kafka = dataclasses.replace(kafka, group_id=args.group)
    run_cfg = cfg.run
    if args.recovery_dir is not None:
        run_cfg = dataclasses.replace(run_cfg, recovery_dir=str(args.recovery_dir))
    if args.snapshot_interval is not None:
        run_cfg = dataclasses.replace(run_cfg, snapshot_interval_s=args.snapshot_interval)
    flow = cfg.flow
    if args.batch_size is not None:
        flow = dataclasses.replace(flow, batch_size=args.batch_size)
    cfg = dataclasses.replace(cfg, kafka=kafka, run=run_cfg, flow=flow)
    check_cluster(args)
    if args.reset_state:
        from citywatch.flows.live import ensure_recovery_dir
        from citywatch.flows.recovery import reset_steps

        rec_dir = Path(cfg.run.recovery_dir)
        ensure_recovery_dir(rec_dir, cfg.run.recovery_partitions)
        removed = reset_steps(rec_dir, args.reset_state)
        logging.getLogger("citywatch.run").info(
            "recovery state reset", extra={"steps": args.reset_state, "snapshots": removed}
        )
    port = cfg.run.metrics_port if args.metrics_port is None else args.metrics_port
    if args.redis_wait is not None and args.redis_wait < 0:
        msg = f"--redis-wait must be >= 0 seconds, got {args.redis_wait:g}"
        raise ConfigError(msg)
    with redis_for(cfg, args.redis_url) as (url, embedded):
        if embedded is not None:
            announce_embedded("run", embedded)
        elif not os.environ.get(SPAWNED_ENV):  # a -p parent checked for its children
            check_redis(cfg, url, args.redis_wait, warn=args.process_id in (None, 0))
        if args.processes > 1 and args.process_id is None:
            return spawn_processes(_child_argv(args), cfg, args.processes, redis_url=url)
        opts = RunOptions(
            workers=args.workers,
            process_id=args.process_id,
            addresses=tuple(args.addresses.split(";")) if args.addresses else (),
            stop_at_end=args.stop_at_end,
            alerts_out=args.alerts_out,
            metrics_port=port or None,
            timers=args.timers,
        )
        run_live(cfg, url, opts)
    return 0
