"""Live latency: from an event's ingest into Kafka to its work order in Redis, per kind.

    recording (city mix) ──paced producer──► librdkafka mock cluster (3 brokers)
    probes (geofence.enter) ──stamped producer──┘   │
                          citywatch run --timers wall  (a subprocess, as in production)
                                                │
                                           Redis work orders ──► audit streams

The producer sends the recording paced at ``--rate`` events a second (the
speed-up over the recording's own rate is printed). A generated mix is sent as
the network delivered it: each line at its arrival time (the generator's
``arrivals``: true time plus network delay), not at its stamp, which a skewed
gateway's clock moves by seconds (pacing by stamps held every line behind one
that ran 5 s ahead). A line with arrival ``a`` enters Kafka at
``t0 + (a - a0) / speed`` of wall time. Every alert written to a work order is
timed by when Redis wrote it (its audit entry's id, the server's clock); its latency
is that time minus the wall time its condition was ingested. An alert's ``ts`` is in its
source's clock: for per-event kinds the triggering event's stamp, for windowed and
absence kinds when the condition became true (a gap: the last fix plus the
allowed silence), so it is moved onto the ingest timeline by how far the
subject's latest line at or before ``ts`` was ingested after its own stamp (for
a gap: that last fix's skew and network delay). The latency of a windowed kind is
then the delay beyond its condition as the flow could first know it; each is also
printed ``(from its stamp)``, measured from ``ts`` as is. Prints n,
p50/p95/p99/max per kind.

A 20-minute city mix holds only a handful of injected incidents, too few for a
p99. So a second producer injects **probes** while the mix flows: ``--probes-per-s``
muck trucks (``probe-NNNNN``), each one fix ~150 m outside an airport-site or levee
zone and one ~100 m inside it 10 s of event time later, which is a ``geofence.enter``
decided by that one event. Its event time is the recording's clock at the moment
it is sent and its latency is measured from the wall time of that send, so the
producer's own pacing lag is not counted. Probes are reported on their own line.

Where the time goes: the flow's Prometheus histogram
``citywatch_ingest_to_dispatch_seconds`` (a batch read off Kafka -> its work
orders written) is the time spent in the flow's stages; the rest of an alert's
latency is input backlog (waiting in Kafka to be read). The consumer lag (messages
on the broker not yet read, summed over partitions) is sampled every second.

    python -m citywatch.benchmarks.live_latency --minutes 12 --rate 10000 --max-future-s 3600
    python -m citywatch.benchmarks.live_latency --minutes 15 --speed 1      # x1: live

Faster than x1 the event time outruns the wall clock: the future-timestamp guard
must be widened (``--max-future-s``), and the absence kinds, whose timers run on the
wall clock in a live run, are not comparable (their latencies come out negative).

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
import urllib.request
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import redis
from confluent_kafka import Producer

from citywatch.benchmarks.live_input import (
    PROBE,
    Ingest,
    Probes,
    first_ts,
    pacing_times,
    probe_points,
    span_s,
    with_arrivals,
)
from citywatch.detectors.events import parse_ts
from citywatch.flows.config import DEFAULT_CONFIG, load_config
from citywatch.flows.kafka_io import produce_recording
from citywatch.flows.live import free_ports
from citywatch.replay.generator import GenParams, generate
from citywatch.sinks.embedded_redis import EmbeddedRedis
from citywatch.sinks.keys import Keys

PER_EVENT = ("geofence.enter", "geofence.exit", "geofence.cross", "sensor.threshold", "video.")
LATENCY_METRIC = "citywatch_ingest_to_dispatch_seconds"
LAG_METRIC = "citywatch_consumer_lag_messages"
BY_STAMP = "(from its stamp)"  # a windowed kind measured from its source's clock as is
BY_SEND = "(from its last line's actual send)"  # not the arrival time it was to be sent at
TIMELINE = "~"  # latencies of the probes sent in each 10 s of the run (kept apart)
GAPLINE = "@"  # the probes' track.gap by 30 s of the run their deadline fell in (kept apart)


def _scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    """The flow's Prometheus samples by metric name: ``[(labels, value)]``."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()  # noqa: S310
    out: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for line in text.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name, _, rest = head.partition("{")
        pairs = (x.partition("=") for x in rest.rstrip("}").split(",") if x)
        labels = {k: v.strip('"') for k, _, v in pairs}
        out[name].append((labels, float(value)))
    return out


Samples = list[tuple[dict[str, str], float]]


def _histogram_quantiles(samples: Samples, qs: tuple[float, ...]) -> list[str]:
    """Upper bucket bounds holding each quantile (``<= 0.25`` s), from cumulative buckets."""
    buckets = sorted((float(lb["le"]), v) for lb, v in samples)
    total = buckets[-1][1] if buckets else 0.0
    out = []
    for q in qs:
        le = next((b for b, c in buckets if total and c >= q * total), float("inf"))
        out.append(f"<= {le:g} s")
    return out


