"""Sign-in under attack: failed attempts slowed per user and per address, hashing bounded.

:class:`LoginLimiter` counts failed sign-ins per user name and per client address
in Redis (so every console process shares them)::

    {P}:console:login:{u:SHA1(name)}    hash  fails, until_ms    (expires login_window_s
    {P}:console:login:{a:SHA1(addr)}    hash  fails, until_ms     after the last failure)

After ``free`` failures each further one locks the key for ``delay_s``, doubling
(``delay_s * 2**k``) up to ``max_s``; while either key is locked a sign-in is
answered 429 with ``Retry-After`` before any password is hashed. A successful
sign-in clears the user's count (not the address's: an attacker's own account
must not reset the count of the address it guesses from).

:class:`HashPool` runs password hashing on a few threads with a bounded queue:
when it is full a sign-in is refused at once (503) rather than queued, so a flood
of sign-ins neither delays the signed-in officers (whose requests use other
threads) nor grows memory (each scrypt hash holds ~16 MiB while it runs).
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import redis.asyncio as aredis

from citywatch.sinks.keys import tagged

T = TypeVar("T")

FAIL_LUA = """
local n = redis.call('HINCRBY', KEYS[1], 'fails', 1)
local free, base, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local window_ms, now_ms = tonumber(ARGV[4]), tonumber(ARGV[5])
local delay_ms = 0
if n > free then
  delay_ms = math.floor(math.min(cap, base * 2 ^ (n - free - 1)) * 1000)
  redis.call('HSET', KEYS[1], 'until_ms', now_ms + delay_ms)
end
redis.call('PEXPIRE', KEYS[1], window_ms + delay_ms)
return delay_ms
"""


class LoginLimiter:
    """Failed sign-ins per user name and per client address, in Redis."""

    def __init__(
        self,
        client: aredis.Redis,
        prefix: str,
        *,
        free: int,
        delay_s: float,
        max_s: float,
        window_s: int,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.args = (free, delay_s, max_s, window_s * 1000)
        self._fail = client.register_script(FAIL_LUA)

    def keys(self, name: str, addr: str) -> tuple[str, str]:
        def key(kind: str, value: str) -> str:
            digest = hashlib.sha1(value.encode(), usedforsecurity=False).hexdigest()
            return f"{tagged(self.prefix)}:console:login:{{{kind}:{digest}}}"

        return key("u", name), key("a", addr)

    async def wait_s(self, name: str, addr: str) -> float:
        """Seconds until this user may try again from this address (0: now)."""
        pipe = self.client.pipeline(transaction=False)
        for key in self.keys(name, addr):
            pipe.hget(key, "until_ms")
        untils: list[Any] = await pipe.execute()
        now_ms = time.time() * 1000
        return max([0.0] + [(int(u) - now_ms) / 1000 for u in untils if u is not None])

    async def failed(self, name: str, addr: str) -> None:
        now_ms = int(time.time() * 1000)
        for key in self.keys(name, addr):
            await self._fail(keys=[key], args=[*self.args, now_ms])

    async def succeeded(self, name: str, addr: str) -> None:
        await self.client.delete(self.keys(name, addr)[0])


class PoolFull(RuntimeError):
    """Every hashing thread is busy and the queue is full; answer 503 and retry later."""


class HashPool:
    """``workers`` threads for password hashing, at most ``queue`` jobs waiting."""

    def __init__(self, workers: int, queue: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cw-hash")
        self._capacity = workers + queue
        self._taken = 0
        self._lock = threading.Lock()

    def full(self) -> bool:
        """True while every thread is busy and the queue is full."""
        with self._lock:
            return self._taken >= self._capacity

    def _release(self, _: object) -> None:
        with self._lock:
            self._taken -= 1

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """``fn(*args)`` on a hashing thread; :class:`PoolFull` when no slot is free."""
        with self._lock:
            if self._taken >= self._capacity:
                msg = "too many sign-ins at once; try again in a few seconds"
                raise PoolFull(msg)
            self._taken += 1
        try:
            future = self._executor.submit(fn, *args)
        except BaseException:
            self._release(None)
            raise
        # The slot frees when the job ends, even if the request waiting for it is gone.
        future.add_done_callback(self._release)
        return future

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.wrap_future(self.submit(fn, *args))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
