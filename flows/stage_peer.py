"""The cross-key peer stage: household meter readings → peer-group ``sensor.anomaly``.

A dwelling's water, power and gas meters hash onto different detection shards,
and its peers onto others still, so the peer model cannot live in the shards.
Here each input batch's household readings (ids matching ``[anomaly.peer]
id_pattern``) are picked out and sent, as one item per batch, to a single
Bytewax key holding the :class:`~detectors.anomaly.peer.PeerGroupDetector`.
One key is enough: household meters report every 15 minutes, so even a
million of them is about 1,100 readings a second, and the detector's state is
numpy arrays, one row per dwelling. Readings are handled in arrival order, so
a recording gives the same alerts at any batch size and worker count.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Stream
from bytewax.operators import StatefulBatchLogic

from citywatch.detectors.alerts import Alert
from citywatch.detectors.anomaly.params import PeerParams
from citywatch.detectors.anomaly.peer import PeerGroupDetector
from citywatch.detectors.events import Event, SensorEvent
from citywatch.detectors.state import Stateful
from citywatch.flows.config import Config
from citywatch.flows.records import AlertBatch, ShardBatch, StampedBatch
from citywatch.flows.recovery import restore, snapshot
from citywatch.flows.watermarks import SourceWatermarks

PEER_KEY = "peer"


def pick_households(
    p: PeerParams, timezone: str
) -> Callable[[StampedBatch], list[tuple[str, ShardBatch]]]:
    probe = PeerGroupDetector(replace(p, hst=False), timezone=timezone)
    kinds = frozenset(p.kinds)

    def pick(batch: StampedBatch) -> list[tuple[str, ShardBatch]]:
        events: list[Event] = [
            ev
            for ev in batch.events
            if isinstance(ev, SensorEvent)
            and ev.kind in kinds
            and probe.dwelling_of(ev.sensor) is not None
        ]
        # Batches without household readings still carry their source's watermark.
        return [
            (
                PEER_KEY,
                ShardBatch(
                    events, batch.wm_ms, batch.ingest_ns, batch.source, batch.idle, batch.peers
                ),
            )
        ]

    return pick


class PeerState(Stateful):
    """What the peer stage keeps: the detector, the per-source watermarks and the
    readings pending until the watermark passes them (its plain state is the snapshot)."""

    STATE = ("detector", "watermarks", "pending", "seq")

    def __init__(self, p: PeerParams, timezone: str) -> None:
        self.detector = PeerGroupDetector(p, timezone=timezone)
        self.watermarks = SourceWatermarks()
        self.pending: list[tuple[int, str, float, int, SensorEvent]] = []
        self.seq = 0  # tie-break among identical readings (re-deliveries), never compared on


class PeerLogic(StatefulBatchLogic[ShardBatch, AlertBatch, bytes]):
    """Bytewax state of the peer stage (:class:`PeerState`).

    A dwelling is compared with the others as they stand when its reading comes, so
    the order of readings across dwellings matters. Readings arrive in an order that
    depends on partitions and workers; they are therefore held until the watermark
    (the minimum over sources) passes them and fed to the detector in
    ``(time, sensor, value)`` order, which every run agrees on.
    """

    def __init__(self, p: PeerParams, timezone: str, resume: bytes | None) -> None:
        # Several sources (Kafka partitions) feed this stage: act on the minimum of
        # their watermarks, as the detection shards do, so the result does not depend
        # on how the partitions interleave.
        self.st = restore("peer", PeerState(p, timezone), resume)
        self.detector = self.st.detector
        self.watermarks = self.st.watermarks
        self.pending = self.st.pending

    def on_batch(self, values: list[ShardBatch]) -> tuple[Iterable[AlertBatch], bool]:
        out: list[Alert] = []
        wm_ms: int | None = None
        for batch in values:
            start = len(out)
            for ev in batch.events:
                assert isinstance(ev, SensorEvent)
                self.st.seq += 1
                heapq.heappush(self.pending, (ev.ts_ms, ev.sensor, ev.value, self.st.seq, ev))
            wm_ms = self.watermarks.update(batch.source, batch.wm_ms, batch.idle, batch.peers)
            self._release(wm_ms, out)
            self.detector.on_watermark(wm_ms, out)
            for alert in out[start:]:
                alert.ingest_ns = batch.ingest_ns
                alert.wm_ms = wm_ms
        return ([AlertBatch(out, wm_ms)] if out else []), StatefulBatchLogic.RETAIN

    def _release(self, upto_ms: int | None, out: list[Alert]) -> None:
        """Feed the detector every pending reading older than ``upto_ms`` (all: None)."""
        pending = self.pending
        while pending and (upto_ms is None or pending[0][0] < upto_ms):
            self.detector.on_event(heapq.heappop(pending)[4], out)

    def on_eof(self) -> tuple[Iterable[AlertBatch], bool]:
        out: list[Alert] = []
        self._release(None, out)
        return ([AlertBatch(out)] if out else []), StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes:
        return snapshot(self.st)


def add_peer(batches: Stream[StampedBatch], cfg: Config) -> Stream[AlertBatch] | None:
    """Compare dwellings with their peers; returns the peer anomalies (None when
    ``[anomaly.peer]`` is off)."""
    p = cfg.anomaly.peer
    if p is None:
        return None
    tz = cfg.flow.timezone
    picked = op.flat_map("peer_pick", batches, pick_households(p, tz))

    def build(resume: Any) -> PeerLogic:
        return PeerLogic(p, tz, resume)

    return op.key_rm("peer_alerts", op.stateful_batch("peer", picked, build))
