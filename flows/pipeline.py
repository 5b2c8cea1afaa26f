"""The main dataflow, read top to bottom in ``build_flow``::

    input ─► parse ─► watermark (per partition) ─► shard ─► detect ─┬─► alerts ─► fusion
                         │  late, dead letters, system alerts       ├─► rendezvous
                         └─► household peers                        └─► dead letters
    alerts (+ fusion) ─► incidents ─► route ─► dispatch sink (work orders)

``build_flow`` only wires; each step is a small function from one record of
``flows/records.py`` to the next, over a whole batch. The same flow runs over
a recording (replay, demo, bench) or Kafka (run).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.outputs import Sink

from citywatch.detectors.alerts import Alert
from citywatch.detectors.base import ZoneMeta
from citywatch.detectors.events import DeadLetter, Event, parse_event
from citywatch.flows.config import Config
from citywatch.flows.detect import DetectorSuite, shard_alerts, shard_builder, shard_of
from citywatch.flows.placement import plain_names
from citywatch.flows.records import (
    AlertBatch,
    EventBatch,
    IncidentBatch,
    RawBatch,
    ShardBatch,
    ShardOutput,
    StampedBatch,
)
from citywatch.flows.routing import route_alerts
from citywatch.flows.stage_fusion import add_fusion
from citywatch.flows.stage_incidents import add_incidents
from citywatch.flows.stage_peer import add_peer
from citywatch.flows.stage_rendezvous import add_rendezvous
from citywatch.flows.stage_watermark import watermark_builder
from citywatch.flows.stats import RunStats
from citywatch.geo.reference import Reference
from citywatch.sinks.dispatch import Dispatch


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
            seq=batch.seq,
            caught_ms=batch.caught_ms,
        )

    return parse


def shard_step(
    shards: int, names: Sequence[str] | None = None
) -> Callable[[StampedBatch], list[tuple[str, ShardBatch]]]:
    """``names``: the shards' Bytewax keys (default ``shard-000`` …; see flows/placement.py)."""
    names = list(names) if names is not None else plain_names(shards)

    def split(batch: StampedBatch) -> list[tuple[str, ShardBatch]]:
        parts: list[list[Event]] = [[] for _ in range(shards)]
        heard: list[list[tuple[Event, int]]] = [[] for _ in range(shards)]
        shifted: list[list[int]] | None = None
        if batch.shifts is None:
            for ev in batch.events:
                parts[shard_of(ev.key, shards)].append(ev)
        else:
            shifted = [[] for _ in range(shards)]
            for ev, shift in zip(batch.events, batch.shifts, strict=True):
                i = shard_of(ev.key, shards)
                parts[i].append(ev)
                shifted[i].append(shift)
        for item in batch.heard:
            heard[shard_of(item[0].key, shards)].append(item)
        # Every shard gets the watermark, events or not, so its timers advance.
        return [
            (
                names[i],
                ShardBatch(
                    parts[i],
                    batch.wm_ms,
                    batch.ingest_ns,
                    batch.source,
                    batch.idle,
                    batch.peers,
                    heard[i],
                    batch.clocks,
                    batch.seq,
                    batch.caught_ms,
                    shifted[i] if shifted is not None and any(shifted[i]) else None,
                    batch.transits,
                ),
            )
            for i in range(shards)
        ]

    return split


