"""The incident stage: alerts merged into incidents, right before routing.

``add_incidents(alerts, cfg, holder)`` takes the stream of alert lists from
the detectors (keyed by shard, or plain lists), sends them all to one key
(alerts are few next to events, and a single merger sees every candidate
incident), and runs :class:`citywatch.detectors.incidents.IncidentMerger` as a thin
Bytewax shim. Each released alert carries its incident id; the batch
(:class:`IncidentAlerts`, a list) also carries each alert's
:class:`~detectors.incidents.IncidentView`, which routing uses to route the
incident as a whole (severity, departments, towns) and the dispatch sink to
grow its work order.

Order and time: alerts are held for ``[incidents] hold_s`` of event time and
released in ``(ts, id)`` order (see the merger); at the end of the input
everything held is released, and in a live run an alert never waits more
than ``hold_s`` of wall-clock time. The merger's plain state is the recovery
snapshot.
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
from citywatch.flows.detect import WatermarkMark
from citywatch.flows.recovery import restore, snapshot
from citywatch.flows.routing import department_of, locate_towns

KEY = "incidents"


class IncidentAlerts(list[Alert]):
    """Released alerts with their incidents (``views[i]`` belongs to ``self[i]``)."""

    def __init__(self, pairs: Iterable[tuple[Alert, IncidentView]] = ()) -> None:
        pairs = list(pairs)
        super().__init__(a for a, _ in pairs)
        self.views: list[IncidentView] = [v for _, v in pairs]

    def __reduce__(self) -> tuple[Any, ...]:  # keep ``views`` across worker exchanges
        return (IncidentAlerts, (list(zip(self, self.views, strict=True)),))


class IncidentLogic(StatefulBatchLogic[list[Alert], IncidentAlerts, bytes]):
    def __init__(self, cfg: Config, holder: Any, resume: bytes | None) -> None:
        self.cfg = cfg
        self.holder = holder
        self.merger = restore("incidents", IncidentMerger(cfg.incidents), resume)
        self._wait_until: datetime | None = None

    def _push(
        self, alerts: list[Alert], mark_ms: int | None = None
    ) -> list[tuple[Alert, IncidentView]]:
        ref = self.holder.ref
        towns = locate_towns(alerts, ref.jurisdictions) if alerts else []
        zones = self.holder.catalog()
        depts = [department_of(a, self.cfg.routing, zones) for a in alerts]
        return self.merger.push(alerts, towns, depts, mark_ms=mark_ms)

    def _emit(
        self, pairs: list[tuple[Alert, IncidentView]]
    ) -> tuple[Iterable[IncidentAlerts], bool]:
        # Only a live run (wall-clock timers) releases held alerts on wall-clock time:
        # in a replay that would make the merge depend on how fast the machine runs.
        if self.merger.held() and self.cfg.flow.timers == "wall":
            if self._wait_until is None:
                hold = timedelta(seconds=self.cfg.incidents.hold_s)
                self._wait_until = datetime.now(UTC) + hold
        else:
            self._wait_until = None
        return ([IncidentAlerts(pairs)] if pairs else []), StatefulBatchLogic.RETAIN

    def on_batch(self, values: list[list[Alert]]) -> tuple[Iterable[IncidentAlerts], bool]:
        alerts = [a for batch in values for a in batch]
        # Every shard reports its watermark after each batch; the clock is the lowest
        # of them once all have reported, so no shard's alerts can still be behind it.
        seen = self.merger.shard_marks_
        for v in values:
            if isinstance(v, WatermarkMark):
                seen[v.shard] = max(seen.get(v.shard, v.wm_ms), v.wm_ms)
        mark = min(seen.values()) if len(seen) >= self.cfg.flow.shards else None
        if not alerts and mark is None:
            return self._emit([])
        return self._emit(self._push(alerts, mark))

    def on_notify(self) -> tuple[Iterable[IncidentAlerts], bool]:
        self._wait_until = None
        return self._emit(self.merger.flush())

    def on_eof(self) -> tuple[Iterable[IncidentAlerts], bool]:
        self._wait_until = None
        return self._emit(self.merger.flush())

    def notify_at(self) -> datetime | None:
        return self._wait_until

    def snapshot(self) -> bytes:
        return snapshot(self.merger)


def _to_incident_key(item: Any) -> tuple[str, list[Alert]]:
    alerts = item[1] if isinstance(item, tuple) else item
    return KEY, alerts if isinstance(alerts, WatermarkMark) else list(alerts)


def add_incidents(alerts: Stream[Any], cfg: Config, holder: Any) -> Stream[Any]:
    """Merge the detectors' alert lists into incidents; returns ``("incidents", batch)``."""

    def build(resume: Any) -> IncidentLogic:
        return IncidentLogic(cfg, holder, resume)

    keyed = op.map("incidents_key", alerts, _to_incident_key)
    return op.stateful_batch("incidents", keyed, build)


__all__ = ["IncidentAlerts", "IncidentLogic", "IncidentParams", "add_incidents"]
