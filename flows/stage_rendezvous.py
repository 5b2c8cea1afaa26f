"""The cross-key rendezvous stage: stop spans from the shards → ``track.rendezvous`` alerts.

Each detection shard reports the stop spans of tankers and their possible
partners (``citywatch.detectors.tracks_rendezvous.SpanReporter``). Here every span is
sent to its grid cell and to the neighbouring cells within the meeting radius,
the cells are hashed onto ``stage_shards`` Bytewax keys, and each key's
:class:`~detectors.tracks_rendezvous.RendezvousMatcher` finds the pairs. Only
the spans of the batch cross the key exchange, grouped per stage shard, and
the stage's cost depends on the stopped vehicles near each other, not on the
number of live vehicles. The matcher's result does not depend on the order in
which shards' spans arrive, so any batching and worker count gives the same
alerts (see the module docstring of ``citywatch.detectors.tracks_rendezvous``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
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
)
from citywatch.flows.config import Config
from citywatch.flows.records import AlertBatch, ShardOutput
from citywatch.flows.recovery import restore, snapshot

# One routed span: the cell it is filed under, whether that is its home cell, the span.
Routed = tuple[Cell, bool, StopSpan]


def route_spans(p: RendezvousParams) -> Callable[[ShardOutput], list[tuple[str, list[Routed]]]]:
    """Group a shard output's spans by stage shard, one item per shard that gets any."""

    def route(res: ShardOutput) -> list[tuple[str, list[Routed]]]:
        if not res.spans:
            return []
        parts: dict[str, list[Routed]] = {}
        for span in res.spans:
            for cell, home in cells_for(span.lon, span.lat, p.cell_m, p.radius_m):
                parts.setdefault(stage_key(cell, p.stage_shards), []).append((cell, home, span))
        return sorted(parts.items())

    return route


class MatchLogic(StatefulBatchLogic[list[Routed], AlertBatch, bytes]):
    """Bytewax state of one stage shard: the matcher's plain state is the snapshot."""

    def __init__(self, p: RendezvousParams, disorder_ms: int, resume: bytes | None) -> None:
        self.matcher = restore("rdv_match", RendezvousMatcher(p, disorder_ms), resume)

    def on_batch(self, values: list[list[Routed]]) -> tuple[Iterable[AlertBatch], bool]:
        out: list[Alert] = []
        for routed in values:
            for cell, home, span in routed:
                self.matcher.add(cell, home, span, out)
        return ([AlertBatch(out)] if out else []), StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes:
        return snapshot(self.matcher)


def add_rendezvous(outputs: Stream[ShardOutput], cfg: Config) -> Stream[AlertBatch]:
    """Find rendezvous in the shards' stop spans; returns the ``track.rendezvous`` alerts."""
    p = cfg.track_rendezvous
    routed = op.flat_map("rdv_route", outputs, route_spans(p))

    disorder_ms = cfg.flow.max_out_of_order_s * 1000  # shards report out of step by this much

    def build(resume: Any) -> MatchLogic:
        return MatchLogic(p, disorder_ms, resume)

    return op.key_rm("rdv_alerts", op.stateful_batch("rdv_match", routed, build))
