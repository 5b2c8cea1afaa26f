"""``citywatch record``: Kafka topics into a compressed recording."""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from citywatch.flows.commands.common import add_config
from citywatch.flows.config import load_config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rec = sub.add_parser(
        "record",
        help="record the Kafka topics into a recording file",
        description=(
            "Reads the gps, sensor and video topics (or --topics) and writes every message "
            "with its topic, partition, offset, key and arrival time to a recording "
            "(.jsonl, .jsonl.gz or .jsonl.zst). Stops at the end (--until-end), after "
            "--max-messages, or on Ctrl-C/SIGTERM. Replay it with `citywatch replay` "
            "(into the flow) or `citywatch replay --to kafka` (back into topics)."
        ),
    )
    add_config(rec)
    rec.add_argument("--out", type=Path, required=True, help="recording path (.jsonl.zst advised)")
    rec.add_argument("--bootstrap", default=None, help="Kafka bootstrap servers")
    rec.add_argument("--topics", nargs="+", default=None, help="topics (default: the three inputs)")
    rec.add_argument(
        "--from",
        dest="start",
        choices=["start", "now"],
        default="start",
        help="read from the oldest retained message (default) or only new ones",
    )
    rec.add_argument("--until-end", action="store_true", help="stop at the end of every partition")
    rec.add_argument("--max-messages", type=int, default=None)
    rec.add_argument("--quiet", action="store_true", help="no progress line")
    rec.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from citywatch.flows.kafka_io import client_config, list_partitions
    from citywatch.replay.recorder import RecordResult, record

    cfg = load_config(args.config)
    kafka = cfg.kafka
    if args.bootstrap:
        kafka = dataclasses.replace(kafka, bootstrap=args.bootstrap)
    conf = client_config(kafka, **{"group.id": kafka.group_id + "-recorder"})
    topics = args.topics or list(kafka.topics())
    parts = list_partitions(conf, topics)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def progress(r: RecordResult) -> None:
        if not args.quiet:
            sys.stderr.write(
                f"\rrecord: {r.messages:,} messages ({r.messages / max(r.seconds, 1e-9):,.0f}/s)"
            )
            sys.stderr.flush()

    result = record(
        conf,
        parts,
        args.out,
        from_start=args.start == "start",
        until_end=args.until_end,
        max_messages=args.max_messages,
        stop=stop,
        progress=progress,
    )
    if not args.quiet:
        sys.stderr.write("\n")
    by_topic = ", ".join(f"{t} {n:,}" for t, n in sorted(result.by_topic.items()))
    print(
        f"recorded {result.messages:,} messages from {len(parts)} partitions in "
        f"{result.seconds:.1f}s to {args.out}" + (f" ({by_topic})" if by_topic else "")
    )
    return 0
