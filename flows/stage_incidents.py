"""The incident stage: alert batches → incident batches, right before routing.

``add_incidents(alerts, cfg, holder)`` sends every :class:`AlertBatch` to one
key (alerts are few next to events, and a single merger sees every candidate
incident) and runs :class:`citywatch.detectors.incidents.IncidentMerger` as a
thin Bytewax shim. Each alert leaves at once, in an :class:`IncidentBatch`,
with its incident as it stands after it (:class:`IncidentView`), which routing
uses to route the incident as a whole and the dispatch sink to create the work
order (first alert) or update it (later ones). The work order is keyed by the id
the incident opened under (``IncidentView.opened_as``), so it stays the same
order when a late alert moves the incident's id; when a late alert links two
incidents, the one opened later is absorbed (``IncidentView.absorbed``) and the
sink closes its work order as merged into the survivor's.

Live runs (``[flow] timers = "wall"``) merge every alert as it comes: the
incidents do not depend on the order alerts arrive in (see the merger). A
replay also wants the *work orders* byte-identical at any speed, batch size
and worker count, and a work order is created by the first alert that
reaches it: so a replay holds each alert until every detection shard's
watermark (each shard's :class:`AlertBatch` carries it, alerts or not) has
passed it, and merges in ``(ts, id)`` order. That costs the out-of-order
bound of event time, which at replay speed is a blink.

``[incidents] hold_s`` (opt-in, default 0) holds alerts that much event time
and merges them in time order, which moves fewer incident ids for that much
delay; in a live run a held alert never waits more than ``hold_s`` of wall
time, and at the end of the input everything held is released. The merger's
plain state is the recovery snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Stream
from bytewax.operators import StatefulBatchLogic

from citywatch.detectors.alerts import Alert
from citywatch.detectors.incidents import IncidentMerger, IncidentParams, IncidentView
from citywatch.flows.config import Config
from citywatch.flows.records import AlertBatch, IncidentBatch
from citywatch.flows.recovery import restore, snapshot
from citywatch.flows.routing import department_of, locate_towns

KEY = "incidents"


class IncidentLogic(StatefulBatchLogic[AlertBatch, IncidentBatch, bytes]):
    def __init__(self, cfg: Config, holder: Any, resume: bytes | None) -> None:
        self.cfg = cfg
        self.holder = holder
        self.merger = restore(
            "incidents",
            IncidentMerger(cfg.incidents, slack_ms=cfg.flow.max_out_of_order_s * 1000),
            resume,
        )
        self._wait_until: datetime | None = None

    def _push(self, alerts: list[Alert]) -> list[tuple[Alert, IncidentView]]:
        return self.merger.push(alerts, *self._route_info(alerts))

    def _emit(
        self, pairs: list[tuple[Alert, IncidentView]]
    ) -> tuple[Iterable[IncidentBatch], bool]:
        # Only a live run releases held alerts on wall-clock time: in a replay that
        # would make the merge depend on how fast the machine runs.
        if self.merger.held() and self.cfg.flow.timers == "wall":
            if self._wait_until is None:
                hold = timedelta(seconds=self.cfg.incidents.hold_s)
                self._wait_until = datetime.now(UTC) + hold
        else:
            self._wait_until = None
        if not pairs:
            return [], StatefulBatchLogic.RETAIN
        batch = IncidentBatch([a for a, _ in pairs], [v for _, v in pairs])
        return [batch], StatefulBatchLogic.RETAIN

    def _route_info(self, alerts: list[Alert]) -> tuple[list[str | None], list[str | None]]:
        towns = locate_towns(alerts, self.holder.ref.jurisdictions)
        zones = self.holder.catalog()
        return towns, [department_of(a, self.cfg.routing, zones) for a in alerts]

    def on_batch(self, values: list[AlertBatch]) -> tuple[Iterable[IncidentBatch], bool]:
        alerts = [a for batch in values for a in batch.alerts]
        if self.cfg.flow.timers == "wall":
            return self._emit(self._push(alerts) if alerts else [])
        # Replay: the clock is the lowest shard watermark, once every shard reported.
        marks = self.merger.shard_marks_
        for batch in values:
            if batch.producer and batch.wm_ms is not None:
                marks[batch.producer] = max(marks.get(batch.producer, batch.wm_ms), batch.wm_ms)
        out = self.merger.hold(alerts, *self._route_info(alerts)) if alerts else []
        if len(marks) >= self.cfg.flow.shards:
            out += self.merger.release(min(marks.values()) - self.cfg.incidents.hold_s * 1000)
        return self._emit(out)

    def on_notify(self) -> tuple[Iterable[IncidentBatch], bool]:
        self._wait_until = None
        return self._emit(self.merger.flush())

    def on_eof(self) -> tuple[Iterable[IncidentBatch], bool]:
        self._wait_until = None
        return self._emit(self.merger.flush())

    def notify_at(self) -> datetime | None:
        return self._wait_until

    def snapshot(self) -> bytes:
        return snapshot(self.merger)


def _to_incident_key(batch: AlertBatch) -> tuple[str, AlertBatch]:
    return KEY, batch


def add_incidents(alerts: Stream[AlertBatch], cfg: Config, holder: Any) -> Stream[IncidentBatch]:
    """Merge the alert batches into incidents, one :class:`IncidentBatch` per activation."""

    def build(resume: Any) -> IncidentLogic:
        return IncidentLogic(cfg, holder, resume)

    keyed = op.map("incidents_key", alerts, _to_incident_key)
    return op.key_rm("incident_batches", op.stateful_batch("incidents", keyed, build))


__all__ = ["IncidentLogic", "IncidentParams", "add_incidents"]
