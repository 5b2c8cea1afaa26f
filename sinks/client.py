"""Redis clients for every part of citywatch, from one set of options.

:class:`RedisOptions` holds what a connection needs: the URL, an ACL user and
password (kept out of ``repr`` and of every printed URL), TLS files, timeouts and
the retry policy. :func:`open_client` / :func:`open_async_client` build the
clients every part uses (dispatch and dead-letter sinks, console, ``users``,
officer, escalation, report, silences), so a setting applies everywhere.

The URL's scheme chooses the topology: ``redis://`` / ``rediss://`` (TLS) /
``unix://`` is one server (standalone, or a Sentinel-managed primary);
``redis+cluster://host:port`` / ``rediss+cluster://`` is a Redis Cluster, reached
through any one of its nodes (redis-py's cluster client learns the others and
follows failovers); ``redis+cluster://h1:7000,h2:7000,h3:7000`` names several seed
nodes, so that a start succeeds while any one of them answers. All keys of a prefix
share one hash slot (see :mod:`citywatch.sinks.keys`), so the same scripts run on both.

>>> RedisOptions(url="redis+cluster://10.0.0.5:7000").cluster
True
>>> cluster_seed_url("rediss+cluster://ops@10.0.0.5:7000")
'rediss://ops@10.0.0.5:7000'

>>> opts = RedisOptions(url="redis://ops:p@ss:w0rd@redis.internal:6379/0")
>>> opts.masked_url
'redis://ops:***@redis.internal:6379/0'
>>> opts
RedisOptions(url='redis://ops:***@redis.internal:6379/0', username=None, ...)
"""

from __future__ import annotations

import logging
import re
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import redis
import redis.asyncio as aredis
import redis.asyncio.cluster as acluster
import redis.cluster
from redis.exceptions import ClusterError, NoPermissionError, TryAgainError

T = TypeVar("T")
log = logging.getLogger(__name__)


# What a retry can outlast: a cut connection, a loading server, and a cluster in the
# middle of a failover (CLUSTERDOWN, TRYAGAIN, a client that ran out of redirections).
TRANSIENT: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.BusyLoadingError,
    ClusterError,
    TryAgainError,
)
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def cluster_seed_urls(url: str) -> list[str]:
    """The plain ``redis://`` URL of every seed node when ``url`` names a Redis Cluster
    (``redis+cluster://`` or ``rediss+cluster://``), else empty. Several seeds are
    comma-separated ``host:port`` pairs sharing the user, path and query, so that the
    client starts while any one of them answers.

    >>> cluster_seed_urls("redis+cluster://ops:p@ss@h1:7000,h2:7001/0?x=1")
    ['redis://ops:p@ss@h1:7000/0?x=1', 'redis://ops:p@ss@h2:7001/0?x=1']
    >>> cluster_seed_urls("redis://h1:6379")
    []
    """
    scheme, sep, rest = url.partition("://")
    plain = CLUSTER_SCHEMES.get(scheme.lower()) if sep else None
    if not plain:
        return []
    at = rest.rfind("@")  # the authority ends at the first '/' or '?' after the user part
    userinfo, hosts = rest[: at + 1], rest[at + 1 :]
    end = min((i for i in (hosts.find("/"), hosts.find("?")) if i >= 0), default=len(hosts))
    hosts, tail = hosts[:end], hosts[end:]
    return [f"{plain}://{userinfo}{h.strip()}{tail}" for h in hosts.split(",") if h.strip()]


def cluster_seed_url(url: str) -> str | None:
    """The plain ``redis://`` URL of the (first) seed node when ``url`` names a Redis
    Cluster, else None."""
    seeds = cluster_seed_urls(url)
    return seeds[0] if seeds else None


def _other_seeds(seeds: Sequence[str]) -> list[redis.cluster.ClusterNode]:
    """The seeds after the first as cluster nodes (redis-py tries each at start)."""
    nodes = []
    for seed in seeds[1:]:
        parts = urlsplit(seed)
        nodes.append(redis.cluster.ClusterNode(parts.hostname or "localhost", parts.port or 6379))
    return nodes


