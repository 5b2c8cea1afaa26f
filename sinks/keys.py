"""Redis key names of the dispatch layout, under one configurable prefix.

``P`` is the configured prefix; braces are Redis Cluster hash tags: everything
about one work order shares its slot; each queue, index and control key is its
own slot::

    P:wo:{WO}              hash    the work order (see :class:`citywatch.sinks.workorder.WorkOrder`)
    P:wo:{WO}:audit        stream  every change, oldest first (action, state, by, at, ...)
    P:wo:{WO}:alerts       list    every alert merged into the incident (JSON), as evidence
    P:wo:{WO}:seen         set     ids of those alerts (makes re-delivery a no-op)
    P:wo:{WO}:done         set     ids of the lifecycle transitions applied (repeat = no-op)
    P:queue:{CENTRE|DEPT}  stream  the receiving queue; consumer group ``officers``
    P:queues:{index}       set     names of all queues (CENTRE|DEPT) ever written
    P:index:{wo}           zset    every work order id, scored by creation (ms)
    P:due:{sign}           zset    unsigned work orders, scored by sign-off deadline (ms)
    P:due:{resolve}        zset    unresolved work orders, scored by resolution deadline
    P:feed:{live}          stream  live feed (created / updated / rerouted / lifecycle)
    P:silences:{ctl}       hash    silences (maintenance windows) by id, JSON
    P:silenced:{log}       stream  alerts a silence kept from dispatch, capped
    P:dlq:{dead}           stream  dead letters with their reasons

>>> Keys("cw").queue("county:qidong|water_resources")
'cw:queue:{county:qidong|water_resources}'
"""

from __future__ import annotations

LEVEL_RANK = {"town": 0, "county": 1, "city": 2}
GROUP = "officers"  # the consumer group of every receiving queue


class Keys:
    """Key names under one prefix, with Cluster hash tags."""

    def __init__(self, prefix: str = "cw") -> None:
        self.prefix = prefix

    def wo(self, wo_id: str) -> str:
        return f"{self.prefix}:wo:{{{wo_id}}}"

    def audit(self, wo_id: str) -> str:
        return f"{self.prefix}:wo:{{{wo_id}}}:audit"

    def alerts(self, wo_id: str) -> str:
        return f"{self.prefix}:wo:{{{wo_id}}}:alerts"

    def seen(self, wo_id: str) -> str:
        return f"{self.prefix}:wo:{{{wo_id}}}:seen"

    def done(self, wo_id: str) -> str:
        return f"{self.prefix}:wo:{{{wo_id}}}:done"

    def queue(self, queue: str) -> str:
        return f"{self.prefix}:queue:{{{queue}}}"

    def queue_pattern(self) -> str:
        return f"{self.prefix}:queue:*"

    def queues(self) -> str:
        return f"{self.prefix}:queues:{{index}}"

    def index(self) -> str:
        return f"{self.prefix}:index:{{wo}}"

    def due_sign(self) -> str:
        return f"{self.prefix}:due:{{sign}}"

    def due_resolve(self) -> str:
        return f"{self.prefix}:due:{{resolve}}"

    def feed(self) -> str:
        return f"{self.prefix}:feed:{{live}}"

    def silences(self) -> str:
        return f"{self.prefix}:silences:{{ctl}}"

    def silenced(self) -> str:
        return f"{self.prefix}:silenced:{{log}}"

    def dlq(self) -> str:
        return f"{self.prefix}:dlq:{{dead}}"

    def preflight(self) -> str:
        """Scratch keys of the permission check at start (deleted at once)."""
        return f"{self.prefix}:preflight:{{check}}"
