"""Webhook subscriptions and the relay from the live feed to one delivery stream each.

Keys (``P`` is the prefix; ``{P}`` is the Redis Cluster hash tag of every key, as
in :mod:`citywatch.sinks.keys`)::

    {P}:webhooks:{ctl}       hash    subscriptions added with `citywatch webhooks add` (JSON)
    {P}:webhooks:{lease}     string  held by the one `webhooks serve` that delivers
    {P}:wh:{SUB}:out         stream  events waiting for delivery; consumer group ``delivery``
    {P}:wh:{SUB}:dead        stream  events given up on, with the last error
    {P}:wh:{SUB}:status      hash    delivered / failures / retries / dead counts, last error
    {P}:whseq:{WO}           hash    the work order's event sequence (n, and feed id -> n)

The relay reads ``{P}:feed:{live}`` through the consumer group ``webhooks``
(created at the feed's end the first time, so history is not replayed). For
each feed entry it assigns the work order's next sequence number (a Lua
script, idempotent by feed entry id), builds the event once, and appends it to
the delivery stream of every subscription whose filters it passes, under the
feed entry's own id: appending the same entry twice fails, so a relay that
crashes between fan-out and acknowledgement repeats nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
import redis
from redis.exceptions import NoScriptError

from citywatch.sinks.client import load_for_pipelines
from citywatch.sinks.dispatch import Keys
from citywatch.sinks.integrations.events import build_event, encode_bounded, event_type
from citywatch.sinks.integrations.settings import IntegrationConfigError, WebhookSpec
from citywatch.sinks.keys import tagged

log = logging.getLogger(__name__)

RELAY_GROUP = "webhooks"
DELIVERY_GROUP = "delivery"
SEQ_TTL_S = 400 * 86400  # a work order silent longer than this starts a new sequence

# KEYS: seq hash.  ARGV: 1 feed entry id, 2 ttl_s.  Returns the entry's sequence number.
SEQ_LUA = """
local s = redis.call('HGET', KEYS[1], ARGV[1])
if s then return tonumber(s) end
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
redis.call('HSET', KEYS[1], ARGV[1], n)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
return n
"""


class HookKeys:
    """Webhook key names under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.base = Keys(prefix)

    def feed(self) -> str:
        return self.base.feed()

    def registry(self) -> str:
        return f"{tagged(self.prefix)}:webhooks:{{ctl}}"

    def lease(self) -> str:
        return f"{tagged(self.prefix)}:webhooks:{{lease}}"

    def out(self, sub: str) -> str:
        return f"{tagged(self.prefix)}:wh:{{{sub}}}:out"

    def dead(self, sub: str) -> str:
        return f"{tagged(self.prefix)}:wh:{{{sub}}}:dead"

    def status(self, sub: str) -> str:
        return f"{tagged(self.prefix)}:wh:{{{sub}}}:status"

    def seq(self, wo_id: str) -> str:
        return f"{tagged(self.prefix)}:whseq:{{{wo_id}}}"


