"""The work-order lifecycle: the one API the officer tool, the escalator and the console share.

States and transitions (each one call of one Lua script, so it is atomic: two
officers signing the same order at once, exactly one wins)::

    dispatched ──sign──> signed ──start──> handling ──resolve──> resolved ──close──> closed
        │  ^                │                  │                    │
        │  └──reassign──────┴──────────────────┘                    └──reopen──> handling
        ├──escalate (sign-off overdue) ──> escalated ──sign──> signed ...
        └──return_ (wrong department) ──> returned ──reassign──> dispatched

    any state but merged ──merge (its incident joined an older one)──> merged

Usage::

    from citywatch.sinks.lifecycle import WorkOrders, TransitionRefused
    orders = WorkOrders(client, Keys("cw"))
    orders.sign("wo-…", "alice")                      # dispatched|escalated -> signed
    orders.start("wo-…", "alice")                     # signed -> handling
    orders.resolve("wo-…", "alice", "site cleared")   # signed|handling -> resolved
    orders.close("wo-…", "centre-bob")                # resolved -> closed (centre verifies)
    orders.reopen("wo-…", "centre-bob", "not fixed")  # resolved -> handling
    orders.return_("wo-…", "alice", "not ours", to_department="transport")
    orders.reassign("wo-…", "centre-bob", department="transport", centre="county:rudong")
    orders.escalate("wo-…", to_centre="city", level="city")   # the escalator does this
    orders.merge("wo-new", "wo-old", incident="in-…")  # dispatch does this (see below)
    orders.get("wo-…"); orders.audit("wo-…"); orders.alerts("wo-…")
    orders.queue("town:x|water_resources")            # open orders of one queue

Every method returns the work order after the change (a dict of str) and
raises :class:`TransitionRefused` (with the current state and the reason) when
the order is not in a state that allows it, or :class:`UnknownWorkOrder`.
Every change appends to the audit stream ``{P}:wo:{WO}:audit`` (action, state,
by, at, and the details) and to the live feed. Times are epoch milliseconds;
``now_ms`` may be passed (tests, replays), else the wall clock is used.

Each transition writes everything it changes in that one call: the hash, the
audit line, the queue entries (signing and returning acknowledge the order's entry
in its queue's consumer group ``officers``; a move by reassign or escalation
acknowledges and deletes the old entry and adds one to the new queue), the due
sets and the live feed. Each carries a transition id (``transition_id=``, else a
fresh one per call), recorded in ``{P}:wo:{WO}:done``: the call is retried with the
same id while the connection is cut, and a repeat of an applied id changes nothing.

``merge`` is the dispatch's own transition (:data:`~citywatch.sinks.scripts.MERGE_LUA`):
when a late alert links two incidents, the work order of the one opened later is
closed as ``merged`` into the other's (``merged_into``), keeping its sign-off, notes
and audit trail; the survivor's audit names it, and an unsigned survivor takes over
the absorbed order's sign-off. Its transition id is fixed by the pair
(:func:`merge_call`), so a replay or a restart repeats nothing.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import orjson
import redis

from citywatch.sinks import queues as queue_reader
from citywatch.sinks.client import RetryPolicy, wait_for_replicas
from citywatch.sinks.keys import LEVEL_RANK, Keys
from citywatch.sinks.queues import OPEN_STATES
from citywatch.sinks.scripts import MERGE_LUA, TRANSITION_LUA
from citywatch.sinks.workorder import WorkOrder

log = logging.getLogger(__name__)

UNSIGNED = ("dispatched", "escalated")
# An officer waits a few seconds for a cut connection to come back, not for ever.
TRANSITION_RETRY = RetryPolicy(first_s=0.05, max_s=1.0, give_up_s=10.0)


class WorkOrderError(RuntimeError):
    """A lifecycle operation failed; the message says why and what is allowed."""


class UnknownWorkOrder(WorkOrderError):
    """No such work order: check the id (``wo-…``) and the key prefix."""


class TransitionRefused(WorkOrderError):
    """The work order's state does not allow this action; read its state and audit trail."""

    def __init__(self, wo_id: str, action: str, state: str, allowed: tuple[str, ...]) -> None:
        self.wo_id, self.action, self.state, self.allowed = wo_id, action, state, allowed
        super().__init__(
            f"{action} refused for {wo_id}: it is {state}; {action} needs {' or '.join(allowed)}"
        )


