"""The main dataflow: source → parse → geofence → watermark → detect → route → sinks.

``build_flow`` only wires; each step is a small function over a whole batch.
The same flow runs over a recording (replay, demo, bench) or Kafka (run).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import bytewax.operators as op
import orjson
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.outputs import Sink

from citywatch.detectors.alerts import Alert
from citywatch.detectors.base import ZoneMeta
from citywatch.detectors.events import DeadLetter, Event, event_to_json, format_ts, parse_event
from citywatch.detectors.watermark import LATE, ON_TIME, Watermarker, clock_skew_alert
from citywatch.flows.config import Config, FlowSettings
from citywatch.flows.detect import (
    DetectorSuite,
    ShardOutput,
    shard_alerts,
    shard_builder,
    shard_of,
    wm_mark,
)
from citywatch.flows.model import EventBatch, RawBatch, ShardBatch
from citywatch.flows.routing import route_alerts
from citywatch.flows.stage_fusion import add_fusion
from citywatch.flows.stage_incidents import add_incidents
from citywatch.flows.stage_peer import add_peer
from citywatch.flows.stage_rendezvous import add_rendezvous
from citywatch.flows.stats import RunStats
from citywatch.geo.reference import Reference
from citywatch.sinks.redis_dispatch import Dispatch

FUTURE_TIMESTAMP = "future-timestamp"


class ReferenceHolder:
    """The reference data in force; replaced as a whole when zones are reloaded."""

    def __init__(self, ref: Reference) -> None:
        self._lock = threading.Lock()
        self._ref = ref
        self._catalog: Mapping[str, ZoneMeta] = ref.zone_catalog()

    @property
    def ref(self) -> Reference:
        return self._ref

    def catalog(self) -> Mapping[str, ZoneMeta]:
        return self._catalog

    def replace(self, ref: Reference) -> None:
        with self._lock:
            self._ref = ref
            self._catalog = ref.zone_catalog()


@dataclass(slots=True)
class FlowOutputs:
    dispatch: Sink[Dispatch]
    dead: Sink[DeadLetter] | None = None
    late: Sink[Event] | None = None
    alerts: Sink[Alert] | None = None


def parse_step(holder: ReferenceHolder, stats: RunStats) -> Callable[[RawBatch], EventBatch]:
    def parse(batch: RawBatch) -> EventBatch:
        ref = holder.ref
        events: list[Event] = []
        dead: list[DeadLetter] = []
        types = batch.default_types
        recorded = batch.arrival_ms
        arrivals: list[int] | None = [] if recorded is not None else None
        for i, raw in enumerate(batch.lines):
            out = parse_event(raw, types[i] if types else None, batch.source)
            if isinstance(out, DeadLetter):
                dead.append(out)
                continue
            if out.type != "gps":
                reason = ref.fill_position(out)
                if reason is not None:
                    dead.append(DeadLetter(raw, reason, batch.source))
                    continue
            events.append(out)
            if arrivals is not None and recorded is not None:
                arrivals.append(recorded[i])
        ref.annotate(events)
        ok = Counter(ev.type for ev in events)
        stats.add_parsed(
            len(batch.lines), ok, [d.category or d.reason.partition(":")[0] for d in dead]
        )
        return EventBatch(
            batch.source,
            events,
            dead,
            batch.ingest_ns,
            idle=batch.idle,
            peers=batch.peers,
            arrival_ms=arrivals,
            wall_clock=batch.wall_clock,
        )

    return parse


def watermark_step(
    flow: FlowSettings, stats: RunStats
) -> Callable[[Watermarker | None, EventBatch], tuple[Watermarker, EventBatch]]:
    """Stamp each partition's batches with its watermark (minimum over its sources);
    split off late events, and dead-letter events too far in the future (see
    :mod:`citywatch.detectors.watermark`), raising ``source.clock_skew`` once a source."""
    live = flow.timers == "wall"

    def stamp(state: Watermarker | None, batch: EventBatch) -> tuple[Watermarker, EventBatch]:
        wm = state if state is not None else new_watermarker(flow)
        wall_ms = batch.ingest_ns // 1_000_000
        arrivals = batch.arrival_ms
        clock_ms = wall_ms if batch.wall_clock else None
        on_time: list[Event] = []
        late: list[Event] = []
        future: list[DeadLetter] = []
        for i, ev in enumerate(batch.events):
            at = arrivals[i] if arrivals is not None else clock_ms
            verdict = wm.observe(ev.ts_ms, wm.source_of(ev.src, ev.type), at)
            if verdict == ON_TIME:
                on_time.append(ev)
            elif verdict == LATE:
                late.append(ev)
            else:
                future.append(_future_letter(ev, wm, batch.source, at))
        if live:  # sources silent for source_idle_s of wall time stop holding it back
            wm.advance(wall_ms)
        for source, ts_ms, ref_ms in wm.take_skewed():
            known = arrivals is not None or batch.wall_clock
            alert = clock_skew_alert(batch.source, source, ts_ms, ref_ms, live=known)
            alert.ingest_ns = batch.ingest_ns
            batch.alerts.append(alert)
        batch.events, batch.late, batch.wm_ms = on_time, late, wm.watermark_ms
        if future:
            batch.dead.extend(future)
            stats.add_parsed(0, {}, [FUTURE_TIMESTAMP] * len(future))
        if late:
            stats.add_late(len(late))
        return wm, batch

    return stamp


def new_watermarker(flow: FlowSettings) -> Watermarker:
    return Watermarker(
        flow.max_out_of_order_s * 1000,
        max_future_ms=flow.max_future_s * 1000,
        idle_ms=flow.source_idle_s * 1000,
        by=flow.watermark_source,
    )


def _future_letter(ev: Event, wm: Watermarker, partition: str, at: int | None) -> DeadLetter:
    source = wm.source_of(ev.src, ev.type)
    ref = wm.reference_ms(source, at)
    against = "its arrival time" if at is not None else "its source's recent median"
    ahead = (ev.ts_ms - ref) / 1000 if ref is not None else 0.0
    reason = (
        f"{FUTURE_TIMESTAMP}: {ev.type}.ts {format_ts(ev.ts_ms)} is {ahead:.0f} s ahead of "
        f"{against} (more than [flow] max_future_s = {wm.max_future_ms // 1000})"
    )
    return DeadLetter(orjson.dumps(event_to_json(ev)), reason, partition, FUTURE_TIMESTAMP)


def shard_step(shards: int) -> Callable[[EventBatch], list[tuple[str, ShardBatch]]]:
    names = [f"shard-{i:03d}" for i in range(shards)]

    def split(batch: EventBatch) -> list[tuple[str, ShardBatch]]:
        parts: list[list[Event]] = [[] for _ in range(shards)]
        for ev in batch.events:
            parts[shard_of(ev.key, shards)].append(ev)
        # Every shard gets the watermark, events or not, so its timers advance.
        return [
            (
                names[i],
                ShardBatch(
                    parts[i], batch.wm_ms, batch.ingest_ns, batch.source, batch.idle, batch.peers
                ),
            )
            for i in range(shards)
        ]

    return split


def route_step(
    holder: ReferenceHolder, cfg: Config, stats: RunStats
) -> Callable[[list[Alert]], list[Dispatch]]:
    def route(alerts: list[Alert]) -> list[Dispatch]:
        stats.add_alerts([a.kind for a in alerts])
        out = route_alerts(alerts, holder.ref.jurisdictions, cfg.routing, holder.catalog())
        for d in out:
            d.ingest_ns = d.alert.ingest_ns
        return out

    return route


def build_flow(
    source: Source[RawBatch],
    outputs: FlowOutputs,
    cfg: Config,
    holder: ReferenceHolder,
    stats: RunStats | None = None,
    *,
    flow_id: str = "citywatch",
) -> Dataflow:
    """Wire the warning flow from ``source`` to ``outputs``."""
    stats = stats if stats is not None else RunStats()
    flow = Dataflow(flow_id)
    raw = op.input("input", flow, source)
    parsed = op.map("parse", raw, parse_step(holder, stats))
    keyed = op.key_on("by_source", parsed, _source_of)
    stamped = op.stateful_map("watermark", keyed, watermark_step(cfg.flow, stats))
    batches = op.key_rm("batches", stamped)
    if outputs.late is not None:
        op.output("late_events", op.flat_map("late", batches, _late_of), outputs.late)
    shards = op.flat_map("shard", batches, shard_step(cfg.flow.shards))
    suite_factory = _suite_factory(cfg, holder)
    detected = op.stateful_batch(
        "detect",
        shards,
        shard_builder(
            suite_factory,
            holder.catalog,
            timers=cfg.flow.timers,
            lag_ms=cfg.flow.max_out_of_order_s * 1000,
        ),
    )
    if outputs.dead is not None:  # bad input lines, and teleported GPS fixes from the shards
        teleports = op.flat_map("shard_dead", op.key_rm("shard_out", detected), _teleports(stats))
        dead = op.merge("all_dead", op.flat_map("dead", batches, _dead_of), teleports)
        op.output("dead_letters", dead, outputs.dead)
    alerts = op.filter_map_value("alerts_of", detected, shard_alerts)
    system = op.filter_map("system_alerts", batches, _system_alerts_of)
    alerts = op.merge("alerts_and_system", alerts, system)
    alerts = add_rendezvous(detected, alerts, cfg)
    alerts = add_peer(batches, alerts, cfg)
    alerts = add_fusion(alerts, cfg, holder)
    marks = op.filter_map("wm_marks", detected, wm_mark)
    # Fusion goes before the incidents; the shards' watermark marks keep its clock moving.
    alerts = add_incidents(op.merge("alerts_and_marks", alerts, marks), cfg, holder)
    dispatches = op.map("route", op.key_rm("alerts", alerts), route_step(holder, cfg, stats))
    flat = op.flatten("each_dispatch", dispatches)
    op.output("dispatch", flat, outputs.dispatch)
    if outputs.alerts is not None:
        op.output("alerts_out", op.map("alert_of", flat, _alert_of), outputs.alerts)
    return flow


def _suite_factory(cfg: Config, holder: ReferenceHolder) -> Callable[[], DetectorSuite]:
    def make() -> DetectorSuite:
        return DetectorSuite.from_config(cfg, holder.catalog())

    return make


def _source_of(batch: EventBatch) -> str:
    return batch.source


def _dead_of(batch: EventBatch) -> list[DeadLetter]:
    return batch.dead


def _teleports(stats: RunStats) -> Callable[[ShardOutput], list[DeadLetter]]:
    def dead_of(res: ShardOutput) -> list[DeadLetter]:
        if res.dead:
            stats.add_parsed(0, {}, [d.category for d in res.dead])
        return res.dead

    return dead_of


def _system_alerts_of(batch: EventBatch) -> tuple[str, list[Alert]] | None:
    return ("system", batch.alerts) if batch.alerts else None


def _late_of(batch: EventBatch) -> list[Event]:
    return batch.late


def _alert_of(d: Dispatch) -> Alert:
    return d.alert


def count_by(items: list[Any], key: Callable[[Any], str]) -> dict[str, int]:
    return dict(Counter(key(i) for i in items))
