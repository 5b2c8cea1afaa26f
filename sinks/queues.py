"""Reading the dispatch: the receiving queues (streams with the ``officers`` consumer group)
and the work-order index ``{P}:index:{wo}``.

A queue stream keeps every entry ever written to it; the work order's hash is the
truth about where it is now, so a reader keeps the orders whose ``queue`` is still
this one (an order moved on by a return, reassign or escalation is skipped here).
"""

from __future__ import annotations

from typing import Any

import redis

from citywatch.sinks.keys import GROUP, Keys

OPEN_STATES = ("dispatched", "escalated", "signed", "handling", "returned")


def _str(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def _decode(raw: dict[Any, Any]) -> dict[str, str]:
    return {_str(k): _str(v) for k, v in raw.items()}


def index_ids(client: redis.Redis, keys: Keys) -> list[str]:
    """Every work order id in the index, oldest first."""
    return [_str(x) for x in client.zrange(keys.index(), 0, -1)]


def all_orders(client: redis.Redis, keys: Keys) -> list[dict[str, str]]:
    """Every indexed work order's hash, oldest first."""
    pipe = client.pipeline(transaction=False)
    for wo_id in index_ids(client, keys):
        pipe.hgetall(keys.wo(wo_id))
    return [_decode(raw) for raw in pipe.execute() if raw]


def queue_names(client: redis.Redis, keys: Keys) -> list[str]:
    """Every queue (CENTRE|DEPT) ever written, sorted."""
    return sorted(_str(x) for x in client.smembers(keys.queues()))


def read_queue(
    client: redis.Redis, keys: Keys, queue: str, states: tuple[str, ...] = OPEN_STATES
) -> list[dict[str, str]]:
    """The work orders whose current queue is ``queue`` (CENTRE|DEPT), in arrival order."""
    entries: list[Any] = client.xrange(keys.queue(queue))  # type: ignore[assignment]
    seen: set[str] = set()
    pipe = client.pipeline(transaction=False)
    for _, f in entries:
        wo = _str(f[b"wo"] if b"wo" in f else f["wo"])
        if wo not in seen:
            seen.add(wo)
            pipe.hgetall(keys.wo(wo))
    out: list[dict[str, str]] = []
    for raw in pipe.execute():
        doc = _decode(raw)
        if doc and doc.get("queue") == queue and doc.get("state") in states:
            out.append(doc)
    return out


def ensure_group(client: redis.Redis, keys: Keys, queue: str) -> None:
    """Create the queue's consumer group (from the start of the stream) if missing."""
    try:
        client.xgroup_create(keys.queue(queue), GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


# Fields that carry the wall clock of a write, not the input.
WALL_CLOCK_FIELDS = frozenset(
    {"created_ms", "updated_ms", "sign_due_ms", "resolve_due_ms", "queue_entry"}
)


def comparable_orders(client: redis.Redis, keys: Keys) -> dict[str, dict[str, Any]]:
    """Every indexed work order with its alerts and audit actions, wall-clock fields left
    out: what two runs over the same input must agree on."""
    out: dict[str, dict[str, Any]] = {}
    for wo_id in index_ids(client, keys):
        raw: dict[Any, Any] = client.hgetall(keys.wo(wo_id))
        doc: dict[str, Any] = {k: v for k, v in _decode(raw).items() if k not in WALL_CLOCK_FIELDS}
        doc["alerts"] = [_str(x) for x in client.lrange(keys.alerts(wo_id), 0, -1)]
        audit: list[Any] = client.xrange(keys.audit(wo_id))  # type: ignore[assignment]
        doc["audit"] = [_decode(fields).get("action", "") for _, fields in audit]
        out[wo_id] = doc
    return out
