"""Officers, password hashes and sessions, all kept in Redis under the configured prefix.

Keys (``P`` is the prefix; braces are Redis Cluster hash tags)::

    {P}:console:{users}            hash    user name -> user record (JSON, password hashed)
    {P}:console:session:{SHA256}   string  a session (JSON) under the hash of its token, with a TTL

A session token only ever lives in the officer's cookie: Redis keeps its SHA-256,
so a dump of the database signs nobody in. A session expires after
``idle_s`` without a request and, whatever the activity, ``max_s`` after sign-in.
Each session carries its own CSRF token, which every state-changing request must
echo in the ``X-CSRF-Token`` header. A user record carries a generation
(``gen``), raised by every password change or reset; a session remembers the
generation it was opened under and ends when it is no longer the user's, so a
new password signs the user out everywhere else.

>>> h = hash_password("correct horse")
>>> verify_password("correct horse", h), verify_password("wrong", h)
(True, False)
"""

from __future__ import annotations

import base64
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

ROLES = ("officer", "leader")
ANY = "*"
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
# scrypt with N=2^14, r=8, p=1: the interactive-login parameters of RFC 7914 (~16 MiB, ~50 ms).
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P, _SCRYPT_LEN = 2**14, 8, 1, 32


class AuthError(ValueError):
    """A user record or sign-in request is wrong; the message says which field and why."""


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$hash`` (salt and hash base64), a fresh random salt by default."""
    if not password:
        msg = "password: must not be empty"
        raise AuthError(msg)
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=_SCRYPT_LEN
    )
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches ``stored`` (constant-time comparison)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        want = base64.b64decode(digest)
        got = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(want),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


@dataclass(frozen=True, slots=True, kw_only=True)
class User:
    """An officer (one centre and department, ``*`` for all of them) or a leader (all)."""

    name: str
    role: str = "officer"
    centre: str = ANY
    department: str = ANY
    display: str = ""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            msg = f"user name: letters, digits and _.@- only (1-64), got {self.name!r}"
            raise AuthError(msg)
        if self.role not in ROLES:
            msg = f"user {self.name!r}: role must be one of {', '.join(ROLES)}, got {self.role!r}"
            raise AuthError(msg)
        if self.role == "officer" and self.centre == ANY and self.department == ANY:
            msg = (
                f"user {self.name!r}: an officer needs a centre or a department "
                "(e.g. --centre county:qidong --department water_resources); "
                "use --role leader for someone who sees everything"
            )
            raise AuthError(msg)

    @property
    def is_leader(self) -> bool:
        return self.role == "leader"

    def may_see(self, centre: str, department: str) -> bool:
        """The server-side scope check for every read and every action."""
        if self.is_leader:
            return True
        return self.centre in (ANY, centre) and self.department in (ANY, department)

    def public(self) -> dict[str, Any]:
        return asdict(self)


class UserStore:
    """Users and sessions in Redis (a synchronous client; the server runs it in threads)."""

    def __init__(
        self, client: redis.Redis, prefix: str, *, idle_s: int = 1800, max_s: int = 43200
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.idle_s = idle_s
        self.max_s = max_s

    @property
    def users_key(self) -> str:
        return f"{tagged(self.prefix)}:console:{{users}}"

    def _session_key(self, token: str) -> str:
        digest = hashlib.sha256(token.encode()).hexdigest()
        return f"{tagged(self.prefix)}:console:session:{{{digest}}}"

    # --- users ---------------------------------------------------------------------------
    def _record(self, name: str) -> dict[str, Any] | None:
        raw: Any = self.client.hget(self.users_key, name) if _NAME.match(name) else None
        return None if raw is None else dict(orjson.loads(raw))

    @staticmethod
    def _user(record: dict[str, Any]) -> User:
        return User(**{k: v for k, v in record.items() if k not in ("password", "gen")})

    def add(self, user: User, password: str, *, replace: bool = False) -> None:
        """Create (or with ``replace``, overwrite) a user with a freshly hashed password;
        replacing ends the user's sessions."""
        record = {**user.public(), "password": hash_password(password), "gen": 0}
        if replace:
            old = self._record(user.name)
            record["gen"] = int(old.get("gen", 0)) + 1 if old else 0
            self.client.hset(self.users_key, user.name, orjson.dumps(record))
            return
        if not self.client.hsetnx(self.users_key, user.name, orjson.dumps(record)):
            msg = f"user {user.name!r} exists already; pass --replace to overwrite it"
            raise AuthError(msg)

    def set_password(self, name: str, password: str, *, keep_token: str | None = None) -> None:
        """A new password for ``name``: every session of theirs ends, except the one of
        ``keep_token`` (the session that asked for the change)."""
        record = self._record(name)
        if record is None:
            msg = f"no user {name!r}; 'citywatch console users list' shows them"
            raise AuthError(msg)
        record["password"] = hash_password(password)
        record["gen"] = int(record.get("gen", 0)) + 1
        self.client.hset(self.users_key, name, orjson.dumps(record))
        if keep_token:
            key = self._session_key(keep_token)
            raw: Any = self.client.get(key)
            if raw is not None:
                doc = orjson.loads(raw)
                if doc.get("user") == name:
                    doc["gen"] = record["gen"]
                    self.client.set(key, orjson.dumps(doc), keepttl=True)

    def remove(self, name: str) -> bool:
        """Delete a user; their open sessions die at their next request."""
        return bool(self.client.hdel(self.users_key, name))

    def get(self, name: str) -> User | None:
        record = self._record(name)
        return None if record is None else self._user(record)

    def list(self) -> list[User]:
        raw: Any = self.client.hgetall(self.users_key)
        return sorted((self._user(orjson.loads(v)) for v in raw.values()), key=lambda u: u.name)

    def authenticate(self, name: str, password: str) -> User | None:
        record = self._record(name)
        if record is None:
            # Spend the same time as a real check, so timing does not reveal user names.
            verify_password(password, _DUMMY_HASH)
            return None
        if not verify_password(password, record.get("password", "")):
            return None
        return self._user(record)

    # --- sessions ------------------------------------------------------------------------
    def open_session(self, user: User) -> tuple[str, str]:
        """A new session for ``user``: ``(token for the cookie, CSRF token)``."""
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now_ms = int(time.time() * 1000)
        record = self._record(user.name) or {}
        doc = {"user": user.name, "csrf": csrf, "created_ms": now_ms, "gen": record.get("gen", 0)}
        self.client.set(self._session_key(token), orjson.dumps(doc), ex=self.idle_s)
        return token, csrf

    def session(self, token: str | None) -> tuple[User, str] | None:
        """The signed-in user and CSRF token for a cookie, sliding its idle expiry."""
        if not token:
            return None
        key = self._session_key(token)
        raw: Any = self.client.get(key)
        if raw is None:
            return None
        doc = orjson.loads(raw)
        age_s = (time.time() * 1000 - doc["created_ms"]) / 1000
        if age_s >= self.max_s:
            self.client.delete(key)
            return None
        record = self._record(doc["user"])
        if record is None or record.get("gen", 0) != doc.get("gen", 0):
            self.client.delete(key)  # the user was removed, or their password changed
            return None
        user = self._user(record)
        self.client.expire(key, max(1, min(self.idle_s, int(self.max_s - age_s))))
        return user, doc["csrf"]

    def close_session(self, token: str | None) -> None:
        if token:
            self.client.delete(self._session_key(token))


_DUMMY_HASH = hash_password("citywatch-dummy", salt=b"\0" * 16)
