"""Redis outage mid-run: work orders identical to a clean run, memory bounded.

Replays a generated recording through the full flow at a modest pace (event time
x``--speed``) into an embedded redis-server with an append-only file, kills the
server ``--after`` seconds in, restarts it ``--outage`` seconds later on the same
port and file, and lets the run finish. A clean run at full speed on its own
server is the reference. Each run is a child process, so its peak RSS is its own.
Exits 1 if the work orders differ (wall-clock fields aside) or if no sink held a
batch during the outage.

    python -m citywatch.benchmarks.redis_outage --minutes 40 --speed 60 --after 5 --outage 20
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import redis

from citywatch.flows.config import load_config
from citywatch.flows.runner import load_reference, run_recordings
from citywatch.replay.generator import GenParams, generate
from citywatch.sinks.embedded_redis import EmbeddedRedis
from citywatch.sinks.keys import Keys
from citywatch.sinks.queues import comparable_orders


def work_orders(url: str) -> dict[str, Any]:
    client = redis.Redis.from_url(url)
    try:
        return comparable_orders(client, Keys("cw"))
    finally:
        client.close()


class _Held(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "holding the batch" in record.getMessage():
            self.count += 1


def one(kind: str, recording: Path, speed: float, after_s: float, outage_s: float) -> None:
    """Run once in this process; print a JSON line with the outcome and peak RSS."""
    cfg = load_config()
    held = _Held()
    logging.getLogger("citywatch.sinks.redis_sinks").addHandler(held)
    server = EmbeddedRedis(appendonly=True).start()
    try:
        if kind == "clean":
            result = run_recordings([recording], cfg, server.url, progress=False)
        else:

            def cut() -> None:
                time.sleep(after_s)
                server.kill()
                time.sleep(outage_s)
                server.start()

            cutter = threading.Thread(target=cut)
            cutter.start()
            result = run_recordings([recording], cfg, server.url, speed=speed, progress=False)
            cutter.join()
        doc = {
            "kind": kind,
            "seconds": round(result.seconds, 1),
            "events": result.stats.events_in,
            "held_batches": held.count,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "work_orders": work_orders(server.url),
        }
    finally:
        server.cleanup()
    print(json.dumps(doc))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=int, default=40, help="minutes of generated traffic")
    ap.add_argument("--speed", type=float, default=60.0, help="replay pace, x event time")
    ap.add_argument("--after", type=float, default=5.0, help="seconds before the kill")
    ap.add_argument("--outage", type=float, default=20.0, help="seconds Redis stays down")
    ap.add_argument("--workdir", type=Path, default=Path("out/bench"))
    ap.add_argument("--one", choices=["clean", "outage"], help=argparse.SUPPRESS)
    ap.add_argument("--recording", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        one(args.one, args.recording, args.speed, args.after, args.outage)
        return 0
    args.workdir.mkdir(parents=True, exist_ok=True)
    rec = args.workdir / f"small-{args.minutes}m.jsonl"
    if not rec.exists():
        generate(load_reference(load_config()), GenParams(minutes=args.minutes), rec)
    runs = {}
    for kind in ("clean", "outage"):
        cmd = [sys.executable, "-m", "citywatch.benchmarks.redis_outage", "--one", kind,
               "--recording", str(rec), "--speed", str(args.speed), "--after", str(args.after),
               "--outage", str(args.outage)]  # fmt: skip
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        runs[kind] = json.loads(out.strip().splitlines()[-1])
    same = runs["clean"]["work_orders"] == runs["outage"]["work_orders"]
    for kind, doc in runs.items():
        print(
            f"{kind:>6}: {doc['events']:,} events in {doc['seconds']} s, "
            f"{len(doc['work_orders'])} work orders, {doc['held_batches']} held-batch retries, "
            f"peak RSS {doc['peak_rss_mb']} MB"
        )
    print(f"work orders identical to the clean run: {same}")
    return 0 if same and runs["outage"]["held_batches"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
