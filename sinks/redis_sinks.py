"""The Bytewax-facing Redis sinks: work orders (:class:`RedisDispatchSink`) and dead
letters (:class:`RedisDeadLetterSink`).

While Redis is unreachable a sink retries the whole batch with capped exponential
backoff (``[redis] retry_backoff_max_s``); the batch in hand is the bounded buffer
and the flow upstream waits (backpressure), so no alert is dropped. Retrying is
safe because every write is idempotent.
"""

from __future__ import annotations

import logging
from typing import Any

import redis

from citywatch.detectors.events import DeadLetter
from citywatch.sinks.base import BatchSink
from citywatch.sinks.client import RetryPolicy, connect, safe_url
from citywatch.sinks.keys import Keys
from citywatch.sinks.workorder import Dispatch
from citywatch.sinks.writer import WorkOrderWriter

log = logging.getLogger(__name__)


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
