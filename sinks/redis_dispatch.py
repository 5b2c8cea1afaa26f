"""Work orders in Redis: one per incident, idempotent, with queues, live feed and audit trail.

Key layout (``P`` is the configured prefix; braces are Redis Cluster hash
tags: everything about one work order shares its slot, so the Lua scripts
touch one slot only; each queue, index and control key is its own slot)::

    P:wo:{WO}              hash    the work order: state, incident, route, SLA, counters
    P:wo:{WO}:audit        stream  every change, oldest first (action, state, by, at, ...)
    P:wo:{WO}:alerts       list    every alert merged into the incident (JSON), as evidence
    P:wo:{WO}:seen         set     ids of those alerts (makes re-delivery a no-op)
    P:queue:{CENTRE|DEPT}  stream  the receiving queue; consumer group ``officers``
    P:queues:{index}       set     names of all queues (CENTRE|DEPT) ever written
    P:index:{wo}           zset    every work order id, scored by creation (ms)
    P:due:{sign}           zset    unsigned work orders, scored by sign-off deadline (ms)
    P:due:{resolve}        zset    unresolved work orders, scored by resolution deadline
    P:feed:{live}          stream  live feed (created / updated / rerouted / lifecycle)
    P:silences:{ctl}       hash    silences (maintenance windows) by id, JSON
    P:silenced:{log}       stream  alerts a silence kept from dispatch, capped
    P:dlq:{dead}           stream  dead letters with their reasons

Work order id: ``wo-`` + the incident's hash (the incident id is ``in-`` + the
hash of the alert that opened it), so the same recording gives the same work
orders. The hash fields: ``id incident state kind kinds severity subject
subjects zone lon lat first_ts ts centre department departments level
jurisdiction queue queue_entry created_ms sign_sla_s resolve_sla_s sign_due_ms
resolve_due_ms alert_count incident_closes_at_ms returns escalations overdue
queued`` plus the lifecycle fields (``signed_by signed_ms started_ms
resolved_by resolved_ms feedback closed_by closed_ms ...``, see
:mod:`citywatch.sinks.lifecycle`).

Every alert goes through one Lua script (:data:`UPSERT_LUA`) on its work
order's slot: it adds the alert id to ``:seen`` and returns at once when it
was there (a replay or a restart repeats nothing); otherwise it creates the
work order if it is absent, or appends the alert, raises the severity (and
tightens the deadlines), and re-routes an unsigned order when the grown
incident needs a higher level. The queue, feed and index writes follow in a
second pipelined round trip, and the hash records ``queued=1`` and its queue
entry id once they are written; a work order found unqueued on a repeat
delivery (a crash between the two round trips) is queued again.

Silences are read from ``P:silences:{ctl}`` with a short cache
(``[redis] silence_cache_s``) and applied here, at dispatch: a silenced alert
stays in the alert output and in its incident's evidence downstream, but is
logged to ``P:silenced:{log}`` instead of creating or growing a work order.

While Redis is unreachable the sink retries the whole batch with capped
exponential backoff (``[redis] retry_backoff_max_s``); the batch in hand is the
bounded buffer and the flow upstream waits (backpressure), so no alert is
dropped. Retrying is safe because every write is idempotent.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import orjson
import redis

from citywatch.detectors.alerts import SEVERITY_RANK, Alert
from citywatch.detectors.events import DeadLetter, format_ts
from citywatch.detectors.incidents import IncidentView
from citywatch.sinks.base import BatchSink

log = logging.getLogger(__name__)

LEVEL_RANK = {"town": 0, "county": 1, "city": 2}
GROUP = "officers"  # the consumer group of every receiving queue

T = TypeVar("T")


class DispatchError(RuntimeError):
    """Redis could not be reached or refused a write. Check the URL and that the server runs."""


@dataclass(frozen=True, slots=True)
class Route:
    centre: str
    department: str
    level: str
    jurisdiction: str | None

    @property
    def queue(self) -> str:
        return f"{self.centre}|{self.department}"


@dataclass(slots=True)
class Dispatch:
    """An alert on its way to its incident's work order, where it goes, its SLA in seconds."""

    alert: Alert
    route: Route
    sign_sla_s: int
    resolve_sla_s: int
    ingest_ns: int = 0
    incident: IncidentView | None = None


