"""The dispatch writer: creates and grows work orders for dispatches, idempotently.

Every alert goes through one Lua script (:data:`~citywatch.sinks.scripts.UPSERT_LUA`),
the whole dispatch of that alert in one atomic call: it adds the alert id to
``:seen`` and returns at once when it was there (a replay or a restart repeats
nothing); otherwise it creates the work order if it is absent (hash, evidence,
audit, queue entry, index, due sets, feed), or appends the alert, raises the
severity (and tightens the deadlines), and re-routes an unsigned order when the
grown incident needs a higher level (its old queue entry is acknowledged and
deleted). A batch is one pipelined round trip.

An update whose incident absorbed others (two incidents linked by a late alert)
first merges their work orders into its own (:data:`~citywatch.sinks.scripts.MERGE_LUA`,
one call per absorbed order, idempotent by transition id); the absorbed incidents'
alerts then arrive re-emitted under the survivor and are appended as usual.

Silences are read from ``{P}:silences:{ctl}`` with a short cache (``[redis]
silence_cache_s``) and applied here, at dispatch: a silenced alert stays in the alert
output and in its incident's evidence downstream, but is logged to
``{P}:silenced:{log}`` instead of creating or growing a work order.

With ``wait_replicas`` (``[redis] wait_replicas``) a batch counts as written only
once that many replicas of the prefix's node have it (``WAIT``); otherwise the
batch raises a connection error and is retried (every write is idempotent), so a
failover to a replica loses no acknowledged work order. On a Redis Cluster the
upsert script is loaded on every primary first; a primary that lacks it (a replica
promoted by a failover) answers ``NOSCRIPT``, and the batch is retried after
loading it again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import orjson
import redis
from redis.exceptions import NoPermissionError, NoScriptError

from citywatch.detectors.alerts import SEVERITY_RANK
from citywatch.detectors.events import format_ts
from citywatch.sinks.client import (
    DispatchError,
    RedisOptions,
    load_for_pipelines,
    permission_message,
    wait_for_replicas,
)
from citywatch.sinks.keys import LEVEL_RANK, Keys
from citywatch.sinks.lifecycle import merge_call
from citywatch.sinks.scripts import MERGE_LUA, PREFLIGHT_LUA, UPSERT_LUA
from citywatch.sinks.silences import SilenceStore
from citywatch.sinks.workorder import Dispatch, WorkOrder, Written, order_id_of, work_order_id

log = logging.getLogger(__name__)
PIPELINED = (UPSERT_LUA, MERGE_LUA)  # run in pipelines: loaded on every primary first


def _log_written(d: Dispatch, w: Written) -> None:
    """One line per work order created, grown, rerouted or silenced, with the fields
    ops stacks index (repeats of an alert already applied are not logged)."""
    if w.outcome == "repeat":
        return
    a = d.alert
    log.info(
        "work order %s: %s %s on %s",
        w.outcome,
        a.kind,
        a.severity,
        a.subject,
        extra={
            "wo_id": w.wo_id,
            "alert_id": a.id,
            "entity": a.subject,
            "zone": a.zone,
            "queue": d.route.queue,
            "department": d.route.department,
        },
    )


def _csv(items: Sequence[str]) -> str:
    return ",".join(items)


class WorkOrderWriter:
    """Creates and grows work orders for dispatches, idempotently, in pipelined batches."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        *,
        feed_maxlen: int = 10_000,
        silenced_maxlen: int = 100_000,
        silence_cache_s: float = 5.0,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 1000,
    ) -> None:
        self.client = client
        self.keys = keys
        self.feed_maxlen = feed_maxlen
        self.silenced_maxlen = silenced_maxlen
        self.wait_replicas = wait_replicas
        self.wait_timeout_ms = wait_timeout_ms
        self.silences = SilenceStore(client, keys, cache_s=silence_cache_s)
        self._upsert = client.register_script(UPSERT_LUA)
        self._merge = client.register_script(MERGE_LUA)
        for script in PIPELINED:
            load_for_pipelines(client, script)

    def write(self, dispatches: Sequence[Dispatch]) -> list[Written]:
        """Apply the dispatches in order; one :class:`Written` per dispatch."""
        try:
            done = self._write(dispatches)
        except NoScriptError:  # a failover promoted a replica that never loaded it
            for script in PIPELINED:
                load_for_pipelines(self.client, script)
            done = self._write(dispatches)
        if self.wait_replicas:  # the caller retries the batch when too few have it
            wait_for_replicas(
                self.client, self.keys.index(), self.wait_replicas, self.wait_timeout_ms
            )
        return done

    def _write(self, dispatches: Sequence[Dispatch]) -> list[Written]:
        now_ms = int(time.time() * 1000)
        out: list[Written | None] = [None] * len(dispatches)
        pipe = self.client.pipeline(transaction=False)
        calls: list[int] = []  # per script call in the pipeline: its dispatch, -1 a merge
        merged: set[str] = set()
        for i, d in enumerate(dispatches):
            wo_id = work_order_id(d.alert, d.incident)
            if d.incident is not None and d.incident.absorbed:
                calls += [-1] * self._merge_absorbed(pipe, d, wo_id, now_ms, merged)
            silence = self.silences.match(d.alert)
            if silence is not None:
                out[i] = Written(wo_id, "silenced")
                doc = orjson.dumps(d.alert.to_json()).decode()
                pipe.xadd(
                    self.keys.silenced(),
                    {"silence": silence.id, "wo": wo_id, "alert": doc, "at": str(now_ms)},
                    maxlen=self.silenced_maxlen,
                    approximate=True,
                )
                continue
            calls.append(i)
            self._upsert(
                keys=[
                    self.keys.wo(wo_id),
                    self.keys.audit(wo_id),
                    self.keys.alerts(wo_id),
                    self.keys.seen(wo_id),
                    self.keys.queues(),
                    self.keys.index(),
                    self.keys.due_sign(),
                    self.keys.due_resolve(),
                    self.keys.feed(),
                ],
                args=self._argv(d, wo_id, now_ms),
                client=pipe,
            )
        results = pipe_results_lua(pipe.execute(), len(calls))
        for i, res in zip(calls, results, strict=True):
            if i < 0:
                continue
            outcome = _s(res[0])
            wo_id = work_order_id(dispatches[i].alert, dispatches[i].incident)
            out[i] = Written(wo_id, "repeat" if outcome in ("repeat", "requeue") else outcome)
        done = [w if w is not None else Written("", "repeat") for w in out]
        if log.isEnabledFor(logging.INFO):
            for d, w in zip(dispatches, done, strict=True):
                _log_written(d, w)
        return done

    def _merge_absorbed(
        self, pipe: Any, d: Dispatch, into_id: str, now_ms: int, done: set[str]
    ) -> int:
        """Queue the merge of each work order the dispatch's incident absorbed into its
        own (once per write; a repeat across writes is a no-op by transition id)."""
        assert d.incident is not None
        n = 0
        for key in d.incident.absorbed:
            from_id = order_id_of(key)
            if from_id == into_id or from_id in done:
                continue
            done.add(from_id)
            keys, argv = merge_call(self.keys, from_id, into_id, d.incident.id, now_ms,
                                    feed_maxlen=self.feed_maxlen)  # fmt: skip
            self._merge(keys=keys, args=argv, client=pipe)
            n += 1
        return n

    @staticmethod
    def _entry_values(d: Dispatch, wo_id: str) -> list[str]:
        """The queue entry's values (the script adds the queue's centre and department)."""
        a = d.alert
        severity = d.incident.severity if d.incident else a.severity
        zone = a.zone or ""
        return [wo_id, a.incident or "", a.kind, severity, a.subject, zone, d.route.level,
                format_ts(a.ts_ms)]  # fmt: skip

    def _argv(self, d: Dispatch, wo_id: str, now_ms: int) -> list[str]:
        a, inc = d.alert, d.incident
        severity = inc.severity if inc else a.severity
        argv = [
            str(now_ms),
            a.id,
            orjson.dumps(a.to_json()).decode(),
            severity,
            str(SEVERITY_RANK[severity]),
            format_ts(a.ts_ms),
            str(inc.closes_at_ms if inc else a.ts_ms),
            str(LEVEL_RANK.get(d.route.level, 0)),
            d.route.centre,
            d.route.department,
            d.route.level,
            d.route.queue,
            str(d.sign_sla_s),
            str(d.resolve_sla_s),
            _csv(inc.subjects) if inc else a.subject,
            _csv(inc.kinds) if inc else a.kind,
            _csv(inc.departments) if inc else d.route.department,
            str(inc.alert_count if inc else 1),
            "1" if inc is not None and inc.inhibited else "0",
            orjson.dumps(WorkOrder.new(d, now_ms).to_hash()).decode(),
            self.keys.root,
            orjson.dumps(self._entry_values(d, wo_id)).decode(),
            str(self.feed_maxlen),
            a.incident or "",
            format_ts(inc.first_ts_ms if inc else a.first_ts_ms),
        ]
        return argv


def pipe_results_lua(results: list[Any], n: int) -> list[Any]:
    """The Lua replies (lists) among a pipeline's replies, in order."""
    lua = [r for r in results if isinstance(r, list)]
    if len(lua) != n:
        msg = f"expected {n} work-order script replies, got {len(lua)}"
        raise DispatchError(msg)
    return lua


def _s(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def check_permissions(client: redis.Redis, keys: Keys, opts: RedisOptions) -> None:
    """Fail before the flow starts, in one line, when the ACL user may not run what the
    dispatch runs (a denial inside the flow would stop it with the engine's noise)."""
    try:
        reply = client.register_script(PREFLIGHT_LUA)(keys=[keys.preflight()])
        denied = list(dict.fromkeys(_s(x) for x in reply))
    except NoPermissionError as exc:
        raise DispatchError(permission_message(exc, opts)) from exc
    if denied:
        denial = NoPermissionError(
            f"this user has no permissions to run {', '.join(denied)} in citywatch's scripts"
        )
        raise DispatchError(permission_message(denial, opts, commands=denied))
