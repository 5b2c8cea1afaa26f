"""API tokens, per-token rate limits and Idempotency-Key answers, all in Redis.

Keys (``P`` is the prefix)::

    {P}:api:{tokens}              hash    token id -> record (JSON; the secret only as SHA-256)
    {P}:api:rate:{ID}:MINUTE      string  requests of token ID in that minute (expires)
    {P}:api:idem:{ID}:SHA256      string  the answer to an Idempotency-Key (expires)

A token reads ``cwt.<id>.<secret>``; Redis keeps the SHA-256 of the secret, so a
dump of the database authenticates nobody. A token is scoped to a centre and a
department exactly as an officer is (``*`` for all of one of them, not both)
and expires.

>>> t = ApiToken(id="water-sys", department="water_resources", expires_ms=2_000_000_000_000)
>>> t.may_see("town:x", "water_resources"), t.may_see("town:x", "transport"), t.by
(True, False, 'token:water-sys')
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any

import orjson
import redis

from citywatch.sinks.keys import tagged

ANY = "*"
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PREFIX = "cwt"


class TokenError(ValueError):
    """A token request is wrong; the message names the field to fix."""


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiToken:
    """A machine client: its scope (centre, department), expiry and rate limit."""

    id: str
    centre: str = ANY
    department: str = ANY
    expires_ms: int
    created_ms: int = 0
    rate_per_min: int = 0  # 0: the [api] rate_per_min default
    note: str = ""

    def __post_init__(self) -> None:
        if not _ID.match(self.id):
            msg = f"token id: letters, digits, _ and - only (1-64), got {self.id!r}"
            raise TokenError(msg)
        if self.centre == ANY and self.department == ANY:
            msg = (
                f"token {self.id!r}: give a department (and a centre) as for an officer, "
                "e.g. --department water_resources --centre county:qidong"
            )
            raise TokenError(msg)
        if self.rate_per_min < 0:
            msg = f"token {self.id!r}: rate_per_min must be >= 0, got {self.rate_per_min}"
            raise TokenError(msg)

    @property
    def by(self) -> str:
        """How the audit trail names this token."""
        return f"token:{self.id}"

    @property
    def centre_wide(self) -> bool:
        """A centre's own system (every department) verifies and closes, as its officers do."""
        return self.department == ANY

    def may_see(self, centre: str, department: str) -> bool:
        return self.centre in (ANY, centre) and self.department in (ANY, department)

    def public(self) -> dict[str, Any]:
        return asdict(self)


class TokenStore:
    """Tokens in Redis (synchronous; the API runs it in threads)."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    @property
    def key(self) -> str:
        return f"{tagged(self.prefix)}:api:{{tokens}}"

    def add(self, token: ApiToken) -> str:
        """Store a new token; returns the bearer string (shown once)."""
        secret = secrets.token_urlsafe(32)
        record = orjson.dumps({**token.public(), "hash": _sha256(secret)})
        if not self.client.hsetnx(self.key, token.id, record):
            msg = f"token {token.id!r} exists already; revoke it first or pick another id"
            raise TokenError(msg)
        return f"{PREFIX}.{token.id}.{secret}"

    def revoke(self, token_id: str) -> bool:
        return bool(self.client.hdel(self.key, token_id))

    def list(self) -> list[ApiToken]:
        raw: Any = self.client.hgetall(self.key)
        out = []
        for value in raw.values():
            doc = orjson.loads(value)
            doc.pop("hash", None)
            out.append(ApiToken(**doc))
        return sorted(out, key=lambda t: t.id)

    def authenticate(self, bearer: str, now_ms: int | None = None) -> ApiToken | None:
        """The token for a bearer string, if it is known, matches and has not expired."""
        parts = bearer.split(".")
        if len(parts) != 3 or parts[0] != PREFIX or not _ID.match(parts[1]):
            return None
        raw: Any = self.client.hget(self.key, parts[1])
        if raw is None:
            return None
        doc = orjson.loads(raw)
        if not hmac.compare_digest(doc.pop("hash", ""), _sha256(parts[2])):
            return None
        token = ApiToken(**doc)
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        return token if now_ms < token.expires_ms else None


class RateLimiter:
    """Fixed one-minute windows per token."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def hit(self, token_id: str, limit: int, now_s: float | None = None) -> int:
        """Count a request; 0 when allowed, else the seconds to wait."""
        now_s = time.time() if now_s is None else now_s
        minute = int(now_s // 60)
        key = f"{tagged(self.prefix)}:api:rate:{{{token_id}}}:{minute}"
        pipe = self.client.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, 120)
        count = int(pipe.execute()[0])
        return 0 if count <= limit else max(1, 60 * (minute + 1) - int(now_s))


class IdempotencyStore:
    """The first answer to each (token, Idempotency-Key), replayed for repeats."""

    def __init__(self, client: redis.Redis, prefix: str, ttl_s: int) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_s = ttl_s

    def _key(self, token_id: str, key: str) -> str:
        return f"{tagged(self.prefix)}:api:idem:{{{token_id}}}:{_sha256(key)}"

    def begin(self, token_id: str, key: str, fingerprint: str) -> dict[str, Any] | None:
        """None when this request is the first with the key (it is now in progress), else
        the stored record: ``{"state": "pending"|"done", "fp": ..., "status", "body"}``."""
        k = self._key(token_id, key)
        pending = orjson.dumps({"state": "pending", "fp": fingerprint})
        if self.client.set(k, pending, nx=True, ex=self.ttl_s):
            return None
        raw: Any = self.client.get(k)
        if raw is None:  # expired in between: take it
            self.client.set(k, pending, ex=self.ttl_s)
            return None
        doc: dict[str, Any] = orjson.loads(raw)
        return doc

    def finish(self, token_id: str, key: str, fingerprint: str, status: int, body: Any) -> None:
        doc = {"state": "done", "fp": fingerprint, "status": status, "body": body}
        self.client.set(self._key(token_id, key), orjson.dumps(doc), ex=self.ttl_s)

    def abandon(self, token_id: str, key: str) -> None:
        """Forget a key whose request failed on our side, so a retry runs it."""
        self.client.delete(self._key(token_id, key))