class Written(NamedTuple):
    """What one dispatch did: ``outcome`` is created, merged, rerouted, repeat or silenced."""

    wo_id: str
    outcome: str

    @property
    def created(self) -> bool:
        return self.outcome == "created"

    @property
    def repeat(self) -> bool:
        return self.outcome == "repeat"


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


# KEYS: wo, audit, alerts, seen
# ARGV: 1 now_ms, 2 alert_id, 3 alert_json, 4 severity, 5 severity_rank, 6 ts,
#       7 closes_at_ms, 8 level_rank, 9 centre, 10 department, 11 level, 12 queue,
#       13 sign_sla_s, 14 resolve_sla_s, 15 subjects, 16 kinds, 17 departments,
#       18 alert_count hint, 19 inhibited, 20 creation fields (JSON object; one
#       argument instead of ~70 keeps the client's packing cheap)
# Returns {outcome, queue, state, sign_due_ms, resolve_due_ms}
UPSERT_LUA = """
local now = tonumber(ARGV[1])
local fresh = redis.call('SADD', KEYS[4], ARGV[2])
if redis.call('EXISTS', KEYS[1]) == 0 then
  local flat = {}
  for k, v in pairs(cjson.decode(ARGV[20])) do flat[#flat + 1] = k; flat[#flat + 1] = v end
  redis.call('HSET', KEYS[1], unpack(flat))
  redis.call('RPUSH', KEYS[3], ARGV[3])
  redis.call('XADD', KEYS[2], '*', 'action', 'created', 'state', 'dispatched',
             'by', 'citywatch', 'at', ARGV[1], 'alert', ARGV[2], 'queue', ARGV[12])
  local h = redis.call('HMGET', KEYS[1], 'sign_due_ms', 'resolve_due_ms')
  return {'created', ARGV[12], 'dispatched', h[1], h[2]}
end
local h = redis.call('HMGET', KEYS[1], 'queued', 'queue', 'state', 'sign_due_ms',
                     'resolve_due_ms', 'severity_rank', 'level', 'created_ms', 'ts',
                     'incident_closes_at_ms')
if fresh == 0 then
  if h[1] == '1' then return {'repeat', h[2], h[3], h[4], h[5]} end
  return {'requeue', h[2], h[3], h[4], h[5]}
end
redis.call('RPUSH', KEYS[3], ARGV[3])
redis.call('HINCRBY', KEYS[1], 'alert_count', 1)
redis.call('HSET', KEYS[1], 'subjects', ARGV[15], 'kinds', ARGV[16], 'departments', ARGV[17],
           'updated_ms', ARGV[1])
if ARGV[6] > h[9] then redis.call('HSET', KEYS[1], 'ts', ARGV[6]) end
if tonumber(ARGV[7]) > tonumber(h[10]) then
  redis.call('HSET', KEYS[1], 'incident_closes_at_ms', ARGV[7])
end
local sign_due, resolve_due = tonumber(h[4]), tonumber(h[5])
local created = tonumber(h[8])
local audit = {'action', 'alert_merged', 'state', h[3], 'by', 'citywatch', 'at', ARGV[1],
               'alert', ARGV[2], 'severity', ARGV[4], 'inhibited', ARGV[19]}
redis.call('XADD', KEYS[2], '*', unpack(audit))
if tonumber(ARGV[5]) > tonumber(h[6]) then
  sign_due = math.min(sign_due, created + 1000 * tonumber(ARGV[13]))
  resolve_due = math.min(resolve_due, created + 1000 * tonumber(ARGV[14]))
  redis.call('HSET', KEYS[1], 'severity', ARGV[4], 'severity_rank', ARGV[5],
             'sign_due_ms', sign_due, 'resolve_due_ms', resolve_due)
  redis.call('XADD', KEYS[2], '*', 'action', 'severity_raised', 'state', h[3],
             'by', 'citywatch', 'at', ARGV[1], 'severity', ARGV[4])
end
local ranks = {town = 0, county = 1, city = 2}
local unsigned = (h[3] == 'dispatched' or h[3] == 'escalated')
if unsigned and tonumber(ARGV[8]) > ranks[h[7]] and ARGV[12] ~= h[2] then
  sign_due = now + 1000 * tonumber(ARGV[13])
  redis.call('HSET', KEYS[1], 'centre', ARGV[9], 'department', ARGV[10], 'level', ARGV[11],
             'queue', ARGV[12], 'queued', '0', 'sign_due_ms', sign_due)
  redis.call('XADD', KEYS[2], '*', 'action', 'rerouted', 'state', h[3], 'by', 'citywatch',
             'at', ARGV[1], 'from', h[2], 'queue', ARGV[12], 'reason', 'incident grew')
  return {'rerouted', ARGV[12], h[3], tostring(sign_due), tostring(resolve_due)}
end
return {'merged', h[2], h[3], tostring(sign_due), tostring(resolve_due)}
"""