def _percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def _latencies(
    url: str,
    keys: Keys,
    t0_ms: float,
    ts0: int,
    speed: float,
    probes: dict[str, float],
    ingest: Ingest,
    dump: Path | None = None,
) -> dict[str, list[float]]:
    """Per kind: ingest-to-Redis latency (ms) of every alert written to a work order, to
    the moment Redis wrote its audit line (the entry's id);
    probes (``probes``: entity -> wall ms of its send) under ``probe <kind>``. An alert
    counts once, at its first dispatch: when an incident later absorbs another, the
    absorbed order's alerts are written again under the survivor, and that copy is not
    when an officer first saw them. With ``dump``, one JSON line per alert written
    there: its latency, its first dispatch's time and work order, and the alert."""
    client = redis.Redis.from_url(url, decode_responses=True)
    first: dict[str, tuple[int, str, dict[str, Any]]] = {}  # alert id -> (at, wo, alert)
    for wo in [str(x) for x in client.zrange(keys.index(), 0, -1)]:
        docs: list[str] = client.lrange(keys.alerts(wo), 0, -1)  # type: ignore[assignment]
        alerts = {a["id"]: a for a in map(orjson.loads, docs)}
        entries: list[tuple[str, dict[str, str]]] = client.xrange(keys.audit(wo))  # type: ignore[assignment]
        for _id, f in entries:
            if f.get("action") not in ("created", "alert_merged") or f.get("alert") not in alerts:
                continue
            # When Redis wrote it: the audit entry's id (the server's clock, the same
            # machine's), not the dispatch's own stamp (``at``, taken before the write:
            # a batch of hundreds of work orders is written after it).
            at = int(_id.split("-", 1)[0])
            seen = first.get(f["alert"])
            if seen is None or at < seen[0]:
                first[f["alert"]] = (at, wo, alerts[f["alert"]])
    rows: list[bytes] = []
    out: dict[str, list[float]] = defaultdict(list)
    for at, wo, a in sorted(first.values(), key=lambda x: x[0]):
        if a["subject"].startswith(PROBE) and a["kind"] == "geofence.enter":
            if a["subject"] in probes:
                sent = probes[a["subject"]]
                ms = at - sent
                out[f"probe {a['kind']}"].append(ms)
                out[f"{TIMELINE}{int((sent - t0_ms) // 10_000):04d}"].append(ms)
                rows.append(orjson.dumps({"ms": ms, "at": at, "wo": wo, "alert": a}))
            continue
        ts = parse_ts(a["ts"])
        due = t0_ms + (ingest.of(a["subject"], ts) - ts0) / speed
        tag = "probe " if a["subject"].startswith(PROBE) else ""  # e.g. its track.gap
        out[tag + a["kind"]].append(at - due)
        if not tag and not a["kind"].startswith(PER_EVENT):
            out[f"{a['kind']} {BY_STAMP}"].append(at - (t0_ms + (ts - ts0) / speed))
        rows.append(orjson.dumps({"ms": at - due, "at": at, "wo": wo, "alert": a}))
        if tag and a["kind"] == "track.gap":
            out[f"{GAPLINE}{int((due - t0_ms) // 30_000):04d}"].append(at - due)
    if dump is not None:
        dump.write_bytes(b"\n".join(rows) + b"\n" if rows else b"")
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


@dataclasses.dataclass
class Result:
    latencies: dict[str, list[float]]
    notes: list[str]


def _lag_sampler(port: int, stop: threading.Event, peaks: list[float]) -> threading.Thread:
    """Samples the consumer lag (summed over partitions) every second into ``peaks``."""

    def sample() -> None:
        while not stop.wait(1.0):
            try:
                lag = sum(v for _, v in _scrape(port).get(LAG_METRIC, []))
            except OSError:
                continue
            peaks.append(lag)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    return t


def _flow_notes(port: int, lag: list[float]) -> list[str]:
    samples = _scrape(port)
    hist = samples.get(f"{LATENCY_METRIC}_bucket", [])
    count = sum(v for _, v in samples.get(f"{LATENCY_METRIC}_count", []))
    total = sum(v for _, v in samples.get(f"{LATENCY_METRIC}_sum", []))
    q = _histogram_quantiles(hist, (0.5, 0.95, 0.99))
    mean = f"{total / count * 1000:.0f} ms" if count else "-"
    lag_s = sorted(lag)
    return [
        f"in the flow (read off Kafka -> written to Redis), {count:.0f} dispatches: "
        f"mean {mean}, p50 {q[0]}, p95 {q[1]}, p99 {q[2]}",
        f"consumer lag (messages not yet read, sampled each second): "
        f"median {_percentile(lag_s, 50) if lag_s else 0:,.0f}, max {max(lag_s, default=0):,.0f}",
    ]


