"""Redis key names of the dispatch layout, under one configurable prefix.

``P`` is the configured prefix. Every key starts with ``{P}``: Redis Cluster hashes
only the first braced part of a key name, so all keys of one prefix share one hash
slot, and each Lua script (a dispatch upsert or a lifecycle transition writes the
order's hash, audit, queue entries, index, due sets and live feed in one call) runs
on one node. The braces further on name the parts and no longer choose the slot.
The webhook keys (:mod:`citywatch.sinks.integrations.webhooks`) and the console's
(users, sessions, API tokens, login guard) start with ``{P}`` too, so one ACL key
pattern (``~{cw}:*``) covers citywatch. Keys written by earlier versions
(``{P}:wo:{WO}``: no braces around ``P``) are renamed by ``citywatch redis
migrate-keys`` (:func:`migrated_name`)::

    {P}:wo:{WO}              hash    the work order (:class:`~citywatch.sinks.workorder.WorkOrder`)
    {P}:wo:{WO}:audit        stream  every change, oldest first (action, state, by, at, ...)
    {P}:wo:{WO}:alerts       list    every alert merged into the incident (JSON), as evidence
    {P}:wo:{WO}:seen         set     ids of those alerts (makes re-delivery a no-op)
    {P}:wo:{WO}:done         set     ids of the lifecycle transitions applied (repeat = no-op)
    {P}:queue:{CENTRE|DEPT}  stream  the receiving queue; consumer group ``officers``
    {P}:queues:{index}       set     names of all queues (CENTRE|DEPT) ever written
    {P}:index:{wo}           zset    every work order id, scored by creation (ms)
    {P}:due:{sign}           zset    unsigned work orders, scored by sign-off deadline (ms)
    {P}:due:{resolve}        zset    unresolved work orders, scored by resolution deadline
    {P}:feed:{live}          stream  live feed (created / updated / rerouted / lifecycle)
    {P}:silences:{ctl}       hash    silences (maintenance windows) by id, JSON
    {P}:silenced:{log}       stream  alerts a silence kept from dispatch, capped
    {P}:dlq:{dead}           stream  dead letters with their reasons

>>> Keys("cw").queue("county:qidong|water_resources")
'{cw}:queue:{county:qidong|water_resources}'
>>> Keys("cw").wo("wo-1a2b"), tagged("cw")
('{cw}:wo:{wo-1a2b}', '{cw}')
"""

from __future__ import annotations

LEVEL_RANK = {"town": 0, "county": 1, "city": 2}
GROUP = "officers"  # the consumer group of every receiving queue


def tagged(prefix: str) -> str:
    """The start of every key under ``prefix``: the prefix as a Cluster hash tag."""
    return f"{{{prefix}}}"


class Keys:
    """Key names under one prefix, all in the prefix's hash slot."""

    def __init__(self, prefix: str = "cw") -> None:
        self.prefix = prefix
        self.root = tagged(prefix)  # what the Lua scripts put before ':queue:{Q}'

    def wo(self, wo_id: str) -> str:
        return f"{self.root}:wo:{{{wo_id}}}"

    def audit(self, wo_id: str) -> str:
        return f"{self.root}:wo:{{{wo_id}}}:audit"

    def alerts(self, wo_id: str) -> str:
        return f"{self.root}:wo:{{{wo_id}}}:alerts"

    def seen(self, wo_id: str) -> str:
        return f"{self.root}:wo:{{{wo_id}}}:seen"

    def done(self, wo_id: str) -> str:
        return f"{self.root}:wo:{{{wo_id}}}:done"

    def queue(self, queue: str) -> str:
        return f"{self.root}:queue:{{{queue}}}"

    def queue_pattern(self) -> str:
        return f"{self.root}:queue:*"

    def queues(self) -> str:
        return f"{self.root}:queues:{{index}}"

    def index(self) -> str:
        return f"{self.root}:index:{{wo}}"

    def due_sign(self) -> str:
        return f"{self.root}:due:{{sign}}"

    def due_resolve(self) -> str:
        return f"{self.root}:due:{{resolve}}"

    def feed(self) -> str:
        return f"{self.root}:feed:{{live}}"

    def silences(self) -> str:
        return f"{self.root}:silences:{{ctl}}"

    def silenced(self) -> str:
        return f"{self.root}:silenced:{{log}}"

    def dlq(self) -> str:
        return f"{self.root}:dlq:{{dead}}"

    def preflight(self) -> str:
        """Scratch keys of the permission check at start (deleted at once)."""
        return f"{self.root}:preflight:{{check}}"


def legacy_pattern(prefix: str) -> str:
    """The SCAN pattern of the keys earlier versions wrote (``{P}:...``, no hash tag)."""
    return f"{prefix}:*"


def migrated_name(prefix: str, legacy: str) -> str:
    """The name an earlier version's key has now: ``{P}:REST`` -> ``{P}:REST``.

    >>> migrated_name("cw", "cw:wo:{wo-1}:audit")
    '{cw}:wo:{wo-1}:audit'
    """
    if not legacy.startswith(f"{prefix}:"):
        msg = f"key {legacy!r} is not under the prefix {prefix!r}"
        raise ValueError(msg)
    return tagged(prefix) + legacy[len(prefix) :]