def work_order_id(alert: Alert) -> str:
    """One work order per incident: ``wo-`` + the incident's hash (else the alert's)."""
    return "wo-" + (alert.incident or alert.id).split("-", 1)[1]


def _csv(items: Sequence[str]) -> str:
    return ",".join(items)


def work_order_fields(d: Dispatch, now_ms: int) -> dict[str, str]:
    """The hash of a new work order for the dispatch's incident."""
    a, inc = d.alert, d.incident
    severity = inc.severity if inc else a.severity
    return {
        "id": work_order_id(a),
        "incident": a.incident or "",
        "state": "dispatched",
        "kind": a.kind,
        "kinds": _csv(inc.kinds) if inc else a.kind,
        "severity": severity,
        "severity_rank": str(SEVERITY_RANK[severity]),
        "subject": a.subject,
        "subject_type": a.subject_type,
        "subjects": _csv(inc.subjects) if inc else a.subject,
        "zone": a.zone or "",
        "lon": "" if a.lon is None else f"{a.lon:.6f}",
        "lat": "" if a.lat is None else f"{a.lat:.6f}",
        "first_ts": format_ts(inc.first_ts_ms if inc else a.first_ts_ms),
        "ts": format_ts(a.ts_ms),
        "centre": d.route.centre,
        "department": d.route.department,
        "departments": _csv(inc.departments) if inc else d.route.department,
        "level": d.route.level,
        "jurisdiction": d.route.jurisdiction or "",
        "queue": d.route.queue,
        "created_ms": str(now_ms),
        "updated_ms": str(now_ms),
        "sign_sla_s": str(d.sign_sla_s),
        "resolve_sla_s": str(d.resolve_sla_s),
        "sign_due_ms": str(now_ms + d.sign_sla_s * 1000),
        "resolve_due_ms": str(now_ms + d.resolve_sla_s * 1000),
        "alert_count": "1",
        "incident_closes_at_ms": str(inc.closes_at_ms if inc else a.ts_ms),
        "returns": "0",
        "escalations": "0",
        "overdue": "0",
        "queued": "0",
    }


def connect(
    url: str,
    *,
    check: bool = True,
    socket_timeout_s: float = 10.0,
    connect_timeout_s: float = 5.0,
    tls_ca_file: str | None = None,
    **kwargs: Any,
) -> redis.Redis:
    """A client for ``url`` (``redis://[user:password@]host``, ``rediss://`` for TLS,
    ``unix://``); pings first when ``check``."""
    if url.startswith("rediss://"):
        if tls_ca_file:
            kwargs.setdefault("ssl_ca_certs", tls_ca_file)
        kwargs.setdefault("ssl_cert_reqs", ssl.CERT_REQUIRED)
    client = redis.Redis.from_url(
        url,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=connect_timeout_s,
        **kwargs,
    )
    if check:
        try:
            client.ping()
        except redis.AuthenticationError as exc:
            msg = (
                f"Redis at {safe_url(url)} refused the credentials ({exc}); put the password "
                "(and ACL user) in the URL: redis://USER:PASSWORD@host:6379/0"
            )
            raise DispatchError(msg) from exc
        except redis.RedisError as exc:
            msg = (
                f"cannot reach Redis at {safe_url(url)} ({exc}); start the server, fix "
                "CITYWATCH_REDIS_URL, or unset it to run an embedded server"
            )
            raise DispatchError(msg) from exc
    return client