def ensure_group(client: redis.Redis, stream: str, group: str, start: str) -> None:
    """Create a consumer group (and its stream) if missing."""
    try:
        client.xgroup_create(stream, group, id=start, mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


class SubscriptionStore:
    """The subscriptions: those of the configuration (read-only) and those in Redis."""

    def __init__(
        self, client: redis.Redis, keys: HookKeys, configured: Sequence[WebhookSpec] = ()
    ) -> None:
        self.client = client
        self.keys = keys
        self.configured = tuple(configured)

    def stored(self) -> list[WebhookSpec]:
        raw: Any = self.client.hgetall(self.keys.registry())
        out = []
        for key, value in sorted(raw.items()):
            try:
                out.append(WebhookSpec.from_table(orjson.loads(value), {}, source="redis"))
            except (IntegrationConfigError, orjson.JSONDecodeError) as exc:
                log.error("webhook subscription %s in Redis is unreadable: %s", _s(key), exc)
        return out

    def all(self) -> list[WebhookSpec]:
        stored = [s for s in self.stored() if s.id not in {c.id for c in self.configured}]
        return [*self.configured, *stored]

    def get(self, sub_id: str) -> WebhookSpec | None:
        return next((s for s in self.all() if s.id == sub_id), None)

    def add(self, spec: WebhookSpec, *, replace: bool = False) -> None:
        if any(c.id == spec.id for c in self.configured):
            msg = f"webhook {spec.id!r} is defined in the configuration file; edit it there"
            raise IntegrationConfigError(msg)
        record = orjson.dumps(spec.to_record())
        if replace:
            self.client.hset(self.keys.registry(), spec.id, record)
        elif not self.client.hsetnx(self.keys.registry(), spec.id, record):
            msg = f"webhook {spec.id!r} exists already; pass --replace to overwrite it"
            raise IntegrationConfigError(msg)
        # From now on the relay fans events out to it (the group starts at the feed's end).
        ensure_group(self.client, self.keys.feed(), RELAY_GROUP, "$")

    def remove(self, sub_id: str) -> bool:
        """Delete a stored subscription with its pending, dead and status records."""
        if any(c.id == sub_id for c in self.configured):
            msg = f"webhook {sub_id!r} is defined in the configuration file; remove it there"
            raise IntegrationConfigError(msg)
        gone = bool(self.client.hdel(self.keys.registry(), sub_id))
        if gone:
            k = self.keys
            self.client.delete(k.out(sub_id), k.dead(sub_id), k.status(sub_id))
        return gone


def _s(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


class Relay:
    """Feed -> per-subscription delivery streams, with per-work-order sequence numbers."""

    def __init__(
        self,
        client: redis.Redis,
        keys: HookKeys,
        store: SubscriptionStore,
        *,
        max_payload_bytes: int = 256 * 1024,
        consumer: str = "relay",
        reload_s: float = 2.0,
    ) -> None:
        self.client = client
        self.keys = keys
        self.store = store
        self.max_payload_bytes = max_payload_bytes
        self.consumer = consumer
        self.reload_s = reload_s
        self._seq = client.register_script(SEQ_LUA)
        load_for_pipelines(client, SEQ_LUA)
        self._subs: list[WebhookSpec] = []
        self._subs_at = 0.0
        self._pending_done = False
        self.relayed = 0

    def subscriptions(self) -> list[WebhookSpec]:
        if time.monotonic() - self._subs_at > self.reload_s:
            self._subs = self.store.all()
            self._subs_at = time.monotonic()
        return self._subs

    def setup(self) -> None:
        """Join the feed; the next steps start with what this consumer had pending."""
        ensure_group(self.client, self.keys.feed(), RELAY_GROUP, "$")
        self._pending_done = False

    def step(self, block_ms: int = 1000, count: int = 500) -> int:
        """Relay one batch of feed entries (pending ones first); returns how many."""
        start = "0" if not self._pending_done else ">"
        got: Any = self.client.xreadgroup(
            RELAY_GROUP,
            self.consumer,
            {self.keys.feed(): start},
            count=count,
            block=None if start == "0" else block_ms,
        )
        entries = [(_s(i), f) for _, batch in got or [] for i, f in batch]
        if start == "0" and not entries:
            self._pending_done = True
            return 0
        self.relay(entries)
        return len(entries)

    def _sequence(self, todo: list[tuple[str, dict[str, str]]]) -> list[Any]:
        """Each entry's sequence number (idempotent by entry id) and its order's hash."""
        pipe = self.client.pipeline(transaction=False)
        for entry_id, f in todo:
            self._seq(keys=[self.keys.seq(f["wo"])], args=[entry_id, SEQ_TTL_S], client=pipe)
            pipe.hgetall(self.keys.base.wo(f["wo"]))
        return list(pipe.execute())

    def relay(self, entries: Iterable[tuple[str, Mapping[Any, Any] | None]]) -> None:
        """Fan these feed entries out and acknowledge them."""
        todo: list[tuple[str, dict[str, str]]] = []
        done: list[str] = []
        for entry_id, raw in entries:
            done.append(entry_id)
            fields = {_s(k): _s(v) for k, v in (raw or {}).items()}
            if fields.get("wo"):
                todo.append((entry_id, fields))
        subs = self.subscriptions()
        if todo and subs:
            try:
                replies = self._sequence(todo)
            except NoScriptError:  # a cluster node that lost the script: load, repeat
                load_for_pipelines(self.client, SEQ_LUA)
                replies = self._sequence(todo)
            pipe = self.client.pipeline(transaction=False)
            for i, (entry_id, f) in enumerate(todo):
                seq, order = int(replies[2 * i]), replies[2 * i + 1]
                order = {_s(k): _s(v) for k, v in order.items()}
                kind = event_type(f.get("event", ""))
                centre = f.get("centre") or order.get("centre", "")
                dept = f.get("department") or order.get("department", "")
                sev = f.get("severity") or order.get("severity", "")
                targets = [s for s in subs if s.wants(kind, centre, dept, sev)]
                if not targets:
                    continue
                body = encode_bounded(build_event(entry_id, f, order, seq), self.max_payload_bytes)
                record = {"wo": f["wo"], "seq": str(seq), "type": kind, "body": body}
                for s in targets:
                    pipe.xadd(self.keys.out(s.id), record, id=entry_id)  # type: ignore[arg-type]
            for reply in pipe.execute(raise_on_error=False):
                if isinstance(reply, Exception) and "equal or smaller" not in str(reply):
                    raise reply
        if done:
            self.client.xack(self.keys.feed(), RELAY_GROUP, *done)
            self.relayed += len(done)