def is_cluster(client: object) -> bool:
    """True for a Redis Cluster client (sync or asyncio)."""
    return isinstance(client, redis.cluster.RedisCluster | acluster.RedisCluster)


def wait_for_replicas(client: redis.Redis, key: str, replicas: int, timeout_ms: int) -> None:
    """``WAIT`` on the node that holds ``key`` until ``replicas`` replicas have every
    write of this connection so far; fewer within ``timeout_ms`` raise a connection
    error, which the callers' retry turns into a repeat of their idempotent write."""
    if is_cluster(client):
        node = client.get_node_from_key(key)  # type: ignore[attr-defined]
        acked = client.execute_command("WAIT", replicas, timeout_ms, target_nodes=node)
    else:
        acked = client.wait(replicas, timeout_ms)
    if int(acked) < replicas:
        msg = (
            f"only {acked} of {replicas} replicas acknowledged the write within "
            f"{timeout_ms} ms ([redis] wait_replicas)"
        )
        raise redis.ConnectionError(msg)


def load_for_pipelines(client: redis.Redis, script: str) -> None:
    """Load ``script`` on every primary of a cluster: a cluster pipeline queues EVALSHA
    without loading it first (a single server's pipeline does). Callers whose pipeline
    still meets ``NOSCRIPT`` (a promoted replica, SCRIPT FLUSH) call this again and
    repeat their idempotent batch. Nothing to do on one server."""
    if is_cluster(client):
        client.script_load(script)


class DispatchError(RuntimeError):
    """Redis could not be reached or refused a write. Check the URL and that the server runs."""


