"""The event catalogue and the JSON documents the integrations send.

Every change of a work order is one entry of the live feed ``{P}:feed:{live}``
(its ``event`` field is the dispatch outcome or the lifecycle action). It
becomes one event of this catalogue:

=========================  ================================================
type                       feed actions
=========================  ================================================
``workorder.created``      ``created`` (first alert of an incident)
``workorder.updated``      ``merged``, ``rerouted``, ``start``, ``resolve``,
                           ``reopen``, ``reassign``, ``overdue``, any other
``workorder.signed``       ``sign``
``workorder.escalated``    ``escalate``
``workorder.closed``       ``close``
``workorder.returned``     ``return``
=========================  ================================================

A webhook body (and a record of the Kafka work-order topic) is the Standard
Webhooks envelope ``{"type", "timestamp", "data"}`` where ``data`` holds
``work_order_id``, ``incident``, ``sequence`` (1, 2, 3… per work order, in
the order of the changes), ``action``, ``state``, ``by``, ``work_order`` (the
work order's fields as read when the event was relayed) and ``alert`` (the
alert for ``created`` and ``merged`` changes, else null).

>>> event_type("sign"), event_type("merged"), event_type("created")
('workorder.signed', 'workorder.updated', 'workorder.created')
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

EVENT_TYPES = (
    "workorder.created",
    "workorder.updated",
    "workorder.signed",
    "workorder.escalated",
    "workorder.closed",
    "workorder.returned",
)
_BY_ACTION = {
    "created": "workorder.created",
    "requeue": "workorder.created",
    "sign": "workorder.signed",
    "signed": "workorder.signed",
    "escalate": "workorder.escalated",
    "escalated": "workorder.escalated",
    "close": "workorder.closed",
    "closed": "workorder.closed",
    "return": "workorder.returned",
    "returned": "workorder.returned",
}
# Bookkeeping fields of the work-order hash that mean nothing outside Redis.
_INTERNAL = frozenset({"queued", "queue_entry", "severity_rank", "alerts"})
# What is kept of a work order when a body must shrink under the size bound.
_CORE = (
    "id",
    "incident",
    "state",
    "kind",
    "severity",
    "subject",
    "zone",
    "lon",
    "lat",
    "ts",
    "centre",
    "department",
    "level",
)


def event_type(action: str) -> str:
    """The catalogue type of a feed action."""
    return _BY_ACTION.get(action, "workorder.updated")


def iso_ms(ms: int) -> str:
    """RFC 3339 UTC with milliseconds.

    >>> iso_ms(0)
    '1970-01-01T00:00:00.000Z'
    """
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def entry_ms(entry_id: str) -> int:
    """The milliseconds part of a stream entry id (when Redis appended it)."""
    return int(entry_id.split("-", 1)[0])


def public_order(h: Mapping[str, str]) -> dict[str, str]:
    """A work order hash as integrations show it."""
    return {k: v for k, v in h.items() if k not in _INTERNAL}


def build_event(
    feed_id: str,
    fields: Mapping[str, str],
    order: Mapping[str, str],
    sequence: int,
) -> dict[str, Any]:
    """The envelope for one feed entry, given the work order's hash and its sequence."""
    action = fields.get("event", "")
    alert: Any = None
    if fields.get("alert"):
        try:
            alert = orjson.loads(fields["alert"])
        except orjson.JSONDecodeError:
            alert = None
    state = fields.get("state") or ("dispatched" if action == "created" else order.get("state"))
    wo = public_order(order)
    return {
        "type": event_type(action),
        "timestamp": iso_ms(entry_ms(feed_id)),
        "data": {
            "work_order_id": fields.get("wo", ""),
            "incident": fields.get("incident") or order.get("incident", ""),
            "sequence": sequence,
            "action": action,
            "state": state or "",
            "by": fields.get("by") or None,
            "centre": fields.get("centre") or order.get("centre", ""),
            "department": fields.get("department") or order.get("department", ""),
            "severity": fields.get("severity") or order.get("severity", ""),
            "work_order": wo,
            "alert": alert,
        },
    }


def encode_bounded(event: dict[str, Any], max_bytes: int) -> bytes:
    """The JSON body, shrunk under ``max_bytes``: first the alert is cut to its summary,
    then the work order to its core fields; ``data.truncated`` says it happened."""
    body = orjson.dumps(event)
    if len(body) <= max_bytes:
        return body
    data = dict(event["data"])
    alert = data.get("alert")
    if isinstance(alert, dict):
        data["alert"] = {k: alert.get(k) for k in ("id", "kind", "severity", "ts", "subject")}
    data["truncated"] = True
    body = orjson.dumps({**event, "data": data})
    if len(body) <= max_bytes:
        return body
    data["work_order"] = {k: v for k, v in data["work_order"].items() if k in _CORE}
    return orjson.dumps({**event, "data": data})
