"""The corroboration stage: alerts of one zone from different sources → ``fusion.corroborated``.

``add_fusion(alerts, cfg, holder)`` takes the stream of alert lists (keyed by
shard or stage, or plain lists) right before incidents and routing, so it sees
the alerts of every detector and stage. Each batch's alerts of the fusion kinds
are grouped by zone and only those groups cross the key exchange (one item per
zone per batch, never one per alert); each zone key's
:class:`~detectors.fusion.Corroborator`'s plain state is its recovery snapshot. The fusion
alerts are merged back into the stream next to the alerts they fuse, which
pass through unchanged. The outcome does not depend on the order in which
shards' alerts arrive (see ``citywatch.detectors.fusion``).
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
from citywatch.flows.recovery import restore, snapshot


def split_by_zone(p: FusionParams) -> Callable[[Any], list[tuple[str, list[Alert]]]]:
    """Group one item's alerts of the fusion kinds by zone: ``[("zone:<id>", alerts)]``."""
    kinds = frozenset(p.kinds)

    def split(item: Any) -> list[tuple[str, list[Alert]]]:
        alerts = item[1] if isinstance(item, tuple) else item
        parts: dict[str, list[Alert]] = {}
        for a in alerts:
            if a.zone is not None and a.kind in kinds:
                parts.setdefault(f"zone:{a.zone}", []).append(a)
        return sorted(parts.items())

    return split


class FusionLogic(StatefulBatchLogic[list[Alert], list[Alert], bytes]):
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

    def on_batch(self, values: list[list[Alert]]) -> tuple[Iterable[list[Alert]], bool]:
        current = self._zones()
        if current is not self._zones_seen:  # zones were reloaded
            self.fuse.set_zones(current)
            self._zones_seen = current
        alerts = [a for batch in values for a in batch]
        out: list[Alert] = []
        self.fuse.on_alerts(alerts, out)
        if alerts:
            self.fuse.evict_idle(max(a.ts_ms for a in alerts))
        return ([out] if out else []), StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes:
        return snapshot(self.fuse)


def add_fusion(alerts: Stream[Any], cfg: Config, holder: Any) -> Stream[Any]:
    """Corroborate alerts across sources per zone; returns ``alerts`` plus fusion alerts."""
    p = cfg.fusion

    def build(resume: Any) -> FusionLogic:
        return FusionLogic(p, holder.catalog, resume)

    by_zone = op.flat_map("fusion_by_zone", alerts, split_by_zone(p))
    fused = op.stateful_batch("fusion", by_zone, build)
    return op.merge("alerts_and_fusion", alerts, fused)


__all__ = ["FusionLogic", "add_fusion", "split_by_zone"]