def merge_call(
    keys: Keys,
    from_id: str,
    into_id: str,
    incident: str,
    now_ms: int,
    *,
    feed_maxlen: int = 10_000,
    by: str = "citywatch",
) -> tuple[list[str], list[str]]:
    """The keys and arguments of merging work order ``from_id`` into ``into_id``; the
    transition id is the pair's, so the merge is applied once whoever repeats it.

    >>> ks, argv = merge_call(Keys("cw"), "wo-b", "wo-a", "in-a", 5)
    >>> ks[0], ks[3], argv[1]
    ('{cw}:wo:{wo-b}', '{cw}:wo:{wo-a}', 'merge:wo-b>wo-a')
    """
    ks = [
        keys.wo(from_id),
        keys.audit(from_id),
        keys.done(from_id),
        keys.wo(into_id),
        keys.audit(into_id),
        keys.due_sign(),
        keys.due_resolve(),
        keys.feed(),
    ]
    argv = [str(now_ms), f"merge:{from_id}>{into_id}", keys.root, str(feed_maxlen),
            incident, by, from_id, into_id]  # fmt: skip
    return ks, argv


def _now(now_ms: int | None) -> int:
    return int(time.time() * 1000) if now_ms is None else now_ms


def _str(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


class WorkOrders:
    """Lifecycle operations on work orders in Redis (see the module docstring)."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        *,
        feed_maxlen: int = 10_000,
        retry: RetryPolicy = TRANSITION_RETRY,
        wait_replicas: int = 0,
    ) -> None:
        self.client = client
        self.keys = keys
        self.feed_maxlen = feed_maxlen
        self.retry = retry
        self.wait_replicas = wait_replicas  # see [redis] wait_replicas
        self._transition = client.register_script(TRANSITION_LUA)
        self._merge = client.register_script(MERGE_LUA)

    # -- reading -------------------------------------------------------------------
    def get(self, wo_id: str) -> dict[str, str]:
        raw: dict[Any, Any] = self.client.hgetall(self.keys.wo(wo_id))
        if not raw:
            msg = f"work order {wo_id!r} not found under prefix {self.keys.prefix!r}"
            raise UnknownWorkOrder(msg)
        return {_str(k): _str(v) for k, v in raw.items()}

    def audit(self, wo_id: str) -> list[dict[str, str]]:
        entries: list[Any] = self.client.xrange(self.keys.audit(wo_id))  # type: ignore[assignment]
        return [{"id": _str(i), **{_str(k): _str(v) for k, v in f.items()}} for i, f in entries]

    def alerts(self, wo_id: str) -> list[dict[str, Any]]:
        docs: list[Any] = self.client.lrange(self.keys.alerts(wo_id), 0, -1)
        return [orjson.loads(d) for d in docs]

    def record(self, wo_id: str) -> WorkOrder:
        """The work order as a typed record."""
        return WorkOrder.from_hash(self.get(wo_id))

    def ids(self) -> list[str]:
        """Every work order id, oldest first."""
        return queue_reader.index_ids(self.client, self.keys)

    def queues(self) -> list[str]:
        return queue_reader.queue_names(self.client, self.keys)

    def queue(self, queue: str, states: tuple[str, ...] = OPEN_STATES) -> list[dict[str, str]]:
        """The work orders whose current queue is ``queue`` (CENTRE|DEPT), in arrival order."""
        return queue_reader.read_queue(self.client, self.keys, queue, states)

    def ensure_group(self, queue: str) -> None:
        """Create the queue's consumer group (from the start of the stream) if missing."""
        queue_reader.ensure_group(self.client, self.keys, queue)

    # -- transitions ---------------------------------------------------------------
    def _apply(
        self,
        wo_id: str,
        action: str,
        by: str,
        allowed: tuple[str, ...],
        new_state: str,
        now_ms: int | None,
        fields: dict[str, str] | None = None,
        details: dict[str, Any] | None = None,
        condition: str = "",
        *,
        move: dict[str, str] | None = None,
        ack: bool = False,
        transition_id: str | None = None,
    ) -> tuple[str, dict[str, str]]:
        """One transition, as one atomic, idempotent script call.

        The call is retried with the same transition id while the connection is cut,
        so a transition the server applied before the cut is not applied twice (the
        script answers ``repeat`` and the order is returned as it is now).
        """
        if not by:
            msg = f"{action} of {wo_id}: name who does it (officer or centre id)"
            raise WorkOrderError(msg)
        argv: list[str] = [
            action,
            by,
            str(_now(now_ms)),
            ",".join(allowed),
            new_state,
            condition,
            orjson.dumps(details).decode() if details else "",
            transition_id or uuid.uuid4().hex,
            self.keys.root,
            str(self.feed_maxlen),
            orjson.dumps(move).decode() if move else "",
            "1" if ack else "0",
        ]
        for k, v in (fields or {}).items():
            argv += (k, v)
        keys = [
            self.keys.wo(wo_id),
            self.keys.audit(wo_id),
            self.keys.done(wo_id),
            self.keys.queues(),
            self.keys.due_sign(),
            self.keys.due_resolve(),
            self.keys.feed(),
        ]
        res = self.retry.run(lambda: self._call(keys, argv))
        outcome, before = _str(res[0]), _str(res[1])
        if outcome == "missing":
            msg = f"work order {wo_id!r} not found under prefix {self.keys.prefix!r}"
            raise UnknownWorkOrder(msg)
        if outcome == "refused":
            raise TransitionRefused(wo_id, action, before, allowed)
        if outcome == "not_due":
            msg = f"{action} refused for {wo_id}: its deadline has not passed (state {before})"
            raise WorkOrderError(msg)
        after = self.retry.run(lambda: self.get(wo_id))
        log.info(
            "work order %s: %s by %s (%s -> %s)",
            wo_id,
            action,
            by,
            before,
            after.get("state", ""),
            extra={"wo_id": wo_id, "queue": after.get("queue", ""), "by": by, "action": action},
        )
        return before, after

    def _call(self, keys: list[str], argv: list[str], script: Any = None) -> Any:
        """The transition script's call (or ``script``'s); with ``wait_replicas``, only
        once replicas have it (a retry after too few repeats the same transition id: a
        no-op on the server)."""
        res = (script or self._transition)(keys=keys, args=argv)
        if self.wait_replicas:
            wait_for_replicas(self.client, keys[0], self.wait_replicas, 1000)
        return res

    def sign(
        self,
        wo_id: str,
        officer: str,
        *,
        now_ms: int | None = None,
        transition_id: str | None = None,
    ) -> dict[str, str]:
        """Sign off (take responsibility); acknowledges the queue entry."""
        now = _now(now_ms)
        fields = {"signed_by": officer, "signed_ms": str(now)}
        return self._apply(
            wo_id, "sign", officer, UNSIGNED, "signed", now, fields,
            ack=True, transition_id=transition_id,
        )[1]  # fmt: skip

    def start(
        self,
        wo_id: str,
        officer: str,
        *,
        now_ms: int | None = None,
        transition_id: str | None = None,
    ) -> dict[str, str]:
        now = _now(now_ms)
        fields = {"handled_by": officer, "started_ms": str(now)}
        return self._apply(
            wo_id, "start", officer, ("signed",), "handling", now, fields,
            transition_id=transition_id,
        )[1]  # fmt: skip

    def resolve(
        self,
        wo_id: str,
        officer: str,
        feedback: str,
        *,
        now_ms: int | None = None,
        transition_id: str | None = None,
    ) -> dict[str, str]:
        """Resolved on site, with the feedback the centre will verify."""
        if not feedback.strip():
            msg = f"resolve of {wo_id}: feedback is required (what was found and done)"
            raise WorkOrderError(msg)
        now = _now(now_ms)
        fields = {"resolved_by": officer, "resolved_ms": str(now), "feedback": feedback}
        return self._apply(
            wo_id, "resolve", officer, ("signed", "handling"), "resolved", now, fields,
            {"feedback": feedback}, transition_id=transition_id,
        )[1]  # fmt: skip

    def close(
        self,
        wo_id: str,
        verifier: str,
        note: str = "",
        *,
        now_ms: int | None = None,
        transition_id: str | None = None,
    ) -> dict[str, str]:
        """The centre verifies the resolution and closes the order."""
        now = _now(now_ms)
        fields = {"closed_by": verifier, "closed_ms": str(now)}
        return self._apply(
            wo_id, "close", verifier, ("resolved",), "closed", now, fields,
            {"note": note} if note else None, transition_id=transition_id,
        )[1]  # fmt: skip

    def reopen(
        self,
        wo_id: str,
        verifier: str,
        reason: str,
        *,
        now_ms: int | None = None,
        transition_id: str | None = None,
    ) -> dict[str, str]:
        """The centre rejects the resolution: back to handling."""
        return self._apply(
            wo_id, "reopen", verifier, ("resolved",), "handling", _now(now_ms), None,
            {"reason": reason}, transition_id=transition_id,
        )[1]  # fmt: skip

    def return_(
        self,
        wo_id: str,
        officer: str,
        reason: str,
        *,
        to_department: str | None = None,
        now_ms: int | None = None,
        transition_id: str | None = None,
    ) -> dict[str, str]:
        """Return to sender (wrong department); with ``to_department``, re-route at once."""
        if not reason.strip():
            msg = f"return of {wo_id}: give the reason (e.g. 'not our department')"
            raise WorkOrderError(msg)
        now = _now(now_ms)
        tid = transition_id or uuid.uuid4().hex
        fields = {"returned_by": officer, "returned_ms": str(now), "return_reason": reason}
        _, wo = self._apply(
            wo_id, "return", officer, ("dispatched", "escalated", "signed"), "returned", now,
            fields, {"reason": reason}, ack=True, transition_id=tid,
        )  # fmt: skip
        if to_department:
            return self.reassign(
                wo_id, officer, department=to_department, now_ms=now, transition_id=tid + ".to"
            )
        return wo

    def reassign(
        self,
        wo_id: str,
        by: str,
        *,
        department: str | None = None,
        centre: str | None = None,
        level: str | None = None,
        now_ms: int | None = None,
        transition_id: str | None = None,
    ) -> dict[str, str]:
        """Move the order to another queue (centre and/or department); it needs signing again."""
        if department is None and centre is None:
            msg = f"reassign of {wo_id}: give a department, a centre or both"
            raise WorkOrderError(msg)
        return self._move(
            wo_id,
            "reassign",
            by,
            OPEN_STATES,
            "dispatched",
            {"centre": centre or "", "department": department or "", "level": level or ""},
            _now(now_ms),
            transition_id=transition_id,
        )

    def escalate(
        self,
        wo_id: str,
        *,
        to_centre: str,
        level: str,
        by: str = "escalator",
        now_ms: int | None = None,
        transition_id: str | None = None,
    ) -> dict[str, str]:
        """Sign-off overdue: move to the parent centre (only while unsigned and due)."""
        return self._move(
            wo_id,
            "escalate",
            by,
            UNSIGNED,
            "escalated",
            {"centre": to_centre, "department": "", "level": level},
            _now(now_ms),
            condition="sign_due",
            transition_id=transition_id,
        )

    def flag_overdue(
        self, wo_id: str, *, by: str = "escalator", now_ms: int | None = None
    ) -> dict[str, str]:
        """Resolution overdue: flag it (once) and record it in the audit trail."""
        return self._apply(
            wo_id,
            "overdue",
            by,
            OPEN_STATES,
            "",
            _now(now_ms),
            {"overdue": "1"},
            condition="resolve_due",
        )[1]

    def merge(self, from_id: str, into_id: str, *, incident: str, now_ms: int | None = None) -> str:
        """Close ``from_id`` as merged into ``into_id`` (their incidents became one); returns
        the state ``from_id`` had (``merged`` if it was merged already). Idempotent."""
        if from_id == into_id:
            msg = f"merge of {from_id}: a work order cannot be merged into itself"
            raise WorkOrderError(msg)
        ks, argv = merge_call(self.keys, from_id, into_id, incident, _now(now_ms),
                              feed_maxlen=self.feed_maxlen)  # fmt: skip
        res = self.retry.run(lambda: self._call(ks, argv, self._merge))
        if _str(res[0]) == "missing":
            msg = f"work order {from_id!r} not found under prefix {self.keys.prefix!r}"
            raise UnknownWorkOrder(msg)
        log.info(
            "work order %s: merged into %s (%s -> merged)",
            from_id,
            into_id,
            _str(res[1]),
            extra={"wo_id": from_id, "by": "citywatch", "action": "merge"},
        )
        return _str(res[1])

    def _move(
        self,
        wo_id: str,
        action: str,
        by: str,
        allowed: tuple[str, ...],
        new_state: str,
        move: dict[str, str],
        now: int,
        condition: str = "",
        transition_id: str | None = None,
    ) -> dict[str, str]:
        if move["level"] and move["level"] not in LEVEL_RANK:
            msg = f"{action} of {wo_id}: level must be town, county or city, got {move['level']!r}"
            raise WorkOrderError(msg)
        return self._apply(
            wo_id, action, by, allowed, new_state, now, None, None, condition,
            move=move, transition_id=transition_id,
        )[1]  # fmt: skip
