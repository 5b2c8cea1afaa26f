"""``citywatch webhooks serve``: the relay and one delivery worker per subscription.

Only one service delivers at a time: it holds the lease ``{P}:webhooks:{lease}``
(renewed every few seconds); a second one started as a standby waits until the
lease expires, then takes over from the consumer groups' pending entries.
Subscriptions added or removed with ``citywatch webhooks`` are picked up within
``reload_s`` seconds.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

import redis

from citywatch.sinks.integrations.delivery import WebhookMetrics, Worker
from citywatch.sinks.integrations.events import entry_ms
from citywatch.sinks.integrations.settings import DeliverySettings, WebhookSpec
from citywatch.sinks.integrations.webhooks import (
    HookKeys,
    Relay,
    SubscriptionStore,
)

log = logging.getLogger(__name__)

# KEYS: lease.  ARGV: 1 holder, 2 ttl_ms.  Takes a free lease or renews our own.
LEASE_LUA = """
local cur = redis.call('GET', KEYS[1])
if cur == false or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
  return 1
end
return 0
"""


class WebhookService:
    """Relay + workers, started with ``start()`` and stopped with ``stop()``."""

    def __init__(
        self,
        client: redis.Redis,
        keys: HookKeys,
        store: SubscriptionStore,
        settings: DeliverySettings,
        *,
        metrics: WebhookMetrics | None = None,
        reload_s: float = 2.0,
        lease_ms: int = 15_000,
    ) -> None:
        self.client = client
        self.keys = keys
        self.store = store
        self.settings = settings
        self.metrics = metrics or WebhookMetrics()
        self.reload_s = reload_s
        self.lease_ms = lease_ms
        self.holder = uuid.uuid4().hex
        self.relay = Relay(
            client, keys, store, max_payload_bytes=settings.max_payload_bytes, reload_s=reload_s
        )
        self.workers: dict[str, Worker] = {}
        self._lease = client.register_script(LEASE_LUA)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="webhook-relay", daemon=True)
        self.active = threading.Event()  # set while this service holds the lease

    def start(self) -> WebhookService:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def wait(self) -> None:
        """Block until stopped (Ctrl-C stops it)."""
        while self._thread.is_alive():
            self._thread.join(0.5)

    def _renew(self) -> bool:
        return bool(self._lease(keys=[self.keys.lease()], args=[self.holder, self.lease_ms]))

    def _sync_workers(self, specs: list[WebhookSpec]) -> None:
        wanted = {s.id: s for s in specs}
        for sid, w in list(self.workers.items()):
            if wanted.get(sid) != w.spec or not w.is_alive():
                w.stop()
                w.join(5)
                del self.workers[sid]
        for sid, spec in wanted.items():
            if sid not in self.workers:
                w = Worker(spec, self.client, self.keys, self.settings, self.metrics)
                self.workers[sid] = w
                w.start()

    def _stop_workers(self) -> None:
        for w in self.workers.values():
            w.stop()
        for w in self.workers.values():
            w.join(5)
        self.workers.clear()

    def _run(self) -> None:
        renew_at = 0.0
        sync_at = 0.0
        backoff = 0.5
        while not self._stop.is_set():
            try:
                now = time.monotonic()
                if now >= renew_at:
                    held = self._renew()
                    renew_at = now + self.lease_ms / 3000
                    if not held:
                        if self.active.is_set():
                            log.warning("webhooks: lost the lease; another service delivers")
                            self._stop_workers()
                            self.active.clear()
                        self._stop.wait(self.lease_ms / 3000)
                        continue
                    if not self.active.is_set():
                        self.relay.setup()
                        self.active.set()
                if now >= sync_at:
                    self._sync_workers(self.store.all())
                    sync_at = now + self.reload_s
                self.relay.step(block_ms=200)
                backoff = 0.5
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("webhooks: Redis unreachable (%s); retrying in %.1f s", exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
        self._stop_workers()
        if self.active.is_set():
            self.client.delete(self.keys.lease())  # let a standby take over at once
            self.active.clear()


def _i(value: Any) -> int:
    s = str(value or "0")
    return int(s) if s.lstrip("-").isdigit() else 0


def subscription_status(
    client: redis.Redis,
    keys: HookKeys,
    spec: WebhookSpec,
    settings: DeliverySettings,
    now_ms: int | None = None,
) -> dict[str, Any]:
    """What admins see of one subscription: backlog, counts, last error, failing or not."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(keys.status(spec.id))
    pipe.xlen(keys.out(spec.id))
    pipe.xlen(keys.dead(spec.id))
    pipe.xrange(keys.out(spec.id), count=1)
    raw, backlog, dead_len, oldest = pipe.execute()
    st = {str(k): str(v) for k, v in raw.items()}
    since = _i(st.get("failing_since_ms"))
    failing_s = (now_ms - since) / 1000 if since else 0.0
    return {
        **spec.public(),
        "backlog": int(backlog),
        "oldest_pending_ms": entry_ms(str(oldest[0][0])) if oldest else None,
        "delivered": _i(st.get("delivered")),
        "failures": _i(st.get("failures")),
        "retries": _i(st.get("retries")),
        "dead_letters": int(dead_len),
        "last_success_ms": _i(st.get("last_success_ms")) or None,
        "last_attempt_ms": _i(st.get("last_attempt_ms")) or None,
        "last_error": st.get("last_error") if since else None,
        "failing_since_ms": since or None,
        "failing": bool(since) and failing_s >= settings.failing_after_s,
    }


def dead_letters(
    client: redis.Redis, keys: HookKeys, sub_id: str, count: int = 50
) -> list[dict[str, str]]:
    """The newest dead letters of a subscription."""
    entries: Any = client.xrevrange(keys.dead(sub_id), count=count)
    return [{"id": str(i), **{str(k): str(v) for k, v in f.items()}} for i, f in entries]
