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
stamped by the dispatch script (its audit entry's ``at``); its latency is that
stamp minus the wall time its condition was ingested. An alert's ``ts`` is in its
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
import bisect
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
from collections import defaultdict, deque
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import redis
from confluent_kafka import Producer

from citywatch.detectors.events import format_ts, parse_ts
from citywatch.flows.config import DEFAULT_CONFIG, load_config
from citywatch.flows.kafka_io import produce_recording
from citywatch.flows.live import free_ports
from citywatch.replay.generator import GenParams, generate
from citywatch.replay.recording import RecordingWriter, iter_lines, unwrap
from citywatch.sinks.embedded_redis import EmbeddedRedis
from citywatch.sinks.keys import Keys

PER_EVENT = ("geofence.enter", "geofence.exit", "geofence.cross", "sensor.threshold", "video.")
PROBE = "probe-"  # the probes' entity ids
PROBE_ZONE_KINDS = ("airport_site", "levee")  # muck trucks may not enter these
LATENCY_METRIC = "citywatch_ingest_to_dispatch_seconds"
LAG_METRIC = "citywatch_consumer_lag_messages"
BY_STAMP = "(from its stamp)"  # a windowed kind measured from its source's clock as is
BY_SEND = "(from its last line's actual send)"  # not the arrival time it was to be sent at
TIMELINE = "~"  # latencies of the probes sent in each 10 s of the run (kept apart)
GAPLINE = "@"  # the probes' track.gap by 30 s of the run their deadline fell in (kept apart)


class Probes:
    """Muck trucks driving into airport-site and levee zones, sent while the mix flows.

    Each probe is two fixes of a fresh entity: ~150 m outside a zone, then ~100 m
    inside it 10 s of event time later (event time: the recording's clock, ``clock()``). The
    wall time of sending the inside fix is kept per entity (``sent``, ms). With
    ``in_order`` each fix is sent when its time comes (``wall_gap_s`` apart), as a
    tracker would; otherwise both at once, the outside one 10 s after its stamp (so
    half the probe source's events arrive 10 s late)."""

    def __init__(
        self, bootstrap: str, topic: str, points: list[tuple[float, float, float, float]],
        per_s: float,
        clock: Any,
        *, in_order: bool = False, wall_gap_s: float = 10.0,
    ) -> None:  # fmt: skip
        self.points, self.per_s, self.clock, self.topic = points, per_s, clock, topic
        self.in_order, self.wall_gap_s = in_order, wall_gap_s
        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1})
        self.sent: dict[str, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _fix(self, entity: str, ts_ms: int, lon: float, lat: float) -> None:
        doc = {"type": "gps", "ts": format_ts(ts_ms), "src": "probe-gw", "entity": entity,
               "class": "muck_truck", "lon": round(lon, 6), "lat": round(lat, 6),
               "speed": 30.0}  # fmt: skip
        self.producer.produce(self.topic, orjson.dumps(doc), key=entity.encode())

    def _run(self) -> None:
        if self.in_order:
            self._run_in_order()
            return
        n, start = 0, time.monotonic()
        while not self.stop.is_set():
            due = start + n / self.per_s
            if (delay := due - time.monotonic()) > 0 and self.stop.wait(delay):
                break
            x0, y0, x1, y1 = self.points[n % len(self.points)]
            entity = f"{PROBE}{n:05d}"
            t = int(self.clock())
            # ~200 m in 10 s: no teleport, and within max_out_of_order_s, so not late
            self._fix(entity, t - 10_000, x0, y0)
            self.sent[entity] = time.time() * 1000
            self._fix(entity, t, x1, y1)
            self.producer.poll(0)
            n += 1
        self.producer.flush(30)

    def _run_in_order(self) -> None:
        """Each fix sent as its stamp comes due: the inside one ``wall_gap_s`` after the
        outside one (the probes started before the stop still get their inside fix)."""
        n, start = 0, time.monotonic()
        inside: deque[tuple[float, str, float, float]] = deque()
        while inside or not self.stop.is_set():
            now = time.monotonic()
            if inside and inside[0][0] <= now:
                _, entity, x1, y1 = inside.popleft()
                self.sent[entity] = time.time() * 1000
                self._fix(entity, int(self.clock()), x1, y1)
                self.producer.poll(0)
                continue
            due = start + n / self.per_s
            if self.stop.is_set() or due > now:
                wake = inside[0][0] if inside else due
                if self.stop.is_set():
                    time.sleep(max(0.0, wake - now))
                else:
                    self.stop.wait(max(0.0, min(wake, due) - now))
                continue
            x0, y0, x1, y1 = self.points[n % len(self.points)]
            entity = f"{PROBE}{n:05d}"
            self._fix(entity, int(self.clock()), x0, y0)
            inside.append((now + self.wall_gap_s, entity, x1, y1))
            self.producer.poll(0)
            n += 1
        self.producer.flush(30)

    def __enter__(self) -> Probes:
        if self.per_s > 0:
            self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(60)


def _probe_points(cfg: Any) -> list[tuple[float, float, float, float]]:
    """Per airport-site and levee zone: a point ~150 m outside its border and one ~100 m
    inside, across the border point nearest its representative point."""
    from shapely.geometry import Point

    from citywatch.flows.runner import load_reference

    out = []
    for z in load_reference(cfg).zones.zones:
        if z.kind not in PROBE_ZONE_KINDS:
            continue
        rep = z.geometry.representative_point()
        edge = z.geometry.boundary.interpolate(z.geometry.boundary.project(rep))
        dx, dy = edge.x - rep.x, edge.y - rep.y
        norm = max(1e-9, (dx * dx + dy * dy) ** 0.5)
        dx, dy = dx / norm, dy / norm
        outside = (edge.x + 0.0015 * dx, edge.y + 0.0015 * dy)
        if z.geometry.contains(Point(*outside)):
            continue
        for k in (0.001, 0.0005, 0.0002, 0.0001, 0.0):  # thin levees: closer to the edge
            inside = (edge.x - k * dx, edge.y - k * dy) if k else (rep.x, rep.y)
            if z.geometry.contains(Point(*inside)):
                out.append((*outside, *inside))
                break
    return out


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


def _with_arrivals(stamped: Path, arrivals: list[tuple[int, int]], out: Path) -> None:
    """``stamped`` as a recording of envelopes carrying each line's ``arrival_ms`` (the
    generator's ``arrivals``), so that the producer sends each line when the network
    delivered it, not when its stamp says: a gateway whose clock runs ahead must not
    hold back every line behind it, as pacing by stamps would."""
    with RecordingWriter(out) as w:
        for i, line in enumerate(iter_lines(stamped)):
            arrival, _true = arrivals[i]
            env = {"kafka": {"arrival_ms": arrival}, "value": line.decode(errors="replace")}
            w.write_line(orjson.dumps(env))


class Ingest:
    """When each subject's lines reach Kafka (their ``arrival_ms``, else their stamp),
    against their stamps: an alert's time is in its source's clock, its ingest time
    is that time plus how far the subject's latest line at or before it was ingested
    after its own stamp (the gateway's clock skew and the network's delay)."""

    def __init__(self, path: Path, sent: list[int] | None = None) -> None:
        """``sent``: each line's actual send, in recording time (aligned with its lines),
        in place of the arrival time the recording asks for."""
        by_subject: dict[str, list[tuple[int, int]]] = defaultdict(list)  # (stamp, offset)
        for i, line in enumerate(iter_lines(path)):
            raw, _, env = unwrap(line)
            try:
                obj = orjson.loads(raw)
                stamp = parse_ts(obj["ts"])
                subject = obj.get("entity") or obj.get("sensor") or obj.get("camera")
            except Exception:  # noqa: BLE001, S112 - a corrupt line has no time
                continue
            if not isinstance(subject, str):
                continue
            a = env.get("arrival_ms") if env is not None else None
            if sent is not None and i < len(sent):
                a = sent[i]
            by_subject[subject].append((stamp, (a if isinstance(a, int) else stamp) - stamp))
        self.lines: dict[str, tuple[list[int], list[int]]] = {}
        for subject, pairs in by_subject.items():  # arrival order is not stamp order
            pairs.sort()
            self.lines[subject] = ([s for s, _ in pairs], [o for _, o in pairs])

    def of(self, subject: str, ts_ms: int) -> int:
        """The ingest time of ``subject``'s condition at ``ts_ms`` of its clock."""
        found = self.lines.get(subject)
        if found is None:
            return ts_ms
        stamps, offsets = found
        i = bisect.bisect_right(stamps, ts_ms) - 1
        return ts_ms + offsets[i] if i >= 0 else ts_ms


def _arrivals(path: Path) -> list[int]:
    """Each line's pacing time (its ``arrival_ms``, else its stamp; the one before for a
    line with neither), in recording order: when the producer was to send it."""
    out: list[int] = []
    for line in iter_lines(path):
        raw, _, env = unwrap(line)
        a = env.get("arrival_ms") if env is not None else None
        if not isinstance(a, int):
            try:
                a = parse_ts(orjson.loads(raw)["ts"])
            except Exception:  # noqa: BLE001 - a corrupt line: paced with the one before
                a = out[-1] if out else 0
        out.append(a)
    return out


def _first_ts(path: Path) -> tuple[int, int]:
    """The first pacing time of the recording (its first line's arrival, else its event
    time: what the producer paces from), and the count."""
    first: int | None = None
    n = 0
    for line in iter_lines(path):
        n += 1
        if first is None:
            raw, _, env = unwrap(line)
            a = env.get("arrival_ms") if env is not None else None
            if isinstance(a, int):
                first = a
                continue
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
    """The recording's span of event time, from the 0.5th to the 99.5th percentile (a
    stepped gateway clock, hours off, must not stretch it)."""
    times = []
    for line in iter_lines(path):
        raw, _, _ = unwrap(line)
        try:
            obj = orjson.loads(raw)
            times.append(parse_ts(obj["ts"]))
        except Exception:  # noqa: BLE001, S112 - corrupt lines have no time
            continue
    times.sort()
    lo, hi = times[len(times) // 200], times[len(times) - 1 - len(times) // 200]
    return (hi - lo) / 1000.0


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
        _with_arrivals(work / "city-stamped.jsonl", arrivals, rec)
    ts0, n = _first_ts(rec)
    span = max(1.0, _span_s(rec))
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
        probes = Probes(bootstrap, settings.gps_topic, _probe_points(cfg),
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
        # The same from when each line was actually sent: how much of the windowed kinds'
        # delay is the producer's own lateness against the arrival times it was given.
        paced = _arrivals(rec)
        pairs = zip(sent, paced, strict=True)
        late = sorted(s * 1e3 - (t0_ms + (a - ts0) / speed) for s, a in pairs)
        if late:
            notes.append(
                "the producer's lateness against the recording's arrival times (ms): "
                f"p50 {_percentile(late, 50):.0f}, p99 {_percentile(late, 99):.0f}, "
                f"max {late[-1]:.0f}"
            )
            actual = [round(ts0 + (s * 1000 - t0_ms) * speed) for s in sent]
            real = _latencies(server.url, keys, t0_ms, ts0, speed, {}, Ingest(rec, actual))
            for kind, xs in real.items():
                if not kind.startswith(("probe", TIMELINE, GAPLINE)) and BY_STAMP not in kind:
                    if not kind.startswith(PER_EVENT):
                        lat[f"{kind} {BY_SEND}"] = xs
        if proc.poll() is not None:
            tail = b"".join(log[-30:]).decode(errors="replace")
            raise SystemExit(f"the flow failed (exit {proc.returncode}):\n{tail}")
        _stop(proc, notes)
        return Result(lat, notes)


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
