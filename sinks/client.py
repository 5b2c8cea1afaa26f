"""Redis clients for every part of citywatch: connect with a clear message, mask secrets,
retry with capped exponential backoff while the server is away."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis

T = TypeVar("T")


class DispatchError(RuntimeError):
    """Redis could not be reached or refused a write. Check the URL and that the server runs."""


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