def run(args: argparse.Namespace) -> Result:
    cfg = load_config(args.config)
    keys = Keys(cfg.redis.prefix)
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
        # Faster than x1 the guard is widened to let event time outrun the wall clock;
        # it would then let the mix's stepped gateway clocks (hours ahead) through too,
        # and they would make every later event late: leave the steps out then.
        gen = GenParams(minutes=args.minutes, seed=5, scale="city", start=start.isoformat())
        if args.max_future_s:
            gen = dataclasses.replace(gen, clock_steps_pct=0.0)
        arrivals: list[tuple[int, int]] = []
        generate(load_reference(cfg), gen, work / "city-stamped.jsonl", arrivals=arrivals)
        with_arrivals(work / "city-stamped.jsonl", arrivals, rec)
    ts0, n = first_ts(rec)
    span = max(1.0, span_s(rec))
    speed = args.speed if args.speed else args.rate / (n / span)
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
    [port] = free_ports(1)
    with EmbeddedRedis() as server:
        env = dict(os.environ)
        if args.pythonpath:
            env["PYTHONPATH"] = args.pythonpath
        cmd = [
            sys.executable, "-m", "citywatch.flows.cli", "run", "--bootstrap", bootstrap,
            "--redis-url", server.url, "--recovery-dir", str(work / "rec"), "--timers", "wall",
            "--metrics-port", str(port),
        ]  # fmt: skip
        if args.config:
            cmd += ["--config", str(args.config.resolve())]
        log: list[bytes] = []
        # Run in the work folder: started from a checkout, Python would import that
        # checkout's package (the current folder comes first) and ignore --pythonpath.
        proc = subprocess.Popen(  # noqa: S603
            cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env, cwd=work
        )
        if not _wait_for(proc, b'"started"', log).wait(120):
            proc.kill()
            raise SystemExit(b"".join(log[-20:]).decode(errors="replace"))
        wait = ts0 / 1000 - time.time()
        if wait > 0:
            time.sleep(wait)
        else:
            print(f"starting {-wait:.1f} s after the first event time", flush=True)
        t0_ms = time.time() * 1000

        def clock() -> float:  # the recording's event time now
            return ts0 + (time.time() * 1000 - t0_ms) * speed

        stop, lag = threading.Event(), list[float]()
        sampler = _lag_sampler(port, stop, lag)
        probes = Probes(bootstrap, settings.gps_topic, probe_points(cfg),
                        args.probes_per_s, clock, in_order=args.probes_in_order,
                        wall_gap_s=10.0 / speed)  # fmt: skip
        cpu0 = _cpu_s(proc.pid), time.monotonic()
        sent: list[float] = []  # when each line was handed to the producer (wall s)
        with probes:
            produce_recording([rec], settings, speed=speed, sent=sent)
        print(f"produced in {time.time() - t0_ms / 1000:.1f} s, {len(probes.sent):,} probes",
              flush=True)  # fmt: skip
        cpu1 = _cpu_s(proc.pid), time.monotonic()
        client = redis.Redis.from_url(server.url)
        last, still = -1, 0.0
        ended = time.monotonic()
        while still < args.settle_s:  # until the live feed is quiet for settle_s
            if args.after_s is not None and time.monotonic() - ended >= args.after_s:
                break
            time.sleep(1)
            count = client.xlen(keys.feed())
            still = still + 1 if count == last else 0.0
            last = count
        stop.set()
        sampler.join(5)
        cpu2 = _cpu_s(proc.pid), time.monotonic()
        notes = _flow_notes(port, lag)
        notes.append(
            "flow CPU (the run's process, user + system): "
            f"{cpu1[0] - cpu0[0]:.1f} s in the {cpu1[1] - cpu0[1]:.0f} s the input flowed "
            f"({(cpu1[0] - cpu0[0]) / max(cpu1[1] - cpu0[1], 1e-9):.2f} of a core), "
            f"{cpu2[0] - cpu1[0]:.1f} s in the {cpu2[1] - cpu1[1]:.0f} s after it "
            f"({(cpu2[0] - cpu1[0]) / max(cpu2[1] - cpu1[1], 1e-9):.2f} of a core)"
        )
        lat = _latencies(server.url, keys, t0_ms, ts0, speed, probes.sent, Ingest(rec), args.dump)
        _by_actual_send(server.url, keys, rec, sent, (t0_ms, ts0, speed), lat, notes)
        if proc.poll() is not None:
            tail = b"".join(log[-30:]).decode(errors="replace")
            raise SystemExit(f"the flow failed (exit {proc.returncode}):\n{tail}")
        _stop(proc, notes)
        return Result(lat, notes)


