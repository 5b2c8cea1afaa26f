"""Same work orders from Kafka with one worker, two worker threads and two processes.

The test suite checks this on a 30-minute recording; this check runs a longer
backlog (by default 150 minutes, ~40 k events over 12 partitions), where the
partitions are consumed in large, unevenly interleaved chunks: the case that
exposes any cross-key stage clocked by arrival order instead of watermarks.
It produces the recording into librdkafka's mock cluster, runs ``citywatch run
--stop-at-end`` with ``-w 1``, ``-w 2`` and ``-p 2`` into separate Redis
databases, and compares every work order and its alerts. Exit code 1 on any
difference.

    python -m citywatch.benchmarks.kafka_determinism --minutes 150
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import redis
from confluent_kafka import Producer

from citywatch.flows.config import load_config
from citywatch.flows.kafka_io import produce_recording
from citywatch.flows.runner import load_reference
from citywatch.replay.generator import GenParams, generate
from citywatch.sinks.embedded_redis import EmbeddedRedis

RUNS = (("-w 1", ["-w", "1"]), ("-w 2", ["-w", "2"]), ("-p 2", ["-p", "2"]))


def work_orders(url: str) -> dict[str, tuple[str, ...]]:
    """Every work order with the ids of the alerts merged into it."""
    client = redis.Redis.from_url(url, decode_responses=True)
    out: dict[str, tuple[str, ...]] = {}
    for key in client.scan_iter(match="{cw}:wo:{*}", _type="hash"):
        alerts = client.lrange(key + ":alerts", 0, -1)
        out[str(client.hget(key, "id") or key)] = tuple(
            sorted(orjson.loads(a)["id"] for a in alerts)
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=int, default=150)
    ap.add_argument("--seed", type=int, default=12)
    args = ap.parse_args(argv)
    cfg = load_config()
    work = Path(tempfile.mkdtemp(prefix="citywatch-kdet-"))
    rec = work / "r.jsonl"
    generate(load_reference(cfg), GenParams(minutes=args.minutes, seed=args.seed), rec, None)
    mock = Producer({"test.mock.num.brokers": 3, "log_level": 2})
    brokers = mock.list_topics(timeout=10).brokers.values()
    bootstrap = ",".join(f"{b.host}:{b.port}" for b in brokers)
    produce_recording([rec], dataclasses.replace(cfg.kafka, bootstrap=bootstrap))
    results: dict[str, dict[str, tuple[str, ...]]] = {}
    with EmbeddedRedis() as server:
        for db, (name, flags) in enumerate(RUNS, start=1):
            url = server.url.rsplit("/", 1)[0] + f"/{db}"
            t0 = time.perf_counter()
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "citywatch.flows.cli",
                    "run",
                    "--bootstrap",
                    bootstrap,
                    "--redis-url",
                    url,
                    "--recovery-dir",
                    str(work / f"rec-{db}"),
                    "--metrics-port",
                    "0",
                    "--timers",
                    "event",
                    "--stop-at-end",
                    *flags,
                ],
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
            if proc.returncode != 0:
                print(proc.stderr[-3000:], file=sys.stderr)
                return 1
            results[name] = work_orders(url)
            print(
                f"{name}: {len(results[name])} work orders, "
                f"{sum(len(v) for v in results[name].values())} alerts, "
                f"{time.perf_counter() - t0:.1f}s"
            )
    base = results["-w 1"]
    same = all(r == base for r in results.values())
    for name, r in results.items():
        if r != base:
            print(f"{name} differs: {sorted(set(r) ^ set(base))[:6]}")
    print("identical work orders and alerts in every run" if same else "DIFFERENT")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
