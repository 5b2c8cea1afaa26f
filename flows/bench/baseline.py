"""A hand-written single-process baseline: the flow's detections without Bytewax.

``citywatch bench --compare`` runs this next to the Bytewax flow over the same
recording, so that a figure of the flow means something on a noisy machine:
the ratio of the two, measured side by side, is what to quote.

It is a plain Python loop over the same parts the flow wires together:

* the recording source's own batching (``RecordingSource.build_part``), read
  line by line, never the whole file;
* the flow's parse step (orjson, validation, registry look-ups, one batched
  geofence call per batch via ``Reference.annotate``) and watermark step;
* one ``DetectorSuite.from_config`` (every detector, with the teleport gate
  and the stop-span reporter) instead of eight shards: the per-key state is
  the same, only the Bytewax exchange between shards is missing;
* the cross-key stages' pure logic: ``RendezvousMatcher`` over the routed stop
  spans, ``PeerGroupDetector`` over the picked household readings, one
  ``Corroborator`` per zone, the incident stage's merger;
* the flow's routing step and the same pipelined Redis sinks (work orders,
  dead letters).

New detectors join through ``DetectorSuite.from_config``; a new cross-key stage
must be added here too, and until it is, the bench shows it: it reports the
alerts found only by the flow or only by the baseline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from citywatch.detectors.alerts import Alert
from citywatch.detectors.anomaly.peer import PeerGroupDetector
from citywatch.detectors.events import DeadLetter
from citywatch.detectors.fusion import Corroborator
from citywatch.detectors.tracks_rendezvous import RendezvousMatcher, cells_for
from citywatch.detectors.watermark import Watermarker
from citywatch.flows.config import Config
from citywatch.flows.detect import DetectorSuite
from citywatch.flows.pipeline import ReferenceHolder, parse_step, route_step
from citywatch.flows.records import (
    AlertBatch,
    IncidentBatch,
    RawBatch,
    ShardBatch,
    ShardOutput,
    StampedBatch,
)
from citywatch.flows.sources import RecordingSource
from citywatch.flows.stage_fusion import split_by_zone
from citywatch.flows.stage_incidents import IncidentLogic
from citywatch.flows.stage_peer import pick_households
from citywatch.flows.stage_watermark import watermark_step
from citywatch.flows.stats import RunStats
from citywatch.geo.reference import Reference
from citywatch.sinks.dispatch import (
    Dispatch,
    Keys,
    RedisDeadLetterSink,
    RedisDispatchSink,
    Written,
)


@dataclass
class BaselineResult:
    stats: RunStats
    seconds: float
    alerts: list[Alert] = field(default_factory=list)
    live_keys: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    distinct_keys: int = 0

    @property
    def events_per_s(self) -> float:
        return self.stats.events_in / self.seconds if self.seconds > 0 else 0.0


class Baseline:
    """The flow's steps as one loop; ``feed`` takes a raw batch, ``finish`` ends the input."""

    def __init__(self, cfg: Config, reference: Reference, redis_url: str, stats: RunStats) -> None:
        self.cfg = cfg
        self.stats = stats
        holder = ReferenceHolder(reference)
        self.parse = parse_step(holder, stats)
        self.stamp = watermark_step(cfg.flow, stats)
        self.route = route_step(holder, cfg, stats)
        self.watermarks: dict[str, Watermarker] = {}
        self.suite = DetectorSuite.from_config(cfg, holder.catalog())
        self.rendezvous = RendezvousMatcher(cfg.track_rendezvous)
        tz = cfg.flow.timezone
        peer_p = cfg.anomaly.peer
        self.peer = PeerGroupDetector(peer_p, timezone=tz) if peer_p is not None else None
        self.pick: Callable[[StampedBatch], list[tuple[str, ShardBatch]]] | None = (
            pick_households(peer_p, tz) if peer_p is not None else None
        )
        self.split = split_by_zone(cfg.fusion)
        self.fusion: dict[str, Corroborator] = {}
        self.catalog = holder.catalog
        self.incidents = IncidentLogic(cfg, holder, None)
        self.alerts: list[Alert] = []
        self.keys: set[str] = set()  # every entity, sensor and camera seen
        self.latencies_ms: list[float] = []
        keys = Keys(cfg.redis.prefix)
        self.sink = RedisDispatchSink(
            redis_url,
            keys,
            feed_maxlen=cfg.redis.feed_maxlen,
            on_written=self._on_written,
        )
        self.dead_sink = RedisDeadLetterSink(
            cfg.redis.options(redis_url), keys, maxlen=cfg.redis.dead_letter_maxlen
        )
        self.sink.setup()
        self.dead_sink.setup()

    def _on_written(self, items: list[Dispatch], results: list[Written]) -> None:
        now = time.time_ns()
        created = [d.route.queue for d, w in zip(items, results, strict=True) if w.created]
        self.stats.add_work_orders(created, sum(w.repeat for w in results))
        self.latencies_ms.extend((now - d.ingest_ns) / 1e6 for d in items if d.ingest_ns)

    def feed(self, raw: RawBatch) -> None:
        parsed = self.parse(raw)
        state, batch = self.stamp(self.watermarks.get(parsed.source), parsed)
        self.keys.update(ev.key for ev in batch.events)
        self.watermarks[batch.source] = state
        wm_ms = self.suite.watermarks.update(batch.source, batch.wm_ms, batch.idle, batch.peers)
        alerts: list[Alert] = list(batch.alerts)
        side = ShardOutput([], [], [], wm_ms)
        self.suite.process(
            batch.events,
            wm_ms,
            alerts,
            side.dead,
            side.spans,
            batch.heard,
            batch.clocks,
            batch.source,
        )
        dead: list[DeadLetter] = batch.dead
        if side.dead:
            self.stats.add_parsed(0, {}, [d.category for d in side.dead])
            dead = dead + side.dead
        if dead:
            self.dead_sink.write_batch(dead)
        p = self.cfg.track_rendezvous
        for span in side.spans:
            for cell, home in cells_for(span.lon, span.lat, p.cell_m, p.radius_m):
                self.rendezvous.add(cell, home, span, alerts)
        if self.peer is not None and self.pick is not None:
            for _, picked in self.pick(batch):
                for ev in picked.events:
                    self.peer.on_event(ev, alerts)
                self.peer.on_watermark(picked.wm_ms, alerts)
        for alert in alerts:
            alert.ingest_ns = raw.ingest_ns
        self._merge(alerts)

    def _merge(self, alerts: list[Alert]) -> None:
        fused: list[Alert] = []
        for key, part in self.split(AlertBatch(alerts)):
            group = part.alerts
            fuse = self.fusion.get(key)
            if fuse is None:
                fuse = self.fusion[key] = Corroborator(self.cfg.fusion, self.catalog())
            start = len(fused)
            fuse.on_alerts(group, fused)
            fuse.evict_idle(max(a.ts_ms for a in group))
            for a in fused[start:]:
                a.ingest_ns = group[-1].ingest_ns
        everything = alerts + fused
        if everything:
            self._dispatch(self.incidents.on_batch([AlertBatch(everything)])[0])

    def _dispatch(self, released: Iterable[IncidentBatch]) -> None:
        for batch in released:
            self.alerts.extend(batch.alerts)
            dispatches = self.route(batch)
            if dispatches:
                self.sink.write_batch(dispatches)

    def finish(self) -> None:
        self._dispatch(self.incidents.on_eof()[0])
        self.sink.close()
        self.dead_sink.close()

    def live_keys(self) -> int:
        return self.suite.live_keys()


def run_baseline(
    paths: Sequence[str | Path],
    cfg: Config,
    redis_url: str,
    reference: Reference,
    *,
    stats: RunStats | None = None,
) -> BaselineResult:
    """Run the baseline over recordings into Redis at full speed; blocks until done."""
    stats = stats if stats is not None else RunStats()
    t0 = time.perf_counter()
    base = Baseline(cfg, reference, redis_url, stats)
    part = RecordingSource(paths, batch_size=cfg.flow.batch_size).build_part(
        "input", "recording", None
    )
    while True:
        try:
            batches = part.next_batch()
        except StopIteration:
            break
        for raw in batches:
            base.feed(raw)
    live = base.live_keys()
    base.finish()
    return BaselineResult(
        stats, time.perf_counter() - t0, base.alerts, live, base.latencies_ms, len(base.keys)
    )
