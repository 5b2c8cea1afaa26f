"""What the live-latency benchmark sends into Kafka, and when each line was ingested.

The city mix goes in as the network delivered it (:func:`with_arrivals`: each line
with its arrival time, paced by :func:`pacing_times`); the **probes** (:class:`Probes`)
are muck trucks entering an airport-site or levee zone, stamped at the moment they are
sent. :class:`Ingest` puts an alert's time (its source's clock) onto the ingest
timeline. See :mod:`citywatch.benchmarks.live_latency`.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import defaultdict, deque
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer

from citywatch.detectors.events import format_ts, parse_ts
from citywatch.replay.recording import RecordingWriter, iter_lines, unwrap

PROBE = "probe-"  # the probes' entity ids
PROBE_ZONE_KINDS = ("airport_site", "levee")  # muck trucks may not enter these


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


def probe_points(cfg: Any) -> list[tuple[float, float, float, float]]:
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


def with_arrivals(stamped: Path, arrivals: list[tuple[int, int]], out: Path) -> None:
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


def pacing_times(path: Path) -> list[int]:
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


def first_ts(path: Path) -> tuple[int, int]:
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


def span_s(path: Path) -> float:
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
