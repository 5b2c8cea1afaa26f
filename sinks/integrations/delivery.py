"""Signed webhook deliveries: one worker per subscription, at least once, in order.

A worker reads its subscription's stream ``{P}:wh:{SUB}:out`` through the
consumer group ``delivery`` (pending entries first, so a restart resumes where
it stopped) and delivers up to ``concurrency`` work orders at a time, each
work order's events one at a time in stream order, which keeps them in
sequence order. Each attempt is a POST of the
JSON body signed per Standard Webhooks (``webhook-id``, ``webhook-timestamp``,
``webhook-signature``, made by the ``standardwebhooks`` library); the
``webhook-id`` (``msg_<work order>_<sequence>``) is the same on every attempt,
so receivers drop repeats by it. A 2xx answer acknowledges and deletes the
entry. Anything else (an error status, a timeout, a refused connection, a
redirect to another host) is retried with capped exponential backoff and
jitter until ``retry_for_s`` after the event, then the event moves to
``{P}:wh:{SUB}:dead`` with its last error. Only 307/308 redirects to the same
scheme, host and port are followed. A slow or dead endpoint holds up its own
worker only.
"""

from __future__ import annotations

import logging
import random
import ssl
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import redis
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from standardwebhooks import Webhook

from citywatch import __version__
from citywatch.sinks.integrations.events import entry_ms
from citywatch.sinks.integrations.settings import DeliverySettings, WebhookSpec, mask_url
from citywatch.sinks.integrations.webhooks import DELIVERY_GROUP, HookKeys, ensure_group

log = logging.getLogger(__name__)
# httpx logs every request's full URL at INFO and DEBUG; a receiver's URL may carry a
# token in its query string, which must not reach the logs.
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)
USER_AGENT = f"citywatch-webhooks/{__version__}"
MAX_HOPS = 3


class WebhookMetrics:
    """Prometheus metrics of the delivery workers (one registry per process)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.deliveries = Counter(
            "citywatch_webhook_deliveries", "Events delivered (2xx)", ["subscription"], registry=r
        )
        self.failures = Counter(
            "citywatch_webhook_failures", "Failed attempts", ["subscription"], registry=r
        )
        self.retries = Counter(
            "citywatch_webhook_retries", "Attempts repeated after a failure", ["subscription"],
            registry=r,
        )  # fmt: skip
        self.dead = Counter(
            "citywatch_webhook_dead_letters", "Events given up on", ["subscription"], registry=r
        )
        self.latency = Histogram(
            "citywatch_webhook_request_seconds",
            "Duration of one delivery attempt",
            ["subscription"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.lag = Histogram(
            "citywatch_webhook_lag_seconds",
            "From the work-order change to its delivery",
            ["subscription"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 60, 300, 3600, 86400),
            registry=r,
        )
        self.failing = Gauge(
            "citywatch_webhook_failing_seconds",
            "How long the endpoint has been failing (0 when healthy)",
            ["subscription"],
            registry=r,
        )


@dataclass(frozen=True, slots=True)
class Attempt:
    ok: bool
    status: int | None
    error: str
    seconds: float


def _origin(url: str) -> tuple[str, str, int | None]:
    p = urlsplit(url)
    port = p.port or {"http": 80, "https": 443}.get(p.scheme)
    return p.scheme, (p.hostname or "").lower(), port


def _short(text: str, n: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


class Sender:
    """Signs and POSTs one body to one subscription's URL."""

    def __init__(self, spec: WebhookSpec, settings: DeliverySettings) -> None:
        self.spec = spec
        self._signer = Webhook(spec.secret)
        verify: ssl.SSLContext | bool = settings.verify_tls
        if settings.ca_file:
            verify = ssl.create_default_context(cafile=settings.ca_file)
        self.http = httpx.Client(
            timeout=settings.timeout_s,
            verify=verify,
            follow_redirects=False,
            headers={"user-agent": USER_AGENT},
        )

    def headers(self, msg_id: str, body: bytes, extra: Mapping[str, str]) -> dict[str, str]:
        now = datetime.now(tz=UTC)
        return {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self._signer.sign(msg_id, now, body),
            **extra,
        }

    def post(self, msg_id: str, body: bytes, extra: Mapping[str, str] | None = None) -> Attempt:
        """One delivery attempt (following same-origin 307/308 redirects)."""
        t0 = time.monotonic()
        url = self.spec.url
        try:
            for _ in range(MAX_HOPS + 1):
                req = self.http.build_request(
                    "POST", url, content=body, headers=self.headers(msg_id, body, extra or {})
                )
                resp = self.http.send(req, stream=True)
                try:
                    status = resp.status_code
                    if 200 <= status < 300:
                        # Read a short answer to its end, so the connection is kept alive.
                        _limited(resp, 64 * 1024)
                        return Attempt(True, status, "", time.monotonic() - t0)
                    if resp.is_redirect and status in (307, 308):
                        target = str(resp.url.join(resp.headers["location"]))
                        if _origin(target) != _origin(self.spec.url):
                            err = f"redirect to another host refused ({mask_url(target)})"
                            return Attempt(False, status, err, time.monotonic() - t0)
                        url = target
                        continue
                    text = b"".join(_limited(resp, 512)).decode("utf-8", "replace")
                    err = f"HTTP {status}" + (f": {_short(text)}" if text.strip() else "")
                    return Attempt(False, status, err, time.monotonic() - t0)
                finally:
                    resp.close()
            return Attempt(False, None, f"more than {MAX_HOPS} redirects", time.monotonic() - t0)
        except httpx.TimeoutException:
            err = f"timed out after {self.http.timeout.read or 0:g} s"
            return Attempt(False, None, err, time.monotonic() - t0)
        except httpx.HTTPError as exc:
            err = f"{type(exc).__name__}: {_short(str(exc)) or 'no answer'}"
            return Attempt(False, None, err, time.monotonic() - t0)

    def close(self) -> None:
        self.http.close()


