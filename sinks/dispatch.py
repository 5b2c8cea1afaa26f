"""Work orders in Redis, the public API: one work order per incident, idempotent, with
queues, live feed and audit trail.

The parts, one job each (lower ones never import higher ones)::

    keys       key names under the prefix (the layout is documented there)
    scripts    the Lua scripts: dispatch upsert and lifecycle transitions
    workorder  the records: Route, Dispatch, Written, WorkOrder (the {P}:wo:{WO} hash)
    client     Redis clients, masked URLs, retry with capped backoff
    silences   maintenance windows applied at dispatch
    writer     WorkOrderWriter: dispatches to work orders (create, merge, reroute, requeue)
    queues     the queue reader and the work-order index
    lifecycle  WorkOrders: sign, start, resolve, close, return, reassign, escalate
    redis_sinks  the Bytewax-facing sinks: work orders and dead letters

>>> from citywatch.sinks.dispatch import Keys, WorkOrder
>>> Keys("cw").wo("wo-1a2b")
'{cw}:wo:{wo-1a2b}'
"""

from __future__ import annotations

from citywatch.sinks.client import DispatchError, RetryPolicy, connect, safe_url
from citywatch.sinks.keys import GROUP, LEVEL_RANK, Keys
from citywatch.sinks.redis_sinks import RedisDeadLetterSink, RedisDispatchSink
from citywatch.sinks.workorder import Dispatch, Route, WorkOrder, Written, work_order_id
from citywatch.sinks.writer import WorkOrderWriter

__all__ = [
    "GROUP",
    "LEVEL_RANK",
    "Dispatch",
    "DispatchError",
    "Keys",
    "RedisDeadLetterSink",
    "RedisDispatchSink",
    "RetryPolicy",
    "Route",
    "WorkOrder",
    "WorkOrderWriter",
    "Written",
    "connect",
    "safe_url",
    "work_order_id",
]