def route_step(
    holder: ReferenceHolder, cfg: Config, stats: RunStats
) -> Callable[[IncidentBatch], list[Dispatch]]:
    def route(batch: IncidentBatch) -> list[Dispatch]:
        alerts = batch.alerts
        stats.add_alerts([a.kind for a in alerts if not a.reissued])
        ref = holder.ref
        out = route_alerts(alerts, ref.jurisdictions, cfg.routing, holder.catalog(), batch.views)
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
    recoverable: bool = True,
    shard_names: Sequence[str] | None = None,
    on_stamped: Callable[[str, int], None] | None = None,
) -> Dataflow:
    """Wire the warning flow from ``source`` to ``outputs`` (records: flows/records.py).
    ``recoverable=False``: the run keeps no recovery store, so the detection shards
    skip their (large) snapshots; only then may ``shard_names`` rename the shards.
    ``on_stamped``: told by the detection shards of each numbered batch that reached
    them (a shared recording's readers wait for it, see flows/sources_split.py)."""
    stats = stats if stats is not None else RunStats()
    flow = Dataflow(flow_id)
    raw = op.input("input", flow, source)  # RawBatch
    parsed = op.map("parse", raw, parse_step(holder, stats))  # EventBatch
    stamped = op.key_rm(  # StampedBatch, one watermark per input partition
        "stamped",
        op.stateful_batch(
            "watermark",
            op.key_on("by_source", parsed, _source_of),
            watermark_builder(cfg.flow, stats),
        ),
    )
    assert recoverable is False or shard_names is None, "snapshots are kept under the names"
    shards = op.flat_map("shard", stamped, shard_step(cfg.flow.shards, shard_names))
    by_shard = op.stateful_batch(  # (shard, ShardOutput)
        "detect",
        shards,
        shard_builder(
            _suite_factory(cfg, holder),
            holder.catalog,
            timers=cfg.flow.timers,
            lag_ms=cfg.flow.max_out_of_order_s * 1000,
            snapshots=recoverable,
            tick_s=cfg.flow.tick_ms / 1000,
            on_stamped=on_stamped,
        ),
    )
    detected = op.key_rm("shard_out", by_shard)  # ShardOutput
    # AlertBatch from every producer: shards, system, rendezvous, household peers.
    replay = cfg.flow.timers == "event"
    producers = [
        op.filter_map("shard_alerts", by_shard, shard_alerts(always=replay)),
        op.filter_map("system_alerts", stamped, _system_alerts_of),
        add_rendezvous(by_shard, cfg),
    ]
    peers = add_peer(stamped, cfg)
    if peers is not None:
        producers.append(peers)
    alerts = op.merge("alerts", *producers)
    alerts = op.merge("alerts_and_fusion", alerts, add_fusion(alerts, cfg, holder))
    incidents = add_incidents(alerts, cfg, holder)  # IncidentBatch
    dispatches = op.flat_map("route", incidents, route_step(holder, cfg, stats))  # Dispatch
    op.output("dispatch", dispatches, outputs.dispatch)
    if outputs.alerts is not None:
        op.output("alerts_out", op.filter_map("alert_of", dispatches, _alert_of), outputs.alerts)
    if outputs.late is not None:
        op.output("late_events", op.flat_map("late", stamped, _late_of), outputs.late)
    if outputs.dead is not None:  # bad input lines, future timestamps, teleported fixes
        teleports = op.flat_map("shard_dead", detected, _teleports(stats))
        dead = op.merge("all_dead", op.flat_map("dead", stamped, _dead_of), teleports)
        op.output("dead_letters", dead, outputs.dead)
    return flow


def _suite_factory(cfg: Config, holder: ReferenceHolder) -> Callable[[], DetectorSuite]:
    def make() -> DetectorSuite:
        return DetectorSuite.from_config(cfg, holder.catalog())

    return make


def _source_of(batch: EventBatch) -> str:
    return batch.source


def _dead_of(batch: StampedBatch) -> list[DeadLetter]:
    return batch.dead


def _teleports(stats: RunStats) -> Callable[[ShardOutput], list[DeadLetter]]:
    def dead_of(res: ShardOutput) -> list[DeadLetter]:
        if res.dead:
            stats.add_parsed(0, {}, [d.category for d in res.dead])
        return res.dead

    return dead_of


def _system_alerts_of(batch: StampedBatch) -> AlertBatch | None:
    return AlertBatch(batch.alerts, batch.wm_ms) if batch.alerts else None


def _late_of(batch: StampedBatch) -> list[Event]:
    return batch.late


def _alert_of(d: Dispatch) -> Alert | None:
    """The alert for the alert outputs; a copy re-sent to an absorbing incident's work
    order was written when it was raised (under the incident it had then)."""
    return None if d.alert.reissued else d.alert


def count_by(items: list[Any], key: Callable[[Any], str]) -> dict[str, int]:
    return dict(Counter(key(i) for i in items))
