"""SLA enforcement and accountability: the escalator pass and the report figures.

:func:`escalate_due` moves every work order whose sign-off deadline passed
while unsigned to its centre's parent (town → county → city), with a fresh
sign-off deadline, and flags every order whose resolution deadline passed.
It reads the deadline indexes ``{P}:due:{sign}`` / ``{P}:due:{resolve}``, which the
lifecycle scripts keep in step with each order's state; the Lua transition
re-checks state and deadline, so running several escalators, or one on a stale
read, is safe. An unsigned order at the top centre (no parent) stays due and is
reported on every pass until someone signs it.

:func:`accountability` computes per department and per centre: orders,
signed, sign-off time and handling time percentiles (seconds), overdue and
returns — what ``citywatch report`` prints.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from citywatch.sinks import queues as queue_reader
from citywatch.sinks.lifecycle import UNSIGNED, UnknownWorkOrder, WorkOrderError, WorkOrders

ParentOf = Callable[[str], tuple[str, str] | None]  # centre -> (parent centre, its level)


@dataclass
class EscalationResult:
    escalated: list[str] = field(default_factory=list)
    at_top: list[str] = field(default_factory=list)  # overdue, no parent centre left
    overdue: list[str] = field(default_factory=list)


def escalate_due(
    orders: WorkOrders, parent_of: ParentOf, *, now_ms: int | None = None
) -> EscalationResult:
    now = int(time.time() * 1000) if now_ms is None else now_ms
    client, keys = orders.client, orders.keys
    out = EscalationResult()
    for raw in client.zrangebyscore(keys.due_sign(), "-inf", now):
        wo_id = raw.decode() if isinstance(raw, bytes) else str(raw)
        try:
            wo = orders.get(wo_id)
        except UnknownWorkOrder:
            client.zrem(keys.due_sign(), wo_id)  # a deleted order: nothing keeps it current
            continue
        if wo["state"] not in UNSIGNED:
            continue  # signed meanwhile: its transition took it out of the due set
        parent = parent_of(wo["centre"])
        if parent is None:
            out.at_top.append(wo_id)  # stays due: reported on every pass until signed
            continue
        try:
            orders.escalate(wo_id, to_centre=parent[0], level=parent[1], now_ms=now)
            out.escalated.append(wo_id)
        except UnknownWorkOrder:
            client.zrem(keys.due_sign(), wo_id)
        except WorkOrderError:
            continue  # signed meanwhile, or not due: the transition said no
    for raw in client.zrangebyscore(keys.due_resolve(), "-inf", now):
        wo_id = raw.decode() if isinstance(raw, bytes) else str(raw)
        try:
            orders.flag_overdue(wo_id, now_ms=now)  # takes it out of the due set
            out.overdue.append(wo_id)
        except UnknownWorkOrder:
            client.zrem(keys.due_resolve(), wo_id)
        except WorkOrderError:
            pass  # resolved or flagged meanwhile: its transition keeps the set right
    return out


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile; None for no values.

    >>> percentile([1, 2, 3, 4], 50), percentile([], 90)
    (2, None)
    """
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, int(-(-q * len(ordered) // 100)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class Accountability:
    orders: int = 0
    signed: int = 0
    resolved: int = 0
    closed: int = 0
    returns: int = 0
    escalations: int = 0
    overdue: int = 0
    sign_s: list[float] = field(default_factory=list)
    handle_s: list[float] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        return {
            "orders": self.orders,
            "signed": self.signed,
            "resolved": self.resolved,
            "closed": self.closed,
            "sign_p50_s": percentile(self.sign_s, 50),
            "sign_p90_s": percentile(self.sign_s, 90),
            "handle_p50_s": percentile(self.handle_s, 50),
            "handle_p90_s": percentile(self.handle_s, 90),
            "overdue": self.overdue,
            "returns": self.returns,
            "escalations": self.escalations,
        }


def accountability(
    orders: Iterable[dict[str, str]], *, now_ms: int | None = None
) -> dict[str, dict[str, dict[str, Any]]]:
    """``{"department": {name: row}, "centre": {name: row}}`` over the given work orders."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    by: dict[str, dict[str, Accountability]] = {"department": {}, "centre": {}}
    for wo in orders:
        state = wo.get("state", "")
        if state == "merged":  # part of the order it merged into, counted there
            continue
        created = int(wo.get("created_ms") or 0)
        signed = int(wo["signed_ms"]) if wo.get("signed_ms") else None
        resolved = int(wo["resolved_ms"]) if wo.get("resolved_ms") else None
        late_sign = state in UNSIGNED and int(wo.get("sign_due_ms") or now) < now
        overdue = wo.get("overdue") == "1" or late_sign
        for dim, name in (
            ("department", wo.get("department", "")),
            ("centre", wo.get("centre", "")),
        ):
            acc = by[dim].setdefault(name, Accountability())
            acc.orders += 1
            acc.returns += int(wo.get("returns") or 0)
            acc.escalations += int(wo.get("escalations") or 0)
            acc.overdue += int(overdue)
            if signed is not None:
                acc.signed += 1
                acc.sign_s.append((signed - created) / 1000)
            if resolved is not None:
                acc.resolved += 1
                acc.handle_s.append((resolved - (signed or created)) / 1000)
            acc.closed += int(state == "closed")
    return {dim: {k: v.row() for k, v in sorted(rows.items())} for dim, rows in by.items()}


def all_orders(orders: WorkOrders) -> list[dict[str, str]]:
    """Every indexed work order's hash, oldest first."""
    return queue_reader.all_orders(orders.client, orders.keys)
