"""Work orders in Redis: idempotent creation, receiving queues, live feed, audit trail.

Key layout (``P`` is the configured prefix; braces are Redis Cluster hash tags,
so a work order's hash and its audit stream share a slot, and each queue is
its own slot)::

    P:wo:{WO}            hash    the work order (state, route, SLA, alerts)
    P:wo:{WO}:audit      stream  every change, oldest first
    P:queue:{CENTRE|DEPT} stream the receiving queue, read through consumer groups
    P:feed:{live}        stream  the live feed the console and the demo follow
    P:dlq:{dead}         stream  dead letters with their reasons

Creation runs a Lua script on the work order's slot: it writes the hash and the
first audit entry only if the hash does not exist, so a replay or a restart
never creates a work order twice. The queue and feed entries follow, and the
hash records ``queued=1`` once they are written; an order found unqueued on a
repeat delivery (a crash between the two steps) is queued again.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis

from detectors.alerts import Alert
from detectors.events import DeadLetter, format_ts
from sinks.base import BatchSink


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
    """An alert on its way to a work order, with where it goes and its SLA in seconds."""

    alert: Alert
    route: Route
    sign_sla_s: int
    resolve_sla_s: int
    ingest_ns: int = 0


class Keys:
    """Key names under one prefix, with Cluster hash tags."""

    def __init__(self, prefix: str = "cw") -> None:
        self.prefix = prefix

    def wo(self, wo_id: str) -> str:
        return f"{self.prefix}:wo:{{{wo_id}}}"

    def audit(self, wo_id: str) -> str:
        return f"{self.prefix}:wo:{{{wo_id}}}:audit"

    def queue(self, queue: str) -> str:
        return f"{self.prefix}:queue:{{{queue}}}"

    def queue_pattern(self) -> str:
        return f"{self.prefix}:queue:*"

    def feed(self) -> str:
        return f"{self.prefix}:feed:{{live}}"

    def dlq(self) -> str:
        return f"{self.prefix}:dlq:{{dead}}"


CREATE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('HGET', KEYS[1], 'queued') == '1' then return 0 end
  return 2
end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('XADD', KEYS[2], '*', 'action', 'created', 'state', 'dispatched',
           'by', 'citywatch', 'at', ARGV[1])
return 1
"""


def work_order_id(alert: Alert) -> str:
    """One work order per incident; until incidents merge alerts, one per alert episode."""
    return "wo-" + (alert.incident or alert.id).split("-", 1)[1]


def work_order_fields(d: Dispatch, now_ms: int) -> dict[str, str]:
    a = d.alert
    return {
        "id": work_order_id(a),
        "incident": a.incident or "",
        "state": "dispatched",
        "kind": a.kind,
        "severity": a.severity,
        "subject": a.subject,
        "subject_type": a.subject_type,
        "zone": a.zone or "",
        "lon": "" if a.lon is None else f"{a.lon:.6f}",
        "lat": "" if a.lat is None else f"{a.lat:.6f}",
        "first_ts": format_ts(a.first_ts_ms),
        "ts": format_ts(a.ts_ms),
        "centre": d.route.centre,
        "department": d.route.department,
        "level": d.route.level,
        "jurisdiction": d.route.jurisdiction or "",
        "queue": d.route.queue,
        "created_ms": str(now_ms),
        "sign_due_ms": str(now_ms + d.sign_sla_s * 1000),
        "resolve_due_ms": str(now_ms + d.resolve_sla_s * 1000),
        "alerts": orjson.dumps([a.to_json()]).decode(),
        "queued": "0",
    }


def connect(url: str, *, check: bool = True, **kwargs: Any) -> redis.Redis:
    """A client for ``url`` (``redis://``, ``rediss://`` for TLS, ``unix://``); pings first."""
    client = redis.Redis.from_url(url, socket_timeout=kwargs.pop("socket_timeout", 10), **kwargs)
    if check:
        try:
            client.ping()
        except redis.RedisError as exc:
            msg = (
                f"cannot reach Redis at {_safe(url)} ({exc}); start the server, fix "
                "CITYWATCH_REDIS_URL, or unset it to run an embedded server"
            )
            raise DispatchError(msg) from exc
    return client


def _safe(url: str) -> str:
    """The URL without its password."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.split('@', 1)[1]}"


class WorkOrderWriter:
    """Creates work orders for dispatches, idempotently, in pipelined batches."""

    def __init__(self, client: redis.Redis, keys: Keys, *, feed_maxlen: int = 10_000) -> None:
        self.client = client
        self.keys = keys
        self.feed_maxlen = feed_maxlen
        self._create = client.register_script(CREATE_LUA)

    def write(self, dispatches: Sequence[Dispatch]) -> list[tuple[str, bool]]:
        """Create what is new; returns ``(work_order_id, created)`` per dispatch."""
        now_ms = int(time.time() * 1000)
        pipe = self.client.pipeline(transaction=False)
        ids: list[str] = []
        for d in dispatches:
            fields = work_order_fields(d, now_ms)
            wo_id = fields["id"]
            ids.append(wo_id)
            argv: list[str] = [str(now_ms)]
            for k, v in fields.items():
                argv += (k, v)
            self._create(keys=[self.keys.wo(wo_id), self.keys.audit(wo_id)], args=argv, client=pipe)
        results = pipe.execute()
        pipe = self.client.pipeline(transaction=False)
        out: list[tuple[str, bool]] = []
        for d, wo_id, res in zip(dispatches, ids, results, strict=True):
            if int(res) == 0:
                out.append((wo_id, False))
                continue
            a = d.alert
            entry = {
                "wo": wo_id,
                "kind": a.kind,
                "severity": a.severity,
                "subject": a.subject,
                "zone": a.zone or "",
                "centre": d.route.centre,
                "department": d.route.department,
                "level": d.route.level,
                "ts": format_ts(a.ts_ms),
            }
            pipe.xadd(self.keys.queue(d.route.queue), entry)  # type: ignore[arg-type]
            pipe.xadd(
                self.keys.feed(),
                {"event": "created", **entry, "alert": orjson.dumps(a.to_json())},  # type: ignore[dict-item]
                maxlen=self.feed_maxlen,
                approximate=True,
            )
            pipe.hset(self.keys.wo(wo_id), "queued", "1")
            out.append((wo_id, int(res) == 1))
        if len(pipe):
            pipe.execute()
        return out


class RedisDispatchSink(BatchSink[Dispatch]):
    """Bytewax-facing sink: work orders for alerts, with run counters and latency."""

    def __init__(
        self,
        url: str,
        keys: Keys,
        *,
        feed_maxlen: int = 10_000,
        on_written: Any = None,
    ) -> None:
        self.url = url
        self.keys = keys
        self.feed_maxlen = feed_maxlen
        self.on_written = on_written
        self._writer: WorkOrderWriter | None = None

    def setup(self) -> None:
        self._writer = WorkOrderWriter(connect(self.url), self.keys, feed_maxlen=self.feed_maxlen)

    def write_batch(self, items: list[Dispatch]) -> None:
        assert self._writer is not None, "setup() first"
        results = self._writer.write(items)
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
        pipe = self._client.pipeline(transaction=False)
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

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
