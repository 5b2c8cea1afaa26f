"""The corroboration stage: alerts of one zone from different sources → ``fusion.corroborated``.

``add_fusion(alerts, cfg, holder)`` takes the stream of alert batches right
before incidents and routing, so it sees the alerts of every detector and
stage. Each batch's alerts of the fusion kinds are grouped by zone and only
those groups cross the key exchange (one item per zone per batch, never one
per alert); each zone key's :class:`~detectors.fusion.Corroborator`'s plain
state is its recovery snapshot. It returns the fusion alerts only; the pipeline
merges them into the stream next to the alerts they fuse. The outcome does not
depend on the order in which shards' alerts arrive (see ``citywatch.detectors.fusion``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Stream
from bytewax.operators import StatefulBatchLogic

from citywatch.detectors.alerts import Alert
from citywatch.detectors.base import ZoneMeta
from citywatch.detectors.fusion import Corroborator, FusionParams
from citywatch.flows.config import Config
from citywatch.flows.records import AlertBatch
from citywatch.flows.recovery import restore, snapshot


def split_by_zone(p: FusionParams) -> Callable[[AlertBatch], list[tuple[str, AlertBatch]]]:
    """Group a batch's alerts of the fusion kinds by zone: ``[("zone:<id>", batch)]``."""
    kinds = frozenset(p.kinds)

    def split(batch: AlertBatch) -> list[tuple[str, AlertBatch]]:
        parts: dict[str, list[Alert]] = {}
        for a in batch.alerts:
            if a.zone is not None and a.kind in kinds:
                parts.setdefault(f"zone:{a.zone}", []).append(a)
        return [(k, AlertBatch(v, batch.wm_ms)) for k, v in sorted(parts.items())]

    return split


class FusionLogic(StatefulBatchLogic[AlertBatch, AlertBatch, bytes]):
    """Bytewax state of one zone key: the corroborator's plain state is the snapshot."""

    def __init__(
        self,
        p: FusionParams,
        zones: Callable[[], Mapping[str, ZoneMeta]],
        resume: bytes | None,
    ) -> None:
        self._zones = zones
        self._zones_seen = zones()
        self.fuse = restore("fusion", Corroborator(p, self._zones_seen), resume)

    def on_batch(self, values: list[AlertBatch]) -> tuple[Iterable[AlertBatch], bool]:
        current = self._zones()
        if current is not self._zones_seen:  # zones were reloaded
            self.fuse.set_zones(current)
            self._zones_seen = current
        alerts = [a for batch in values for a in batch.alerts]
        out: list[Alert] = []
        self.fuse.on_alerts(alerts, out)
        if alerts:
            self.fuse.evict_idle(max(a.ts_ms for a in alerts))
        marks = [b.wm_ms for b in values if b.wm_ms is not None]
        wm_ms = min(marks) if marks else None
        return ([AlertBatch(out, wm_ms)] if out else []), StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes:
        return snapshot(self.fuse)


def add_fusion(alerts: Stream[AlertBatch], cfg: Config, holder: Any) -> Stream[AlertBatch]:
    """Corroborate alerts across sources per zone; returns the fusion alerts."""
    p = cfg.fusion

    def build(resume: Any) -> FusionLogic:
        return FusionLogic(p, holder.catalog, resume)

    by_zone = op.flat_map("fusion_by_zone", alerts, split_by_zone(p))
    return op.key_rm("fusion_alerts", op.stateful_batch("fusion", by_zone, build))


__all__ = ["FusionLogic", "add_fusion", "split_by_zone"]
