"""The console's state, shared by its handler modules: :class:`ConsoleApp`.

The console knows nothing of the engine's configuration: the command that starts
it (``citywatch console``, ``citywatch demo``) describes the city in a
:class:`Site` (key prefix, map layers, departments) and passes the
``[console]`` settings in.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis
import redis.asyncio as aredis
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from citywatch.console.auth import User, UserStore
from citywatch.console.login_guard import HashPool, LoginLimiter
from citywatch.console.settings import ConsoleSettings
from citywatch.console.store import WorkOrderIndex
from citywatch.console.web import SESSION_COOKIE, HTTPFail, same_origin
from citywatch.sinks.client import RedisOptions, open_async_client, open_client
from citywatch.sinks.dispatch import Keys

ASYNC_CONNECTIONS = 64


EMPTY_GEOJSON = b'{"type":"FeatureCollection","features":[]}'


@dataclass(frozen=True, slots=True, kw_only=True)
class Site:
    """What the console needs to know about the city, from the engine's configuration."""

    prefix: str  # Redis key prefix of the work orders, users and sessions
    zones_geojson: bytes  # the map layers, served as they are
    jurisdictions_geojson: bytes
    departments: tuple[str, ...]  # every department routing may send an order to
    # the offline basemap (sea, neighbouring land, rivers, district labels), if any
    basemap_geojson: bytes = EMPTY_GEOJSON


def redis_clients(target: RedisOptions | str) -> tuple[redis.Redis, aredis.Redis]:
    """The console's two Redis clients: blocking (users, actions) and asyncio (the index,
    the sign-in limiter), both from the one client factory (``[redis]`` options: ACL
    user, password, TLS). The asyncio one waits for one of its connections when all are
    busy (a flood of requests) instead of failing."""
    opts = target if isinstance(target, RedisOptions) else RedisOptions(url=target)
    if opts.cluster:  # redis-py's asyncio cluster client keeps a pool per node itself
        return open_client(opts, check=False), open_async_client(opts)
    kw = opts.kwargs()
    kw["socket_timeout"] = None  # it blocks on XREAD; liveness comes from the server's replies
    pool = aredis.BlockingConnectionPool.from_url(
        opts.url, max_connections=ASYNC_CONNECTIONS, timeout=10, **kw
    )
    return open_client(opts, check=False), aredis.Redis(connection_pool=pool)


def county_map(jurisdictions: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """Jurisdiction id -> its county id (``city`` for the city), and id -> name.

    >>> county_map({"features": [
    ...     {"properties": {"id": "county:a", "level": "county", "name": "A"}},
    ...     {"properties": {"id": "town:a1", "level": "town", "parent": "county:a"}}]})
    ({'county:a': 'county:a', 'town:a1': 'county:a'}, {'county:a': 'A', 'town:a1': 'town:a1'})
    """
    parent: dict[str, str | None] = {}
    level: dict[str, str] = {}
    names: dict[str, str] = {}
    for f in jurisdictions.get("features", []):
        p = f.get("properties") or {}
        parent[p["id"]] = p.get("parent")
        level[p["id"]] = p.get("level", "")
        names[p["id"]] = p.get("name", p["id"])
    county: dict[str, str] = {}
    for jid in parent:
        cur: str | None = jid
        while cur is not None and level.get(cur) not in ("county", "city"):
            cur = parent.get(cur)
        county[jid] = cur or "city"
    return county, names


@dataclass(kw_only=True)
class ConsoleApp:
    """Settings, Redis clients, users, the work-order index and the sign-in guards
    (failed-attempt limiter, password-hashing pool); the handlers' one argument
    besides the request. Build it with :meth:`open`; :meth:`close` releases the clients."""

    site: Site
    settings: ConsoleSettings
    keys: Keys
    sync: redis.Redis
    aclient: aredis.Redis
    users: UserStore
    index: WorkOrderIndex
    limiter: LoginLimiter
    hasher: HashPool
    county_of: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    wait_replicas: int = 0  # [redis] wait_replicas, for the officers' transitions

    @classmethod
    def open(
        cls, site: Site, redis_url: RedisOptions | str, settings: ConsoleSettings
    ) -> ConsoleApp:
        sync, aclient = redis_clients(redis_url)
        keys = Keys(site.prefix)
        county_of, names = county_map(orjson.loads(site.jurisdictions_geojson))
        return cls(
            site=site,
            settings=settings,
            keys=keys,
            sync=sync,
            aclient=aclient,
            users=UserStore(
                sync, site.prefix, idle_s=settings.session_idle_s, max_s=settings.session_max_s
            ),
            index=WorkOrderIndex(aclient, keys, refresh_s=settings.refresh_s),
            limiter=LoginLimiter(
                aclient,
                site.prefix,
                free=settings.login_free_failures,
                delay_s=settings.login_delay_s,
                max_s=settings.login_delay_max_s,
                window_s=settings.login_window_s,
            ),
            hasher=HashPool(settings.hash_workers, settings.hash_queue),
            county_of=county_of,
            names=names,
            wait_replicas=redis_url.wait_replicas if isinstance(redis_url, RedisOptions) else 0,
        )

    async def close(self) -> None:
        self.hasher.close()
        await self.index.stop()
        await self.aclient.aclose()
        self.sync.close()

    @property
    def departments(self) -> list[str]:
        return sorted(set(self.site.departments) | {"command_centre"})

    # --- who is asking ---------------------------------------------------------------
    async def session(self, request: Request) -> tuple[User, str] | None:
        """The signed-in user and their CSRF token, or None."""
        return await run_in_threadpool(self.users.session, request.cookies.get(SESSION_COOKIE))

    async def user(self, request: Request) -> tuple[User, str]:
        found = await self.session(request)
        if found is None:
            raise HTTPFail(401, "not signed in or the session expired; sign in again")
        return found

    async def writer(self, request: Request) -> User:
        """The user of a state-changing request, after the CSRF and origin checks."""
        user, csrf = await self.user(request)
        same_origin(request)
        sent = request.headers.get("x-csrf-token", "")
        if not sent or not hmac.compare_digest(sent, csrf):
            raise HTTPFail(403, "missing or wrong X-CSRF-Token; reload the page")
        return user

    def visible(self, user: User, wo: dict[str, Any]) -> bool:
        return user.may_see(str(wo.get("centre", "")), str(wo.get("department", "")))