def safe_url(url: str) -> str:
    """The URL without its password.

    >>> safe_url("redis://user:secret@host:6379/0")
    'redis://***@host:6379/0'
    """
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.split('@', 1)[1]}"


_safe = safe_url  # the old private name


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Capped exponential backoff while Redis is unreachable; ``give_up_s=0``: never give up."""

    first_s: float = 0.05
    max_s: float = 5.0
    give_up_s: float = 0.0

    def run(
        self, fn: Callable[[], T], *, on_retry: Callable[[Exception, int], None] | None = None
    ) -> T:
        delay, attempt, t0 = self.first_s, 0, time.monotonic()
        while True:
            try:
                return fn()
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
                attempt += 1
                if self.give_up_s and time.monotonic() - t0 + delay > self.give_up_s:
                    msg = f"Redis unreachable for {self.give_up_s:.0f}s, giving up: {exc}"
                    raise DispatchError(msg) from exc
                if on_retry is not None:
                    on_retry(exc, attempt)
                time.sleep(delay)
                delay = min(self.max_s, delay * 2)


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
    ) -> None:
        from citywatch.sinks.silences import SilenceStore

        self.client = client
        self.keys = keys
        self.feed_maxlen = feed_maxlen
        self.silenced_maxlen = silenced_maxlen
        self.silences = SilenceStore(client, keys, cache_s=silence_cache_s)
        self._upsert = client.register_script(UPSERT_LUA)

    def write(self, dispatches: Sequence[Dispatch]) -> list[Written]:
        """Apply the dispatches in order; one :class:`Written` per dispatch."""
        now_ms = int(time.time() * 1000)
        out: list[Written | None] = [None] * len(dispatches)
        pipe = self.client.pipeline(transaction=False)
        live: list[int] = []
        for i, d in enumerate(dispatches):
            wo_id = work_order_id(d.alert)
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
            live.append(i)
            self._upsert(
                keys=[
                    self.keys.wo(wo_id),
                    self.keys.audit(wo_id),
                    self.keys.alerts(wo_id),
                    self.keys.seen(wo_id),
                ],
                args=self._argv(d, wo_id, now_ms),
                client=pipe,
            )
        results = pipe_results_lua(pipe.execute(), len(live))
        pipe = self.client.pipeline(transaction=False)
        queued: list[tuple[str, int]] = []  # work order, index of its queue XADD reply
        for i, res in zip(live, results, strict=True):
            d = dispatches[i]
            outcome, queue, state, sign_due, resolve_due = (_s(x) for x in res)
            wo_id = work_order_id(d.alert)
            out[i] = Written(wo_id, "repeat" if outcome in ("repeat", "requeue") else outcome)
            if outcome == "repeat":
                continue
            if outcome in ("created", "rerouted", "requeue"):
                queued.append((wo_id, len(pipe)))
                pipe.xadd(self.keys.queue(queue), self._entry(d, wo_id, queue))  # type: ignore[arg-type]
                pipe.sadd(self.keys.queues(), queue)
            if outcome == "created":
                pipe.zadd(self.keys.index(), {wo_id: now_ms})
            if state in ("dispatched", "escalated"):
                pipe.zadd(self.keys.due_sign(), {wo_id: int(sign_due)})
            if state in ("dispatched", "escalated", "signed", "handling"):
                pipe.zadd(self.keys.due_resolve(), {wo_id: int(resolve_due)})
            feed = {
                "event": {"requeue": "created"}.get(outcome, outcome),
                **self._entry(d, wo_id, queue),
                "alert": orjson.dumps(d.alert.to_json()).decode(),
            }
            pipe.xadd(self.keys.feed(), feed, maxlen=self.feed_maxlen, approximate=True)  # type: ignore[arg-type]
        if len(pipe):
            replies = pipe.execute()
            pipe = self.client.pipeline(transaction=False)
            for wo_id, at in queued:
                fields = ["queued", "1", "queue_entry", _s(replies[at])]
                pipe.hset(self.keys.wo(wo_id), items=fields)
            if len(pipe):
                pipe.execute()
        return [w if w is not None else Written("", "repeat") for w in out]

    @staticmethod
    def _entry(d: Dispatch, wo_id: str, queue: str) -> dict[str, str]:
        a = d.alert
        centre, _, dept = queue.partition("|")
        return {
            "wo": wo_id,
            "incident": a.incident or "",
            "kind": a.kind,
            "severity": d.incident.severity if d.incident else a.severity,
            "subject": a.subject,
            "zone": a.zone or "",
            "centre": centre,
            "department": dept,
            "level": d.route.level,
            "ts": format_ts(a.ts_ms),
        }

    @staticmethod
    def _argv(d: Dispatch, wo_id: str, now_ms: int) -> list[str]:
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
            orjson.dumps(work_order_fields(d, now_ms)).decode(),
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


class RedisDispatchSink(BatchSink[Dispatch]):
    """Bytewax-facing sink: work orders for dispatches, retried while Redis is away."""

    def __init__(
        self,
        url: str,
        keys: Keys,
        *,
        feed_maxlen: int = 10_000,
        on_written: Any = None,
        settings: Any = None,
    ) -> None:
        self.url = url
        self.keys = keys
        self.feed_maxlen = feed_maxlen
        self.on_written = on_written
        self.settings = settings  # flows.config.RedisSettings or None (defaults)
        self.retries = 0
        self._writer: WorkOrderWriter | None = None

    def _conn_kwargs(self) -> dict[str, Any]:
        s = self.settings
        if s is None:
            return {}
        return {
            "socket_timeout_s": s.socket_timeout_s,
            "connect_timeout_s": s.connect_timeout_s,
            "tls_ca_file": s.tls_ca_file,
        }

    def _policy(self) -> RetryPolicy:
        s = self.settings
        if s is None:
            return RetryPolicy()
        return RetryPolicy(max_s=s.retry_backoff_max_s, give_up_s=s.retry_give_up_s)

    def setup(self) -> None:
        client = connect(self.url, **self._conn_kwargs())
        cache_s = self.settings.silence_cache_s if self.settings is not None else 5.0
        self._writer = WorkOrderWriter(
            client, self.keys, feed_maxlen=self.feed_maxlen, silence_cache_s=cache_s
        )

    def _on_retry(self, exc: Exception, attempt: int) -> None:
        self.retries += 1
        if attempt == 1 or attempt % 20 == 0:
            log.warning(
                "Redis at %s unreachable (%s); holding %s and retrying",
                safe_url(self.url),
                exc,
                "the batch",
            )

    def write_batch(self, items: list[Dispatch]) -> None:
        assert self._writer is not None, "setup() first"
        writer = self._writer
        results = self._policy().run(lambda: writer.write(items), on_retry=self._on_retry)
        if self.on_written is not None:
            self.on_written(items, results)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.client.close()


class RedisDeadLetterSink(BatchSink[DeadLetter]):
    """Dead letters to a capped Redis stream, with their reasons and raw bytes."""

    def __init__(self, url: str, keys: Keys, *, maxlen: int = 100_000) -> None:
        self.url = url
        self.keys = keys
        self.maxlen = maxlen
        self._client: redis.Redis | None = None

    def setup(self) -> None:
        self._client = connect(self.url)

    def write_batch(self, items: list[DeadLetter]) -> None:
        assert self._client is not None, "setup() first"
        client = self._client

        def write() -> None:
            pipe = client.pipeline(transaction=False)
            for dl in items:
                doc = dl.to_json()
                pipe.xadd(
                    self.keys.dlq(),
                    {
                        "reason": doc["reason"],
                        "category": doc["category"],
                        "source": dl.source,
                        "raw": dl.raw,
                    },
                    maxlen=self.maxlen,
                    approximate=True,
                )
            pipe.execute()

        RetryPolicy().run(write)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
