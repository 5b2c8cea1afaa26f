"""The corroboration stage: alerts of one zone from different sources → ``fusion.corroborated``.

``add_fusion(alerts, cfg, holder)`` takes the stream of alert batches right
before incidents and routing, so it sees the alerts of every detector and
stage. Each batch's alerts of the fusion kinds go to one key (they are few),
with the batch's producer and watermark: one
:class:`~detectors.fusion.Corroborator` for every zone, whose plain state is the
recovery snapshot. It returns the fusion alerts only; the pipeline merges them
into the stream next to the alerts they fuse.

A replay holds each alert until every detection shard's watermark has passed
it (each shard's :class:`AlertBatch` carries it, alerts or not), plus the
longest ``allowed_lateness_s`` of ``sensor.window`` (windows are raised after
their ``ts``), and then decides it with every partner in: the fusion alerts,
evidence and ``first_ts`` included, do not depend on the order in which
shards' alerts arrive, on batch size or on worker count. A live run decides
each alert when it comes (evidence is then what had arrived). At the end of
the input everything held is decided.
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

KEY = "fusion"


def split_by_zone(p: FusionParams) -> Callable[[AlertBatch], list[tuple[str, AlertBatch]]]:
    """Group a batch's alerts of the fusion kinds by zone: ``[("zone:<id>", batch)]``
    (the former keying, kept for the in-process baseline of ``citywatch bench``)."""
    kinds = frozenset(p.kinds)

    def split(batch: AlertBatch) -> list[tuple[str, AlertBatch]]:
        parts: dict[str, list[Alert]] = {}
        for a in batch.alerts:
            if a.zone is not None and a.kind in kinds:
                parts.setdefault(f"zone:{a.zone}", []).append(a)
        return [(k, AlertBatch(v, batch.wm_ms)) for k, v in sorted(parts.items())]

    return split


def fusion_input(
    p: FusionParams, *, clock: bool
) -> Callable[[AlertBatch], list[tuple[str, AlertBatch]]]:
    """A batch's alerts of the fusion kinds, keyed to the one fusion state; with ``clock``
    also a detection shard's batch without any (it carries the shard's watermark)."""
    kinds = frozenset(p.kinds)

    def pick(batch: AlertBatch) -> list[tuple[str, AlertBatch]]:
        alerts = [a for a in batch.alerts if a.zone is not None and a.kind in kinds]
        if alerts or (clock and batch.producer and batch.wm_ms is not None):
            return [(KEY, AlertBatch(alerts, batch.wm_ms, batch.producer))]
        return []

    return pick


def window_lag_ms(cfg: Config) -> int:
    """How long after its ``ts`` a fusion-kind alert may still be raised, in event time:
    the longest ``allowed_lateness_s`` of the ``sensor.window`` rules."""
    rules = [r for rs in cfg.sensor_window.values() for r in rs]
    return max((r.allowed_lateness_s for r in rules), default=0) * 1000


class FusionLogic(StatefulBatchLogic[AlertBatch, AlertBatch, bytes]):
    """Bytewax state of the fusion key: the corroborator's plain state is the snapshot.
    ``producers``: the detection shards whose lowest watermark is a replay's clock;
    None decides every alert on arrival (live)."""

    def __init__(
        self,
        p: FusionParams,
        zones: Callable[[], Mapping[str, ZoneMeta]],
        resume: bytes | None,
        *,
        producers: int | None = None,
        lag_ms: int = 0,
    ) -> None:
        self._zones = zones
        self._zones_seen = zones()
        self._producers = producers
        fresh = Corroborator(p, self._zones_seen, lag_ms=lag_ms)
        self.fuse = restore("fusion", fresh, resume)

    def on_batch(self, values: list[AlertBatch]) -> tuple[Iterable[AlertBatch], bool]:
        current = self._zones()
        if current is not self._zones_seen:  # zones were reloaded
            self.fuse.set_zones(current)
            self._zones_seen = current
        alerts = [a for batch in values for a in batch.alerts]
        out: list[Alert] = []
        if self._producers is None:
            self.fuse.on_alerts(alerts, out)
        else:
            self.fuse.hold(alerts, out)
            for batch in values:
                if batch.producer and batch.wm_ms is not None:
                    self.fuse.mark(batch.producer, batch.wm_ms)
            clock = self.fuse.clock(self._producers)
            if clock is not None:
                self.fuse.advance(clock, out)
        if alerts:
            self.fuse.evict_idle(max(a.ts_ms for a in alerts))
        return self._emit(out, values)

    def _emit(
        self, out: list[Alert], values: list[AlertBatch]
    ) -> tuple[Iterable[AlertBatch], bool]:
        marks = [b.wm_ms for b in values if b.wm_ms is not None]
        wm_ms = min(marks) if marks else None
        return ([AlertBatch(out, wm_ms)] if out else []), StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[AlertBatch], bool]:
        out: list[Alert] = []
        self.fuse.flush(out)
        return self._emit(out, [])

    def snapshot(self) -> bytes:
        return snapshot(self.fuse)


def add_fusion(alerts: Stream[AlertBatch], cfg: Config, holder: Any) -> Stream[AlertBatch]:
    """Corroborate alerts across sources per zone; returns the fusion alerts."""
    p = cfg.fusion

    replay = cfg.flow.timers == "event"
    producers = cfg.flow.shards if replay else None
    lag_ms = window_lag_ms(cfg)

    def build(resume: Any) -> FusionLogic:
        return FusionLogic(p, holder.catalog, resume, producers=producers, lag_ms=lag_ms)

    keyed = op.flat_map("fusion_input", alerts, fusion_input(p, clock=replay))
    return op.key_rm("fusion_alerts", op.stateful_batch("fusion", keyed, build))


__all__ = ["FusionLogic", "add_fusion", "fusion_input", "split_by_zone", "window_lag_ms"]