def _limited(resp: httpx.Response, n: int) -> list[bytes]:
    out: list[bytes] = []
    size = 0
    for chunk in resp.iter_bytes():
        out.append(chunk[: n - size])
        size += len(out[-1])
        if size >= n:
            break
    return out


def backoff_s(attempt: int, first_s: float, max_s: float, rng: random.Random) -> float:
    """Capped exponential backoff with "equal jitter": half fixed, half random.

    >>> 0.5 <= backoff_s(1, 1.0, 60.0, random.Random(1)) <= 1.0
    True
    >>> 30.0 <= backoff_s(20, 1.0, 60.0, random.Random(1)) <= 60.0
    True
    """
    delay = min(max_s, first_s * 2 ** min(attempt - 1, 40))
    return delay / 2 + rng.uniform(0, delay / 2)


class Worker(threading.Thread):
    """Delivers one subscription's stream until ``stop()``."""

    def __init__(
        self,
        spec: WebhookSpec,
        client: redis.Redis,
        keys: HookKeys,
        settings: DeliverySettings,
        metrics: WebhookMetrics,
        *,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(name=f"webhook-{spec.id}", daemon=True)
        self.spec = spec
        self.client = client
        self.keys = keys
        self.settings = settings
        self.metrics = metrics
        self.rng = rng or random.Random()
        self._halt = threading.Event()
        self.sender = Sender(spec, settings)
        self.error: BaseException | None = None
        self._pool = (
            ThreadPoolExecutor(settings.concurrency, thread_name_prefix=f"webhook-{spec.id}")
            if settings.concurrency > 1
            else None
        )

    def stop(self) -> None:
        self._halt.set()

    @property
    def stopping(self) -> bool:
        return self._halt.is_set()

    def run(self) -> None:
        out = self.keys.out(self.spec.id)
        backoff = 0.5
        while not self._halt.is_set():
            try:
                ensure_group(self.client, out, DELIVERY_GROUP, "0")
                self._loop(out)
                backoff = 0.5
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("webhook %s: Redis unreachable (%s); retrying", self.spec.id, exc)
                self._halt.wait(backoff)
                backoff = min(backoff * 2, 10.0)
            except BaseException as exc:  # noqa: BLE001 - reported by the service, never lost
                self.error = exc
                log.exception("webhook %s: worker stopped", self.spec.id)
                return
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self.sender.close()

    def _loop(self, out: str) -> None:
        start = "0"  # our pending entries first: what a previous run had in hand
        while not self._halt.is_set():
            got: Any = self.client.xreadgroup(
                DELIVERY_GROUP,
                "worker",
                {out: start},
                count=100,
                block=None if start == "0" else 1000,
            )
            entries = [(str(i), f) for _, batch in got or [] for i, f in batch]
            if start == "0" and not entries:
                start = ">"
                continue
            self._deliver_batch(out, entries)

    def _deliver_batch(self, out: str, entries: list[tuple[str, Any]]) -> None:
        """Up to ``concurrency`` work orders at once; each order's events one after the
        other, in stream order; the next batch waits for this one."""
        lanes: dict[str, list[tuple[str, Any]]] = {}
        for entry_id, fields in entries:
            lanes.setdefault((fields or {}).get("wo", ""), []).append((entry_id, fields))

        def run_lane(lane: list[tuple[str, Any]]) -> None:
            for entry_id, fields in lane:
                if self._halt.is_set():
                    return
                self.deliver(out, entry_id, fields)

        if self._pool is None or len(lanes) == 1:
            for lane in lanes.values():
                run_lane(lane)
            return
        for done in [self._pool.submit(run_lane, lane) for lane in lanes.values()]:
            done.result()

    def deliver(self, out: str, entry_id: str, fields: Mapping[str, str] | None) -> bool:
        """Deliver one entry until it succeeds, is dead-lettered, or the worker stops."""
        sid = self.spec.id
        status = self.keys.status(sid)
        if not fields or "body" not in fields:  # deleted under us: nothing to send
            self.client.xack(out, DELIVERY_GROUP, entry_id)
            return False
        body = fields["body"].encode()
        msg_id = f"msg_{fields['wo']}_{fields['seq']}"
        extra = {"citywatch-sequence": fields["seq"], "citywatch-event": fields["type"]}
        deadline_ms = entry_ms(entry_id) + int(self.settings.retry_for_s * 1000)
        attempt = 0
        while not self._halt.is_set():
            attempt += 1
            if attempt > 1:
                self.metrics.retries.labels(sid).inc()
                self.client.hincrby(status, "retries", 1)
            res = self.sender.post(msg_id, body, extra)
            now_ms = int(time.time() * 1000)
            self.metrics.latency.labels(sid).observe(res.seconds)
            if res.ok:
                self.metrics.deliveries.labels(sid).inc()
                self.metrics.lag.labels(sid).observe(max(0, now_ms - entry_ms(entry_id)) / 1000)
                self.metrics.failing.labels(sid).set(0)
                # MULTI: the stream and the status share the {SUB} slot, and no reader
                # sees the entry gone but not yet counted.
                pipe = self.client.pipeline(transaction=True)
                pipe.xack(out, DELIVERY_GROUP, entry_id)
                pipe.xdel(out, entry_id)
                pipe.hincrby(status, "delivered", 1)
                pipe.hset(status, mapping={"last_success_ms": now_ms, "last_attempt_ms": now_ms})
                pipe.hdel(status, "failing_since_ms")
                pipe.execute()
                return True
            self.metrics.failures.labels(sid).inc()
            pipe = self.client.pipeline(transaction=False)
            pipe.hincrby(status, "failures", 1)
            pipe.hset(
                status,
                mapping={
                    "last_error": res.error,
                    "last_status": res.status or 0,
                    "last_attempt_ms": now_ms,
                },
            )
            pipe.hsetnx(status, "failing_since_ms", now_ms)
            pipe.hget(status, "failing_since_ms")
            since = int(pipe.execute()[-1] or now_ms)
            self.metrics.failing.labels(sid).set((now_ms - since) / 1000)
            if attempt == 1 or attempt % 10 == 0:
                log.warning(
                    "webhook %s (%s): %s for %s (attempt %d)",
                    sid,
                    mask_url(self.spec.url),
                    res.error,
                    msg_id,
                    attempt,
                )
            if now_ms >= deadline_ms:
                self._dead_letter(out, entry_id, fields, res.error, attempt)
                return False
            delay = backoff_s(
                attempt, self.settings.backoff_first_s, self.settings.backoff_max_s, self.rng
            )
            self._halt.wait(min(delay, max(0.0, (deadline_ms - now_ms) / 1000)))
        return False

    def _dead_letter(
        self, out: str, entry_id: str, fields: Mapping[str, str], error: str, attempts: int
    ) -> None:
        sid = self.spec.id
        self.metrics.dead.labels(sid).inc()
        log.error("webhook %s: gave up on %s after %d attempts: %s", sid, entry_id, attempts, error)
        pipe = self.client.pipeline(transaction=True)
        record: dict[Any, Any] = {**fields, "entry": entry_id}
        record.update({"error": error, "attempts": str(attempts)})
        pipe.xadd(
            self.keys.dead(sid),
            record,
            maxlen=self.settings.dead_letter_maxlen,
            approximate=True,
        )
        pipe.xack(out, DELIVERY_GROUP, entry_id)
        pipe.xdel(out, entry_id)
        pipe.hincrby(self.keys.status(sid), "dead", 1)
        pipe.execute()
