"""The Bytewax-facing Redis sinks: work orders (:class:`RedisDispatchSink`) and dead
letters (:class:`RedisDeadLetterSink`).

While Redis is unreachable (or refuses writes with ``OOM``/``READONLY``/loading
errors) a sink retries the whole batch with capped exponential backoff (``[redis]
retry_backoff_max_s``); the batch in hand is the bounded buffer and the flow
upstream waits (backpressure), so no alert is dropped. Retrying is safe because
every write is idempotent. Each retry is logged and counted (``on_retry``); the
dispatch sink waits for ever by default (``retry_give_up_s = 0``), the dead-letter
sink gives up after ``dead_letter_give_up_s`` with an error that stops the run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import redis
from redis.exceptions import NoPermissionError, OutOfMemoryError, ReadOnlyError

from citywatch.detectors.events import DeadLetter
from citywatch.sinks.base import BatchSink
from citywatch.sinks.client import (
    DispatchError,
    RedisOptions,
    RetryPolicy,
    open_client,
    permission_message,
)
from citywatch.sinks.keys import Keys
from citywatch.sinks.workorder import Dispatch, Written
from citywatch.sinks.writer import WorkOrderWriter

log = logging.getLogger(__name__)

OnRetry = Callable[[str], None]  # called with the sink's name on every retry


def _options(target: RedisOptions | str) -> RedisOptions:
    return target if isinstance(target, RedisOptions) else RedisOptions(url=target)


class _RetryingSink:
    """What both sinks share: the client, the retry loop and its log lines."""

    name = "redis"

    def __init__(self, target: RedisOptions | str, keys: Keys, on_retry: OnRetry | None) -> None:
        self.opts = _options(target)
        self.keys = keys
        self.on_retry = on_retry
        self.retries = 0
        self._client: redis.Redis | None = None

    @property
    def url(self) -> str:
        return self.opts.url

    def _policy(self) -> RetryPolicy:
        return self.opts.retry

    def _retried(self, exc: Exception, attempt: int) -> None:
        self.retries += 1
        if self.on_retry is not None:
            self.on_retry(self.name)
        log.warning(
            "%s sink: Redis at %s unavailable (%s); holding the batch, retry %d",
            self.name,
            self.opts.masked_url,
            exc,
            attempt,
        )

    def _run(self, fn: Callable[[], Any]) -> Any:
        try:
            return self._policy().run(_refused_as_unreachable(fn), on_retry=self._retried)
        except NoPermissionError as exc:
            raise DispatchError(permission_message(exc, self.opts)) from exc

    def setup(self) -> None:
        self._client = open_client(self.opts)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def _refused_as_unreachable(fn: Callable[[], Any]) -> Callable[[], Any]:
    """Treat a full (``OOM``) or read-only server like an unreachable one: wait and retry."""

    def call() -> Any:
        try:
            return fn()
        except (OutOfMemoryError, ReadOnlyError) as exc:
            msg = f"{type(exc).__name__}: {exc}"
            raise redis.ConnectionError(msg) from exc
        except redis.ResponseError as exc:
            if "MISCONF" in str(exc):  # a failing disk: writes refused until it is fixed
                msg = str(exc)
                raise redis.ConnectionError(msg) from exc
            raise

    return call


class RedisDispatchSink(_RetryingSink, BatchSink[Dispatch]):
    """Work orders for dispatches, retried while Redis is away (the flow waits meanwhile)."""

    name = "dispatch"

    def __init__(
        self,
        target: RedisOptions | str,
        keys: Keys,
        *,
        feed_maxlen: int = 10_000,
        silence_cache_s: float = 5.0,
        on_written: Callable[[list[Dispatch], list[Written]], None] | None = None,
        on_retry: OnRetry | None = None,
    ) -> None:
        super().__init__(target, keys, on_retry)
        self.feed_maxlen = feed_maxlen
        self.silence_cache_s = silence_cache_s
        self.on_written = on_written
        self._writer: WorkOrderWriter | None = None

    def setup(self) -> None:
        super().setup()
        assert self._client is not None
        self._writer = WorkOrderWriter(
            self._client,
            self.keys,
            feed_maxlen=self.feed_maxlen,
            silence_cache_s=self.silence_cache_s,
            wait_replicas=self.opts.wait_replicas,
        )

    def write_batch(self, items: list[Dispatch]) -> None:
        assert self._writer is not None, "setup() first"
        writer = self._writer
        results = self._run(lambda: writer.write(items))
        if self.on_written is not None:
            self.on_written(items, results)


class RedisDeadLetterSink(_RetryingSink, BatchSink[DeadLetter]):
    """Dead letters to a capped Redis stream, with their reasons and raw bytes."""

    name = "dead-letter"

    def __init__(
        self,
        target: RedisOptions | str,
        keys: Keys,
        *,
        maxlen: int = 100_000,
        give_up_s: float = 300.0,
        on_retry: OnRetry | None = None,
    ) -> None:
        super().__init__(target, keys, on_retry)
        self.maxlen = maxlen
        self.give_up_s = give_up_s

    def _policy(self) -> RetryPolicy:
        return RetryPolicy(
            first_s=self.opts.retry.first_s, max_s=self.opts.retry.max_s, give_up_s=self.give_up_s
        )

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

        try:
            self._run(write)
        except DispatchError as exc:
            msg = (
                f"dead-letter sink: gave up after {self.give_up_s:g} s and "
                f"{self.retries} retries; {len(items)} dead letters not stored in Redis "
                f"({exc}); raise [redis] dead_letter_give_up_s or bring Redis back"
            )
            log.error(msg)
            raise DispatchError(msg) from exc
        for dl in items:
            log.info(
                "dead letter: %s",
                dl.reason,
                extra={"source": dl.source, "category": dl.category or dl.to_json()["category"]},
            )
