"""Kafka → Redis throughput of ``citywatch run`` (1 worker, -w 2, -p 2) and crash recovery time.

Against librdkafka's mock cluster (3 brokers, in this process) and a real
redis-server. A recording is produced once into the three topics; each
configuration then runs ``citywatch run --stop-at-end`` as a subprocess with
a fresh recovery directory and Redis database, ``--repeat`` times. Reported:
events/s over the flow's own run time (from the JSON "finished" log: Kafka
partitions assigned to the last work order written) and over the process
wall time (including Python start-up). Each run must read every message and
give the same work orders as the first, else the benchmark fails.

Recovery: a run is killed with SIGKILL ``--kill-after`` seconds in, then
restarted on the same recovery directory; reported are the time from the
restart until its partitions are assigned at their snapshot offsets (state
restored) and until the run has finished the remainder.

    python -m citywatch.benchmarks.kafka_throughput [--minutes 150] [--repeat 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import redis
from confluent_kafka import Producer

from citywatch.flows.config import load_config
from citywatch.flows.kafka_io import produce_recording
from citywatch.flows.runner import load_reference
from citywatch.replay.generator import GenParams, generate
from citywatch.sinks.embedded_redis import EmbeddedRedis


def _cmd(bootstrap: str, url: str, rec: Path, *extra: str) -> list[str]:
    return [
        *(sys.executable, "-m", "citywatch.flows.cli", "run", "--bootstrap", bootstrap),
        *("--redis-url", url, "--recovery-dir", str(rec), "--metrics-port", "0"),
        *("--timers", "event", "--stop-at-end", *extra),
    ]


def _logs(stderr: str) -> list[dict[str, Any]]:
    out = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            try:
                out.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue
    return out


def _message(doc: dict[str, Any]) -> Any:
    """A JSON log line's message (``msg`` in lines of older citywatch versions)."""
    return doc.get("message", doc.get("msg"))


def _ts(doc: dict[str, Any]) -> float:
    return datetime.fromisoformat(doc["ts"].replace("Z", "+00:00")).timestamp()


def _work_orders(url: str) -> set[str]:
    client = redis.Redis.from_url(url, decode_responses=True)
    return {
        k for k in client.scan_iter("{cw}:wo:*") if k.endswith("}") and client.type(k) == "hash"
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=int, default=150)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--kill-after", type=float, default=0.5, help="seconds after a third of the work orders"
    )
    args = ap.parse_args(argv)

    cfg = load_config()
    work = Path(tempfile.mkdtemp(prefix="cw-kbench-"))
    rec = work / "r.jsonl"
    generate(load_reference(cfg), GenParams(minutes=args.minutes, seed=args.seed), rec, None)
    mock = Producer({"test.mock.num.brokers": 3, "log_level": 2})
    bootstrap = ",".join(
        f"{b.host}:{b.port}" for b in mock.list_topics(timeout=10).brokers.values()
    )
    sent = produce_recording([rec], dataclasses.replace(cfg.kafka, bootstrap=bootstrap))
    assert sent.failed == 0
    print(f"produced {sent.messages:,} messages ({sent.by_topic}) in {sent.seconds:.1f}s")

    configs = {"1 worker": ["-w", "1"], "-w 2": ["-w", "2"], "-p 2": ["-p", "2"]}
    flow_rates: dict[str, list[float]] = {k: [] for k in configs}
    wall_rates: dict[str, list[float]] = {k: [] for k in configs}
    expected: set[str] | None = None
    same: dict[str, list[bool]] = {k: [] for k in configs}
    db = 0
    with EmbeddedRedis() as server:
        base = server.url.rsplit("/", 1)[0]
        for rnd in range(args.repeat):
            for name, extra in configs.items():  # side by side in each round
                db += 1
                url = f"{base}/{db % 16}"
                redis.Redis.from_url(url).flushdb()
                rdir = work / f"rec-{rnd}-{db}"
                t0 = time.perf_counter()
                proc = subprocess.run(
                    _cmd(bootstrap, url, rdir, *extra), capture_output=True, text=True
                )
                wall = time.perf_counter() - t0
                assert proc.returncode == 0, proc.stderr[-3000:]
                fin = [d for d in _logs(proc.stderr) if _message(d) == "finished"]
                events = sum(d["events_in"] for d in fin)
                assert events == sent.messages, (name, events, sent.messages)
                secs = max(d["seconds"] for d in fin)
                flow_rates[name].append(events / secs)
                wall_rates[name].append(events / wall)
                wos = _work_orders(url)
                assert wos, f"{name}: no work orders"
                if expected is None:
                    expected = wos
                same[name].append(wos == expected)
                print(
                    f"round {rnd + 1} {name}: {events / secs:,.0f} ev/s flow, {wall:.1f}s wall, "
                    f"{len(wos)} work orders ({'same as' if wos == expected else 'DIFFER from'} "
                    "the first 1-worker run)"
                )

        # Recovery after kill -9.
        assert expected is not None
        resume_s: list[float] = []
        crash_same: list[bool] = []
        finish_s: list[float] = []
        for rnd in range(args.repeat):
            db += 1
            url = f"{base}/{db % 16}"
            redis.Redis.from_url(url).flushdb()
            rdir = work / f"crash-{rnd}"
            slow = ("--batch-size", "100", "--snapshot-interval", "1")
            victim = subprocess.Popen(
                _cmd(bootstrap, url, rdir, *slow),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            # Kill once a third of the work orders are out: mid-run whatever the load.
            while victim.poll() is None and len(_work_orders(url)) < len(expected) // 3:
                time.sleep(0.05)
            time.sleep(args.kill_after)
            assert victim.poll() is None, "the run ended before the kill; raise --minutes"
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            t0 = time.time()
            proc = subprocess.run(_cmd(bootstrap, url, rdir, *slow), capture_output=True, text=True)
            done = time.time()
            assert proc.returncode == 0, proc.stderr[-3000:]
            logs = _logs(proc.stderr)
            assigned = [_ts(d) for d in logs if _message(d) == "partition assigned"]
            resumed = [d for d in logs if _message(d) == "partition assigned" and d["offset"]]
            assert resumed, "the restart did not resume from stored offsets"
            crash_same.append(_work_orders(url) == expected)
            resume_s.append(max(assigned) - t0)
            finish_s.append(done - t0)
            print(f"crash {rnd + 1}: resumed {resume_s[-1]:.2f}s, done {finish_s[-1]:.2f}s")
    shutil.rmtree(work, ignore_errors=True)

    base_rate = statistics.median(flow_rates["1 worker"])
    print(
        "\n| configuration | events/s (flow, median) | events/s (wall, median) | vs 1 worker "
        "| runs with the first run's work orders |"
    )
    print("|---|---:|---:|---:|---:|")
    for name in configs:
        f, w = statistics.median(flow_rates[name]), statistics.median(wall_rates[name])
        print(
            f"| {name} | {f:,.0f} | {w:,.0f} | {f / base_rate:.2f}x "
            f"| {sum(same[name])}/{len(same[name])} |"
        )
    print(
        f"\nrecovery after kill -9 mid-run (median of {args.repeat}): "
        f"restart → state and offsets restored {statistics.median(resume_s):.2f}s; "
        f"restart → remainder done {statistics.median(finish_s):.2f}s; "
        f"work orders equal to the uninterrupted run in {sum(crash_same)}/{len(crash_same)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
