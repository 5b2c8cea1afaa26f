"""Synthetic city traffic with ground truth.

Background traffic behaves: hazmat trucks and tankers drive between chemical
parks and approved stops and only dwell there, muck trucks keep out of the
airport site and the levees, vessels ply the river, sensors read normal values
with daily and tidal cycles, cameras see birds, boats and low-confidence
shadows. On top of that, incidents are injected, each listed in the truth file
with the alert it should raise (``kind``, ``subject``, ``zone``) and the time
window its alert must fall in. A small share of lines is corrupted (dead
letters) and a few background readings arrive late; the truth counts both.

Events are emitted in arrival order (event time plus up to 3 s of network
delay, or minutes for the deliberately late ones) through a heap, so memory
stays bounded however long the run. Same parameters and seed: same bytes.
"""

from __future__ import annotations

import functools
import heapq
import operator
import random
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from citywatch.detectors.events import format_ts, parse_ts
from citywatch.geo.distance import offset_deg
from citywatch.geo.reference import Reference
from citywatch.replay.incidents import INJECTORS
from citywatch.replay.noise import NoiseStage, header_params, is_noisy
from citywatch.replay.recording import RecordingWriter
from citywatch.replay.scene import SCALES, GenParams, Truth, truth_entry
from citywatch.replay.world import (
    ALLOWED,
    PREFIX,
    REPORT_S,
    Vehicle,
    World,
    base_value,
    normal_value,
    trip,
)

SENSOR_PERIOD_S = {"water": 900, "power": 900, "gas": 900}
DEFAULT_SENSOR_PERIOD_S = 60
NETWORK_DELAY_MS = 3000
LATE_DELAY_MS = 180_000