def safe_url(url: str) -> str:
    """The URL with its whole password masked (the user stays readable).

    A password may hold ``@`` or ``:``: the user part ends at the last ``@``
    before the host, and the password starts after the first ``:`` in it.

    >>> safe_url("redis://user:secret@host:6379/0")
    'redis://user:***@host:6379/0'
    >>> safe_url("rediss://:p@ss:w@rd@host:6380")
    'rediss://:***@host:6380'
    >>> safe_url("redis://token@host"), safe_url("unix:///run/redis.sock")
    ('redis://***@host', 'unix:///run/redis.sock')
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    # The authority ends at the first '/' after the last '@' (passwords may hold '/').
    at = rest.rfind("@")
    if at < 0:
        return url
    userinfo, host = rest[:at], rest[at + 1 :]
    user, colon, _ = userinfo.partition(":")
    masked = f"{user}:***" if colon else "***"
    return f"{scheme}://{masked}@{host}"


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
            except TRANSIENT as exc:
                attempt += 1
                if self.give_up_s and time.monotonic() - t0 + delay > self.give_up_s:
                    msg = f"Redis unreachable for {self.give_up_s:g} s, giving up: {exc}"
                    raise DispatchError(msg) from exc
                if on_retry is not None:
                    on_retry(exc, attempt)
                time.sleep(delay)
                delay = min(self.max_s, delay * 2)


@dataclass(frozen=True, slots=True, kw_only=True)
class RedisOptions:
    """Everything a Redis connection needs; ``password`` overrides one in the URL."""

    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    socket_timeout_s: float = 10.0
    connect_timeout_s: float = 5.0
    retry: RetryPolicy = RetryPolicy()
    wait_replicas: int = 0  # the dispatch sink's WAIT after each batch (0: none)

    def __repr__(self) -> str:
        return (
            f"RedisOptions(url={self.masked_url!r}, username={self.username!r}, "
            f"tls_ca_file={self.tls_ca_file!r}, ...)"
        )

    @property
    def masked_url(self) -> str:
        return safe_url(self.url)

    @property
    def tls(self) -> bool:
        return self.url.startswith(("rediss://", "rediss+cluster://"))

    @property
    def cluster(self) -> bool:
        """True for a ``redis+cluster://`` / ``rediss+cluster://`` URL."""
        return cluster_seed_url(self.url) is not None

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``redis.Redis.from_url`` (sync and asyncio alike)."""
        kw: dict[str, Any] = {
            "socket_timeout": self.socket_timeout_s,
            "socket_connect_timeout": self.connect_timeout_s,
        }
        if self.username:
            kw["username"] = self.username
        if self.password is not None:
            kw["password"] = self.password
        if self.tls:
            kw["ssl_cert_reqs"] = ssl.CERT_REQUIRED
            if self.tls_ca_file:
                kw["ssl_ca_certs"] = self.tls_ca_file
            if self.tls_cert_file:
                kw["ssl_certfile"] = self.tls_cert_file
            if self.tls_key_file:
                kw["ssl_keyfile"] = self.tls_key_file
        elif self.tls_cert_file or self.tls_ca_file:
            log.warning(
                "[redis] TLS files are set but the URL %s is not rediss://; TLS is off",
                self.masked_url,
            )
        return kw


def permission_message(
    exc: NoPermissionError, opts: RedisOptions | str, *, commands: Sequence[str] = ()
) -> str:
    """One line for an ACL denial: who, what is missing, how to grant it.

    >>> err = NoPermissionError("User cw has no permissions to run the 'xadd' command")
    >>> line = permission_message(err, "redis://cw:secret@db:6379/0")
    >>> line.startswith("Redis at redis://cw:***@db:6379/0 denied ACL user 'cw'")
    True
    >>> line.endswith("grant it: ACL SETUSER cw +xadd")
    True
    """
    text = str(exc).removeprefix("NOPERM ").strip().rstrip(".")
    url = opts.masked_url if isinstance(opts, RedisOptions) else safe_url(opts)
    named = re.search(r"User (\S+) has no permissions", text)
    url_user = urlsplit(opts.url if isinstance(opts, RedisOptions) else opts).username
    user = (
        (opts.username if isinstance(opts, RedisOptions) else None)
        or (named.group(1) if named else None)
        or url_user
        or "default"
    )
    cmd = re.search(r"run the '([^']+)' command", text)
    if commands:
        grant = f"ACL SETUSER {user} " + " ".join(f"+{c}" for c in commands)
    elif cmd:
        grant = f"ACL SETUSER {user} +{cmd.group(1).split('|')[0]}"
    elif "key" in text:
        grant = (
            f"ACL SETUSER {user} ~{{<prefix>}}:*  (the [redis] prefix in braces, e.g. ~{{cw}}:*)"
        )
    elif "channel" in text:
        grant = f"ACL SETUSER {user} &*"
    else:
        grant = f"ACL SETUSER {user} ... (see ACL LOG on the server)"
    where = f"Redis at {url}" if url else "Redis"
    return f"{where} denied ACL user {user!r} a permission ({text}); grant it: {grant}"


def open_client(
    opts: RedisOptions, *, check: bool = True, decode_responses: bool = False
) -> redis.Redis:
    """A client for ``opts``; pings first when ``check``, with a message that says what to do.

    For a cluster URL it is a :class:`redis.cluster.RedisCluster`, typed as
    ``redis.Redis`` because it answers the same commands, scripts and pipelines that
    citywatch uses (keys of one prefix share a slot)."""
    seeds = cluster_seed_urls(opts.url)
    client: redis.Redis
    if not seeds:
        client = redis.Redis.from_url(opts.url, decode_responses=decode_responses, **opts.kwargs())
    else:
        try:
            cluster = redis.cluster.RedisCluster.from_url(
                seeds[0],
                startup_nodes=_other_seeds(seeds),
                decode_responses=decode_responses,
                **opts.kwargs(),
            )
        except (redis.RedisError, redis.exceptions.RedisClusterException) as exc:
            msg = (
                f"cannot reach the Redis Cluster at {opts.masked_url} ({exc}); check that "
                "the node answers CLUSTER SLOTS, or use redis:// for a single server"
            )
            raise DispatchError(msg) from exc
        client = cast(redis.Redis, cluster)
    if check:
        try:
            client.ping()
        except redis.AuthenticationError as exc:
            msg = (
                f"Redis at {opts.masked_url} refused the credentials ({exc}); set the ACL "
                "user and password ([redis] username, password_file or password_env, or "
                "redis://USER:PASSWORD@host:6379/0)"
            )
            raise DispatchError(msg) from exc
        except NoPermissionError as exc:
            raise DispatchError(permission_message(exc, opts)) from exc
        except redis.RedisError as exc:
            msg = (
                f"cannot reach Redis at {opts.masked_url} ({exc}); start the server, fix "
                "CITYWATCH_REDIS_URL, or unset it to run an embedded server"
            )
            raise DispatchError(msg) from exc
    return client


def open_async_client(opts: RedisOptions, *, decode_responses: bool = False) -> aredis.Redis:
    """The asyncio client for ``opts`` (the console's live read side)."""
    kw = opts.kwargs()
    kw["socket_timeout"] = None  # it blocks on XREAD; liveness comes from the server's replies
    seeds = cluster_seed_urls(opts.url)
    if not seeds:
        return aredis.Redis.from_url(opts.url, decode_responses=decode_responses, **kw)
    others = [acluster.ClusterNode(n.host, n.port) for n in _other_seeds(seeds)]
    cluster = acluster.RedisCluster.from_url(
        seeds[0], startup_nodes=others, decode_responses=decode_responses, **kw
    )
    return cast(aredis.Redis, cluster)


def connect(
    url: str,
    *,
    check: bool = True,
    socket_timeout_s: float = 10.0,
    connect_timeout_s: float = 5.0,
    tls_ca_file: str | None = None,
    decode_responses: bool = False,
) -> redis.Redis:
    """A client for a bare ``url`` (tests, tools); the rest of citywatch uses
    :func:`open_client` with the ``[redis]`` options."""
    opts = RedisOptions(
        url=url,
        socket_timeout_s=socket_timeout_s,
        connect_timeout_s=connect_timeout_s,
        tls_ca_file=tls_ca_file,
    )
    return open_client(opts, check=check, decode_responses=decode_responses)


def wait_for_redis(
    opts: RedisOptions,
    wait_s: float | None,
    *,
    on_wait: Callable[[str], None] | None = None,
) -> redis.Redis:
    """A checked client, waiting while the server is unreachable: capped exponential
    backoff, ``on_wait`` told before each pause; ``wait_s=None`` waits for ever, ``0``
    tries once. Wrong credentials or an ACL denial fail at once (waiting cannot help)."""
    t0 = time.monotonic()
    delay, attempt = 0.5, 0
    while True:
        try:
            return open_client(opts)
        except DispatchError as exc:
            cause = exc.__cause__
            if isinstance(cause, redis.AuthenticationError | NoPermissionError):
                raise
            waited = time.monotonic() - t0
            if wait_s is not None and waited + delay > wait_s:
                if wait_s == 0:
                    raise
                msg = f"{exc} (waited {waited:.0f} s, --redis-wait {wait_s:g})"
                raise DispatchError(msg) from cause
            attempt += 1
            if on_wait is not None:
                bound = "for ever" if wait_s is None else f"up to {wait_s:g} s"
                on_wait(
                    f"Redis at {opts.masked_url} not reachable ({cause}); attempt {attempt}, "
                    f"next in {delay:.1f} s (waiting {bound}; --redis-wait bounds it)"
                )
            time.sleep(delay)
            delay = min(opts.retry.max_s, delay * 2)


def persistence_warning(client: redis.Redis, masked_url: str) -> str | None:
    """A warning when the server keeps nothing on disk (AOF off and no RDB save points),
    else None; None too when the ACL user may not read the configuration."""
    try:
        conf: dict[Any, Any] = client.config_get("appendonly")
        conf.update(client.config_get("save"))
    except (NoPermissionError, redis.ResponseError):
        return None
    text = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in conf.items()}  # fmt: skip
    if text.get("appendonly") == "yes" or text.get("save", "").strip():
        return None
    return (
        f"Redis at {masked_url} has no persistence (AOF and RDB snapshots are off): work "
        "orders will not survive a Redis restart; set appendonly yes with appendfsync "
        "everysec (see README, Redis in production)"
    )
