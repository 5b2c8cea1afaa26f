"""Silences: maintenance windows that keep a sensor's, camera's or zone's alerts from dispatch.

A silence names a target (``sensor``, ``camera`` or ``subject`` match the
alert's subject; ``zone`` matches its zone) and a window ``[start, end]`` in
epoch milliseconds. It applies to alerts whose event time falls in the window,
so a replay of a recording is silenced exactly as the live run was. Silences
live in one Redis hash (``{P}:silences:{ctl}``, field = silence id, value = JSON)
that officers edit with ``citywatch silence`` (or the console, through
:class:`SilenceStore`); the dispatch sink reads it with a short cache. Expired
silences are pruned whenever the list is read; ``end`` is their expiry.

>>> s = Silence("s1", "zone", "levee-yangtze-1", 0, 10_000, "alice", "repairs")
>>> s.covers("cam-1", "levee-yangtze-1", 5_000), s.covers("cam-1", "other", 5_000)
(True, False)
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass
from typing import Any

import orjson
import redis

from citywatch.detectors.alerts import Alert
from citywatch.sinks.keys import Keys

TARGETS = ("sensor", "camera", "subject", "zone")


class SilenceError(ValueError):
    """A silence is malformed; the message names the field to fix."""


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    target: str  # sensor | camera | subject | zone
    value: str
    start_ms: int
    end_ms: int
    by: str
    reason: str

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            msg = f"silence target must be one of {', '.join(TARGETS)}, got {self.target!r}"
            raise SilenceError(msg)
        if not self.value:
            msg = f"silence {self.target}: the {self.target} id is empty; name what to silence"
            raise SilenceError(msg)
        if self.end_ms <= self.start_ms:
            msg = f"silence end ({self.end_ms}) must be after its start ({self.start_ms})"
            raise SilenceError(msg)

    def covers(self, subject: str, zone: str | None, ts_ms: int) -> bool:
        if not self.start_ms <= ts_ms <= self.end_ms:
            return False
        if self.target == "zone":
            return zone == self.value
        return subject == self.value

    def matches(self, alert: Alert) -> bool:
        return self.covers(alert.subject, alert.zone, alert.ts_ms)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def make_silence(
    target: str, value: str, start_ms: int, end_ms: int, by: str, reason: str = ""
) -> Silence:
    """A silence with a deterministic id (same target and window, same id)."""
    key = f"{target}|{value}|{start_ms}|{end_ms}".encode()
    sid = "si-" + hashlib.blake2b(key, digest_size=6).hexdigest()
    return Silence(sid, target, value, start_ms, end_ms, by, reason)


class SilenceStore:
    """Silences in Redis, with a read cache of ``cache_s`` seconds for the hot path."""

    def __init__(self, client: redis.Redis, keys: Keys, *, cache_s: float = 5.0) -> None:
        self.client = client
        self.keys = keys
        self.cache_s = cache_s
        self._cache: list[Silence] = []
        self._read_at = -1e18

    def add(self, silence: Silence) -> Silence:
        self.client.hset(self.keys.silences(), silence.id, orjson.dumps(silence.to_json()))
        self._read_at = -1e18
        return silence

    def remove(self, silence_id: str) -> bool:
        self._read_at = -1e18
        return bool(self.client.hdel(self.keys.silences(), silence_id))

    def all(self, *, now_ms: int | None = None, expired: bool = False) -> list[Silence]:
        """Silences not yet expired at ``now_ms`` (default: now), or all with ``expired``."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        raw: dict[Any, Any] = self.client.hgetall(self.keys.silences())
        out = [Silence(**orjson.loads(doc)) for doc in raw.values()]
        return sorted(
            (s for s in out if expired or s.end_ms >= now_ms), key=lambda s: (s.start_ms, s.id)
        )

    def prune(self, now_ms: int) -> int:
        """Delete the silences that ended before ``now_ms``; returns how many."""
        gone = [s.id for s in self.all(now_ms=0, expired=True) if s.end_ms < now_ms]
        if gone:
            self.client.hdel(self.keys.silences(), *gone)
        self._read_at = -1e18
        return len(gone)

    def _current(self) -> list[Silence]:
        now = time.monotonic()
        if now - self._read_at >= self.cache_s:
            raw: dict[Any, Any] = self.client.hgetall(self.keys.silences())
            self._cache = [Silence(**orjson.loads(doc)) for doc in raw.values()]
            self._read_at = now
        return self._cache

    def match(self, alert: Alert) -> Silence | None:
        """The first silence covering the alert (by its event time), else None."""
        for s in self._current():
            if s.matches(alert):
                return s
        return None