class Generator:
    """Builds the background fleet, sensors and cameras, injects incidents, emits events."""

    def __init__(self, ref: Reference, p: GenParams) -> None:
        self.ref = ref
        self.p = p
        self.rng = random.Random(p.seed)
        self.world = World(ref, self.rng)
        self.t0 = parse_ts(p.start)
        self.t_end = self.t0 + p.minutes * 60_000
        self.truth = Truth()
        # Subjects whose lines are never corrupted or delayed although they expect no
        # alert (an injected teleport: the truth counts its dead letter exactly).
        self.clean_subjects: set[str] = set()
        self.vehicles: list[Vehicle] = []
        # sensor id -> (kind, lon, lat, base, in_registry); overrides: id -> list of (t0, t1, fn)
        self.sensors: list[tuple[str, str, float, float, float, bool]] = []
        self.sensor_override: dict[str, list[tuple[int, int, Callable[[int], float]]]] = {}
        # sensor id -> (t0, t1) spans in which it sends nothing (an injected outage)
        self.sensor_silence: dict[str, list[tuple[int, int]]] = {}
        self.cameras: list[tuple[str, str | None, float, float, bool]] = []
        self.video_injections: list[tuple[int, dict[str, Any]]] = []
        self._ts_cache: dict[int, str] = {}
        self._build_background()
        if p.inject:
            self._inject()

    # -- background ---------------------------------------------------------------
    def _build_background(self) -> None:
        rng, world, scale = self.rng, self.world, SCALES[self.p.scale]
        depots = world.by_kind.get("chemical_park", []) + world.by_kind.get("approved_stop", [])
        for cls in ("hazmat_truck", "tanker", "muck_truck", "vessel", "patrol"):
            for i in range(scale[cls]):
                vid = f"{PREFIX[cls]}-{i + 1:05d}"
                dest: Callable[[], tuple[float, float]]
                if cls in ("hazmat_truck", "tanker") and depots:
                    dest = functools.partial(world.zone_point_of, depots)
                    dwell = (600, 2400)
                elif cls == "vessel" and world.by_kind.get("no_fishing"):
                    dest = functools.partial(world.zone_point_of, world.by_kind["no_fishing"])
                    dwell = (60, 600)
                else:
                    dest = functools.partial(world.free_point, ALLOWED.get(cls, ()))
                    dwell = (30, 600)
                start = dest()
                legs = trip(world, cls, self.t0, self.t_end, start, dest, dwell)
                period = REPORT_S[cls] * 1000
                cargo = (
                    rng.choice(["petrol", "diesel", "LPG", "methanol"])
                    if cls in ("hazmat_truck", "tanker")
                    else None
                )
                self.vehicles.append(
                    Vehicle(vid, cls, legs, period, self.t0 + rng.randrange(period), cargo)
                )
        # Household meters may have their own number of copies ("meter_copies"); a
        # scale without it copies them like the other sensors.
        copies = scale["sensor_copies"]
        meter_copies = scale.get("meter_copies", copies)
        for copy in range(max(copies, meter_copies)):
            for dev in self.ref.sensors.values():
                kind = dev.attrs.get("kind", "unknown")
                if copy >= (meter_copies if kind in SENSOR_PERIOD_S else copies):
                    continue
                lon, lat = dev.lon, dev.lat
                sid = dev.id if copy == 0 else f"{dev.id}-x{copy:03d}"
                if copy:
                    dlon, dlat = offset_deg(lat, rng.uniform(-3000, 3000), rng.uniform(-3000, 3000))
                    lon, lat = round(lon + dlon, 6), round(lat + dlat, 6)
                self.sensors.append((sid, kind, lon, lat, base_value(kind, rng), copy == 0))
        for copy in range(scale["camera_copies"]):
            for dev in self.ref.cameras.values():
                cid = dev.id if copy == 0 else f"{dev.id}-x{copy:03d}"
                zone = dev.attrs.get("zone") or None
                self.cameras.append((cid, zone, dev.lon, dev.lat, copy == 0))

    # -- injected incidents -------------------------------------------------------
    def expect(
        self, kind: str, subject: str, zone: str | None, t0: int, t1: int, note: str
    ) -> None:
        self.truth.incidents.append(
            truth_entry(len(self.truth.incidents) + 1, kind, subject, zone, t0, t1, note)
        )

    def _inject(self) -> None:
        block_ms = 40 * 60_000
        blocks = max(1, (self.t_end - self.t0) // block_ms)
        for b in range(blocks):
            base = self.t0 + b * block_ms
            span = min(block_ms, self.t_end - base)
            for injector in self._injectors(INJECTORS):
                injector(self, b, base, span)

    def _injectors(self, injectors: list[Any]) -> list[Any]:
        """The registry, plus the noisy run's fault and overlap injectors before the
        last one (the fusion truth, which reads all the others')."""
        from citywatch.replay.incidents_noise import noise_injectors
        from citywatch.replay.noise import is_noisy

        if not is_noisy(self.p):
            return injectors
        return [*injectors[:-1], *noise_injectors(self.p), injectors[-1]]

    # -- emission -----------------------------------------------------------------
    def events(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """(event time ms, event object) in event-time order, tick by tick.

        Each tick visits only the vehicles, sensors and cameras due in it (kept in
        buckets by tick number, each visited in index order), so a city of a
        hundred thousand keys costs per event, not per key and tick.
        """
        rng = self.rng
        tick = 5_000
        t0 = self.t0
        sensor_period = [
            SENSOR_PERIOD_S.get(s[1], DEFAULT_SENSOR_PERIOD_S) * 1000 for s in self.sensors
        ]
        sensor_next = [t0 + rng.randrange(period) for period in sensor_period]
        camera_next = [t0 + rng.randrange(120_000) for _ in self.cameras]
        videos = sorted(self.video_injections, key=lambda x: x[0])
        vi = 0

        def bucketed(nexts: Iterable[int]) -> dict[int, list[int]]:
            buckets: dict[int, list[int]] = {}
            for i, n in enumerate(nexts):
                buckets.setdefault(max(0, (n - t0) // tick), []).append(i)
            return buckets

        v_due = bucketed(v.next_ms for v in self.vehicles)
        s_due = bucketed(sensor_next)
        c_due = bucketed(camera_next)
        vehicles, sensors, cameras = self.vehicles, self.sensors, self.cameras
        fix, reading, video = self._fix, self._reading, self._background_video
        silence = self.sensor_silence
        by_ts = operator.itemgetter(0)
        k = 0
        t = t0
        while t < self.t_end:
            t_hi = min(t + tick, self.t_end)
            out: list[tuple[int, dict[str, Any]]] = []
            for i in sorted(v_due.pop(k, ())):
                v = vehicles[i]
                while v.next_ms < t_hi:
                    out.append((v.next_ms, fix(v, v.next_ms)))
                    v.next_ms += v.period_ms
                v_due.setdefault((v.next_ms - t0) // tick, []).append(i)
            for i in sorted(s_due.pop(k, ())):
                n = sensor_next[i]
                while n < t_hi:
                    if not (silence and self._silenced(sensors[i][0], n)):
                        out.append((n, reading(sensors[i], n)))
                    n += sensor_period[i]
                sensor_next[i] = n
                s_due.setdefault((n - t0) // tick, []).append(i)
            for i in sorted(c_due.pop(k, ())):
                n = camera_next[i]
                while n < t_hi:
                    out.append((n, video(cameras[i], n)))
                    n += rng.randrange(60_000, 240_000)
                camera_next[i] = n
                c_due.setdefault((n - t0) // tick, []).append(i)
            while vi < len(videos) and videos[vi][0] < t_hi:
                ts, obj = videos[vi]
                out.append((ts, {**obj, "ts": self._ts(ts)}))
                vi += 1
            out.sort(key=by_ts)
            yield from out
            t = t_hi
            k += 1

    def _ts(self, ts_ms: int) -> str:
        """``format_ts``, with the whole-second part cached (events share seconds)."""
        secs, ms = divmod(ts_ms, 1000)
        prefix = self._ts_cache.get(secs)
        if prefix is None:
            if len(self._ts_cache) > 4096:
                self._ts_cache.clear()
            prefix = self._ts_cache[secs] = format_ts(secs * 1000)[:-5]
        return f"{prefix}.{ms:03d}Z"

    def _fix(self, v: Vehicle, t: int) -> dict[str, Any]:
        lon, lat, speed = v.position(t)
        for s0, s1, dlon, dlat in v.spikes:
            if s0 <= t < s1:
                lon, lat = lon + dlon, lat + dlat
        jlon, jlat = offset_deg(lat, self.rng.gauss(0, v.jitter_m), self.rng.gauss(0, v.jitter_m))
        obj: dict[str, Any] = {
            "type": "gps",
            "ts": self._ts(t),
            "entity": v.id,
            "class": v.cls,
            "lon": round(lon + jlon, 6),
            "lat": round(lat + jlat, 6),
            "speed": round(max(0.0, speed + self.rng.gauss(0, 1.0 if speed else 0.2)), 1),
        }
        if v.cargo:
            obj["cargo"] = v.cargo
        return obj

    def _silenced(self, sid: str, t: int) -> bool:
        return any(t0 <= t < t1 for t0, t1 in self.sensor_silence.get(sid, ()))

    def _reading(self, s: tuple[str, str, float, float, float, bool], t: int) -> dict[str, Any]:
        sid, kind, lon, lat, base, registered = s
        value = normal_value(kind, base, t, self.rng)
        for t0, t1, fn in self.sensor_override.get(sid, ()):
            if t0 <= t < t1:
                value = fn(t)
        obj: dict[str, Any] = {
            "type": "sensor",
            "ts": self._ts(t),
            "sensor": sid,
            "kind": kind,
            "value": round(value, 3),
        }
        if not registered:
            obj["lon"], obj["lat"] = lon, lat
        return obj

    def _background_video(
        self, c: tuple[str, str | None, float, float, bool], t: int
    ) -> dict[str, Any]:
        cid, zone, lon, lat, registered = c
        rng = self.rng
        zkind = self.world.zone_kind.get(zone) if zone else None
        if zkind is None:
            label, conf = rng.choice(["vehicle", "person", "truck"]), rng.uniform(0.5, 0.99)
        elif zkind == "no_fishing":
            label, conf = rng.choice(["boat", "bird"]), rng.uniform(0.4, 0.95)
        elif zkind in ("chemical_park", "approved_stop"):
            label, conf = rng.choice(["vehicle", "person", "truck"]), rng.uniform(0.5, 0.99)
        else:  # restricted areas: only harmless labels or low-confidence shadows
            label, conf = rng.choice(["bird", "bird", "person"]), rng.uniform(0.2, 0.5)
        obj: dict[str, Any] = {
            "type": "video",
            "ts": self._ts(t),
            "camera": cid,
            "label": label,
            "confidence": round(conf, 3),
        }
        if not registered:
            obj["lon"], obj["lat"] = lon, lat
        return obj


_CORRUPTIONS: list[Callable[[dict[str, Any], random.Random], bytes]] = [
    lambda o, r: orjson.dumps(o)[: r.randrange(5, 30)],
    lambda o, r: (
        orjson.dumps({**o, "lat": 95.2})
        if o["type"] == "gps"
        else orjson.dumps({**o, "type": "radar"})
    ),
    lambda o, r: orjson.dumps({k: v for k, v in o.items() if k != "ts"}),
    lambda o, r: orjson.dumps({**o, "ts": parse_ts(o["ts"]) // 1000}),
    lambda o, r: b"[" + orjson.dumps(o) + b"]",
    lambda o, r: orjson.dumps(
        {
            **o,
            "type": "video",
            "camera": "cam-unknown-9",
            "label": "person",
            "confidence": 0.9,
            "lon": None,
            "lat": None,
        }
    ),
]


def generate(
    ref: Reference,
    p: GenParams,
    out: str | Path,
    truth_path: str | Path | None = None,
    progress: Callable[[int], None] | None = None,
    arrivals: list[tuple[int, int]] | None = None,
) -> Truth:
    """Write a recording (and its truth file); returns the truth.

    ``arrivals``: filled with ``(arrival_ms, true_ms)`` per line written, in order: when
    the network delivered it and the true time of its event, which a skewed gateway's
    stamp (``ts``) does not carry. The recording itself holds neither; the live-latency
    benchmark sends each line at its arrival."""
    gen = Generator(ref, p)
    rng = random.Random(p.seed + 1)  # corruption and lateness draw from their own stream
    header = {"generator": {"name": "citywatch.replay.generator", **header_params(p)}}
    heap: list[tuple[int, int, bytes, int]] = []
    seq = 0
    truth = gen.truth
    injected = {i["subject"] for i in truth.incidents} | gen.clean_subjects
    randrange, random_, dumps = rng.randrange, rng.random, orjson.dumps
    push, pop = heapq.heappush, heapq.heappop
    bad, late_roll = p.bad_per_mille, 1000 - p.late_per_mille
    late_before = gen.t_end - 2 * LATE_DELAY_MS
    written = 0
    stream: Iterable[tuple[int, dict[str, Any], int]]
    stage = NoiseStage(gen, injected) if is_noisy(p) else None
    if stage is not None:
        stream = stage.apply(gen.events())
    else:
        stream = ((ts, obj, 0) for ts, obj in gen.events())
    ready: list[bytes] = []

    def take() -> None:  # the line due first, with its arrival and true time if asked
        arrival, _, line, true_ms = pop(heap)
        ready.append(line)
        if arrivals is not None:
            arrivals.append((arrival, true_ms))

    with RecordingWriter(out, header=header) as w:
        for ts, obj, delay in stream:
            seq += 1
            arrival = ts + randrange(NETWORK_DELAY_MS) + delay
            subject = obj.get("entity") or obj.get("sensor") or obj.get("camera")
            roll = random_() * 1000
            if roll < bad and subject not in injected:
                line = rng.choice(_CORRUPTIONS)(obj, rng)
                truth.dead_letters += 1
            else:
                line = dumps(obj)
                if (
                    roll > late_roll
                    and subject not in injected
                    and obj["type"] == "sensor"
                    and ts < late_before
                ):
                    arrival = ts + LATE_DELAY_MS
                    truth.late_events += 1
            push(heap, (arrival, seq, line, ts))
            while heap[0][0] < ts:
                take()
                if not heap:
                    break
            if len(ready) >= 10_000:
                w.write_lines(ready)
                written += len(ready)
                ready.clear()
                if progress is not None:
                    progress(written)
        while heap:
            take()
        w.write_lines(ready)
        written += len(ready)
    truth.events = written
    if stage is not None:
        truth.noise = dict(stage.counts)
        for gateway, t0, t1, note in stage.clock_step_incidents():
            gen.expect("source.clock_skew", gateway, None, t0, t1, note)
    if truth_path is not None:
        write_truth(truth_path, p, truth)
    return truth


def write_truth(path: str | Path, p: GenParams, truth: Truth) -> None:
    doc: dict[str, Any] = {
        "generator": header_params(p),
        "events": truth.events,
        "dead_letters": truth.dead_letters,
        "late_events": truth.late_events,
    }
    if truth.noise:
        doc["noise"] = truth.noise
    doc["incidents"] = truth.incidents
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