def _by_actual_send(
    url: str,
    keys: Keys,
    rec: Path,
    sent: list[float],
    clock: tuple[float, int, float],
    lat: dict[str, list[float]],
    notes: list[str],
) -> None:
    """The windowed kinds again, timed from when each line was actually handed to the
    producer (``sent``, wall s) instead of the arrival time it was to be sent at, and
    the producer's lateness: how much of their delay is the benchmark's own."""
    t0_ms, ts0, speed = clock
    pairs = zip(sent, pacing_times(rec), strict=True)
    late = sorted(s * 1e3 - (t0_ms + (a - ts0) / speed) for s, a in pairs)
    if not late:
        return
    notes.append(
        "the producer's lateness against the recording's arrival times (ms): "
        f"p50 {_percentile(late, 50):.0f}, p99 {_percentile(late, 99):.0f}, max {late[-1]:.0f}"
    )
    actual = [round(ts0 + (s * 1000 - t0_ms) * speed) for s in sent]
    real = _latencies(url, keys, t0_ms, ts0, speed, {}, Ingest(rec, actual))
    for kind, xs in real.items():
        if kind.startswith(("probe", TIMELINE, GAPLINE, *PER_EVENT)) or BY_STAMP in kind:
            continue
        lat[f"{kind} {BY_SEND}"] = xs


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stop(proc: subprocess.Popen[bytes], notes: list[str]) -> None:
    """SIGTERM (the flow snapshots and stops), again after 120 s, then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, 120), (signal.SIGTERM, 30), (signal.SIGKILL, 30)):
        proc.send_signal(sig)
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            notes.append(f"the flow did not stop within {wait} s of {sig.name}")
            continue
        return


def report(result: Result, label: str) -> str:
    lat = result.latencies
    rows = [f"{label}: ingest -> work order in Redis, ms", "kind | n | p50 | p95 | p99 | max"]
    for kind in sorted(k for k in lat if not k.startswith((TIMELINE, GAPLINE))):
        xs = lat[kind]
        tag = " (per-event)" if kind.startswith(PER_EVENT) else ""
        rows.append(
            f"{kind}{tag} | {len(xs)} | {_percentile(xs, 50):.0f} | {_percentile(xs, 95):.0f} "
            f"| {_percentile(xs, 99):.0f} | {max(xs):.0f}"
        )
    windows = sorted(k for k in lat if k.startswith(TIMELINE))
    if windows:
        rows.append(
            "probes by 10 s of the run (max ms): " + " ".join(f"{max(lat[k]):.0f}" for k in windows)
        )
    gaps = sorted(k for k in lat if k.startswith(GAPLINE))
    if gaps:
        rows.append(
            "probes' track.gap by 30 s of the run its deadline fell in (s of the run: n, "
            "p50 / max ms): "
            + "; ".join(
                f"{int(k[1:]) * 30}: {len(lat[k])}, {_percentile(lat[k], 50):.0f} / "
                f"{max(lat[k]):.0f}"
                for k in gaps
            )
        )
    return "\n".join([*rows, *result.notes])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recording", type=Path, default=None, help="else a city-mix recording")
    ap.add_argument("--minutes", type=int, default=12, help="event minutes to generate")
    ap.add_argument("--rate", type=float, default=10_000.0, help="events a second into Kafka")
    ap.add_argument(
        "--speed", type=float, default=None,
        help="pace at this multiple of real time instead of --rate (1: live, x1)",
    )  # fmt: skip
    ap.add_argument("--config", type=Path, default=None)
    ap.add_argument("--pythonpath", default=None, help="run the flow from this code")
    ap.add_argument("--label", default="citywatch")
    ap.add_argument(
        "--dump", type=Path, default=None,
        help="write every alert written to a work order here, one JSON line each: its "
        "latency (ms), the dispatch's time and the alert",
    )  # fmt: skip
    ap.add_argument("--settle-s", type=float, default=20.0, help="quiet time that ends it")
    ap.add_argument(
        "--after-s", type=float, default=None,
        help="stop this long after the input ended even if the feed is not quiet (the "
        "mix's sensors go offline for many minutes after it)",
    )  # fmt: skip
    ap.add_argument(
        "--probes-in-order",
        action="store_true",
        help="send each probe's outside fix at its own time, 10 s before the inside one "
        "(else both together, the outside one 10 s after its stamp)",
    )
    ap.add_argument(
        "--probes-per-s", type=float, default=5.0,
        help="geofence.enter probes injected a second while the mix flows (0: none)",
    )  # fmt: skip
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
