"""Live latency: from an event's ingest into Kafka to its work order in Redis, per kind.

    recording (city mix) ──paced producer──► librdkafka mock cluster (3 brokers)
                                                │
                          citywatch run --timers wall  (a subprocess, as in production)
                                                │
                                           Redis work orders ──► audit streams

The producer sends the recording paced at ``--rate`` events a second (the
speed-up over the recording's own rate is printed), so an event with time
``ts`` enters Kafka at ``t0 + (ts - ts0) / speed`` of wall time. Every alert
written to a work order is stamped by the dispatch script (its audit entry's
``at``); its latency is that stamp minus the wall time its ``ts`` was
ingested. For per-event kinds ``ts`` is the triggering event; for windowed and
absence kinds it is when the condition became true, so the latency is the
delay beyond the condition. Prints p50/p95/p99/max per kind.

    python -m citywatch.benchmarks.live_latency --minutes 12 --rate 10000

``--pythonpath DIR`` runs the flow from another copy of the code (a package
folder named ``citywatch``), to measure an older design on the same input.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import redis
from confluent_kafka import Producer

from citywatch.detectors.events import parse_ts
from citywatch.flows.config import DEFAULT_CONFIG, load_config
from citywatch.flows.kafka_io import produce_recording
from citywatch.replay.generator import GenParams, generate
from citywatch.replay.recording import iter_lines, unwrap
from citywatch.sinks.embedded_redis import EmbeddedRedis
from citywatch.sinks.keys import Keys

PER_EVENT = ("geofence.enter", "geofence.exit", "geofence.cross", "sensor.threshold", "video.")


def _first_ts(path: Path) -> tuple[int, int]:
    """The first event time of the recording (what the producer paces from), and the count."""
    first: int | None = None
    n = 0
    for line in iter_lines(path):
        n += 1
        if first is None:
            raw, _, _ = unwrap(line)
            try:
                obj = orjson.loads(raw)
                first = parse_ts(obj["ts"]) if isinstance(obj, dict) and "ts" in obj else None
            except Exception:  # noqa: BLE001 - a corrupt line is sent unpaced; skip it here
                first = None
    if first is None:
        msg = f"{path}: no event with a time"
        raise SystemExit(msg)
    return first, n


def _span_s(path: Path) -> float:
    times = []
    for line in iter_lines(path):
        raw, _, _ = unwrap(line)
        try:
            obj = orjson.loads(raw)
            times.append(parse_ts(obj["ts"]))
        except Exception:  # noqa: BLE001, S112 - corrupt lines have no time
            continue
    return (max(times) - min(times)) / 1000.0


def _percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def _latencies(url: str, prefix: str, t0_ms: float, ts0: int, speed: float) -> dict[str, list]:
    """Per kind: ingest-to-Redis latency (ms) of every alert written to a work order."""
    client = redis.Redis.from_url(url, decode_responses=True)
    out: dict[str, list[float]] = defaultdict(list)
    ids: list[str] = [str(x) for x in client.zrange(Keys(prefix).index(), 0, -1)]
    for wo in ids:
        alerts: dict[str, Any] = {}
        docs: list[str] = client.lrange(Keys(prefix).alerts(wo), 0, -1)  # type: ignore[assignment]
        for doc in docs:
            a = orjson.loads(doc)
            alerts[a["id"]] = a
        entries: list[tuple[str, dict[str, str]]] = client.xrange(  # type: ignore[assignment]
            Keys(prefix).audit(wo)
        )
        for _id, f in entries:
            if f.get("action") not in ("created", "alert_merged") or f.get("alert") not in alerts:
                continue
            a = alerts[f["alert"]]
            due = t0_ms + (parse_ts(a["ts"]) - ts0) / speed
            out[a["kind"]].append(int(f["at"]) - due)
    return out


def _wait_for(proc: subprocess.Popen[bytes], needle: bytes, log: list[bytes]) -> threading.Event:
    seen = threading.Event()

    def drain() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            log.append(line)
            if needle in line:
                seen.set()

    threading.Thread(target=drain, daemon=True).start()
    return seen


def _config_with(path: Path | None, max_future_s: int, work: Path) -> Path:
    """A copy of the config (data paths made absolute) with ``[flow] max_future_s`` set."""
    src = path or DEFAULT_CONFIG
    doc = tomllib.loads(src.read_text())
    lines, section = [], ""
    for line in src.read_text().splitlines():
        if line.startswith("["):
            section = line.split("]")[0] + "]"
        key = line.split("=")[0].strip()
        if section == "[data]" and key in doc.get("data", {}):
            line = f'{key} = "{(src.parent / doc["data"][key]).resolve()}"'
        if section == "[flow]" and key == "max_future_s":
            continue
        lines.append(line)
        if line.strip() == "[flow]":
            lines.append(f"max_future_s = {max_future_s}")
    out = work / "citywatch.toml"
    out.write_text("\n".join(lines) + "\n")
    return out


def run(args: argparse.Namespace) -> dict[str, list[float]]:
    cfg = load_config(args.config)
    work = Path(tempfile.mkdtemp(prefix="citywatch-latency-"))
    if args.max_future_s is not None:
        args.config = _config_with(args.config, args.max_future_s, work)
    rec = args.recording
    # Event time starts a little ahead, so that everything is ready when it comes due:
    # the flow's wall-clock timers must not find the events in the past.
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=args.lead_s)
    if rec is None:
        from citywatch.flows.runner import load_reference

        rec = work / "city.jsonl"
        gen = GenParams(minutes=args.minutes, seed=5, scale="city", start=start.isoformat())
        generate(load_reference(cfg), gen, rec)
    ts0, n = _first_ts(rec)
    span = max(1.0, _span_s(rec))
    speed = args.rate / (n / span)
    print(f"{n:,} events over {span:.0f} s of event time; speed x{speed:.2f}", flush=True)
    mock = Producer({"test.mock.num.brokers": 3, "log_level": 2})
    bootstrap = ",".join(
        f"{b.host}:{b.port}" for b in mock.list_topics(timeout=10).brokers.values()
    )
    topics = [*cfg.kafka.topics(), cfg.kafka.dlq_topic]
    for topic in topics:  # a metadata request auto-creates it (4 partitions)
        for _ in range(50):
            md = mock.list_topics(topic=topic, timeout=10).topics.get(topic)
            if md is not None and md.error is None and md.partitions:
                break
            time.sleep(0.2)
    settings = dataclasses.replace(cfg.kafka, bootstrap=bootstrap)
    with EmbeddedRedis() as server:
        env = dict(os.environ)
        if args.pythonpath:
            env["PYTHONPATH"] = args.pythonpath
        cmd = [
            sys.executable, "-m", "citywatch.flows.cli", "run", "--bootstrap", bootstrap,
            "--redis-url", server.url, "--recovery-dir", str(work / "rec"), "--timers", "wall",
            "--metrics-port", "0",
        ]  # fmt: skip
        if args.config:
            cmd += ["--config", str(args.config)]
        log: list[bytes] = []
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env)  # noqa: S603
        if not _wait_for(proc, b'"started"', log).wait(120):
            proc.kill()
            raise SystemExit(b"".join(log[-20:]).decode(errors="replace"))
        wait = ts0 / 1000 - time.time()
        if wait > 0:
            time.sleep(wait)
        else:
            print(f"starting {-wait:.1f} s after the first event time", flush=True)
        t0_ms = time.time() * 1000
        produce_recording([rec], settings, speed=speed)
        print(f"produced in {time.time() - t0_ms / 1000:.1f} s", flush=True)
        client = redis.Redis.from_url(server.url)
        index, last, still = Keys(cfg.redis.prefix).index(), -1, 0.0
        while still < args.settle_s:  # until no new work order for settle_s
            time.sleep(1)
            count = client.zcard(index)
            still = still + 1 if count == last else 0.0
            last = count
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        if proc.returncode != 0:
            tail = b"".join(log[-30:]).decode(errors="replace")
            raise SystemExit(f"the flow failed (exit {proc.returncode}):\n{tail}")
        return _latencies(server.url, cfg.redis.prefix, t0_ms, ts0, speed)


def report(lat: dict[str, list[float]], label: str) -> str:
    rows = [f"{label}: ingest -> work order in Redis, ms", "kind | n | p50 | p95 | p99 | max"]
    for kind in sorted(lat):
        xs = lat[kind]
        tag = " (per-event)" if kind.startswith(PER_EVENT) else ""
        rows.append(
            f"{kind}{tag} | {len(xs)} | {_percentile(xs, 50):.0f} | {_percentile(xs, 95):.0f} "
            f"| {_percentile(xs, 99):.0f} | {max(xs):.0f}"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recording", type=Path, default=None, help="else a city-mix recording")
    ap.add_argument("--minutes", type=int, default=12, help="event minutes to generate")
    ap.add_argument("--rate", type=float, default=10_000.0, help="events a second into Kafka")
    ap.add_argument("--config", type=Path, default=None)
    ap.add_argument("--pythonpath", default=None, help="run the flow from this code")
    ap.add_argument("--label", default="citywatch")
    ap.add_argument("--settle-s", type=float, default=20.0, help="quiet time that ends it")
    ap.add_argument(
        "--lead-s", type=float, default=120.0, help="first event time: now + this (generated)"
    )
    ap.add_argument(
        "--max-future-s",
        type=int,
        default=None,
        help="run with this [flow] max_future_s (paced faster than x1, event time outruns "
        "the wall clock; leave unset for a design without the guard)",
    )
    args = ap.parse_args(argv)
    print(report(run(args), args.label))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
