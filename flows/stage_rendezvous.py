"""The cross-key rendezvous stage: stop spans from the shards → ``track.rendezvous`` alerts.

Each detection shard reports the stop spans of tankers and their possible
partners (``citywatch.detectors.tracks_rendezvous.SpanReporter``). Here every span is
sent to its grid cell and to the neighbouring cells within the meeting radius,
the cells are hashed onto ``stage_shards`` Bytewax keys, and each key's
:class:`~detectors.tracks_rendezvous.RendezvousMatcher` finds the pairs. Only
the spans of the batch cross the key exchange, grouped per stage shard, and
the stage's cost depends on the stopped vehicles near each other, not on the
number of live vehicles. Each detection shard's watermark follows its spans to
every stage shard (when it has moved on by a minute of event time), so a
matcher forgets spans on the slowest shard's event time. The matcher's result
does not depend on the order in which shards' spans arrive, so any batching and
worker count gives the same alerts (see the module docstring of
``citywatch.detectors.tracks_rendezvous``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Stream
from bytewax.operators import StatefulBatchLogic

from citywatch.detectors.alerts import Alert
from citywatch.detectors.tracks_rendezvous import (
    Cell,
    RendezvousMatcher,
    RendezvousParams,
    StopSpan,
    cells_for,
    stage_key,
    stage_name,
)
from citywatch.detectors.watermark import NO_WATERMARK
from citywatch.flows.config import Config
from citywatch.flows.records import AlertBatch, ShardOutput
from citywatch.flows.recovery import restore, snapshot

# One routed span: the cell it is filed under, whether that is its home cell, the span.
Routed = tuple[Cell, bool, StopSpan]
PROGRESS_STEP_MS = 60_000  # a shard's watermark is passed on when it moved this much


@dataclass(frozen=True, slots=True)
class StageItem:
    """What one detection shard's activation sends one stage shard: its spans filed
    under that stage shard's cells, then (``wm_ms``) the shard's watermark."""

    shard: str
    spans: list[Routed]
    wm_ms: int | None


def route_spans(
    p: RendezvousParams,
) -> Callable[[tuple[str, ShardOutput]], list[tuple[str, StageItem]]]:
    """Group a shard output's spans by stage shard, one item per stage shard that gets
    any; every stage shard also gets the shard's watermark each time it has moved
    on by :data:`PROGRESS_STEP_MS` (how often does not change what is found: the
    matcher forgets only what no span still to come can pair with)."""
    stage_names = [stage_name(i) for i in range(p.stage_shards)]
    passed: dict[str, int] = {}  # shard -> watermark last passed on (this process)

    def route(item: tuple[str, ShardOutput]) -> list[tuple[str, StageItem]]:
        shard, res = item
        wm: int | None = res.wm_ms
        if wm is None or wm < passed.get(shard, NO_WATERMARK) + PROGRESS_STEP_MS:
            wm = None
        else:
            passed[shard] = wm
        if not res.spans and wm is None:
            return []
        parts: dict[str, list[Routed]] = {}
        for span in res.spans:
            for cell, home in cells_for(span.lon, span.lat, p.cell_m, p.radius_m):
                parts.setdefault(stage_key(cell, p.stage_shards), []).append((cell, home, span))
        if wm is None:
            return [(k, StageItem(shard, v, None)) for k, v in sorted(parts.items())]
        return [(k, StageItem(shard, parts.get(k, []), wm)) for k in stage_names]

    return route


class MatchLogic(StatefulBatchLogic[StageItem, AlertBatch, bytes]):
    """Bytewax state of one stage shard: the matcher's plain state is the snapshot."""

    def __init__(
        self, p: RendezvousParams, disorder_ms: int, producers: int, resume: bytes | None
    ) -> None:
        fresh = RendezvousMatcher(p, disorder_ms, producers)
        self.matcher = restore("rdv_match", fresh, resume)

    def on_batch(self, values: list[StageItem]) -> tuple[Iterable[AlertBatch], bool]:
        out: list[Alert] = []
        matcher = self.matcher
        for item in values:
            for cell, home, span in item.spans:
                matcher.add(cell, home, span, out)
            if item.wm_ms is not None:
                matcher.progress(item.shard, item.wm_ms)
        return ([AlertBatch(out)] if out else []), StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes:
        return snapshot(self.matcher)


def add_rendezvous(outputs: Stream[tuple[str, ShardOutput]], cfg: Config) -> Stream[AlertBatch]:
    """Find rendezvous in the shards' stop spans (``outputs``: (shard, output) pairs);
    returns the ``track.rendezvous`` alerts."""
    p = cfg.track_rendezvous
    routed = op.flat_map("rdv_route", outputs, route_spans(p))

    disorder_ms = cfg.flow.max_out_of_order_s * 1000  # shards report out of step by this much

    producers = cfg.flow.shards  # every detection shard reports on every batch

    def build(resume: Any) -> MatchLogic:
        return MatchLogic(p, disorder_ms, producers, resume)

    return op.key_rm("rdv_alerts", op.stateful_batch("rdv_match", routed, build))
