"""The duty officers' console: a Starlette app over the Redis work orders.

Every API route checks the session and the officer's scope on the server: an
officer reads and acts only on the work orders of their centre and department
(a leader on all), whatever the request asks for. State-changing requests need
the session's CSRF token in ``X-CSRF-Token`` and a same-origin ``Origin`` when
the browser sends one. Pages and assets are static files in ``console/static``
(Leaflet and leaflet.markercluster bundled, no CDN); live updates arrive over
server-sent events.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import redis
import redis.asyncio as aredis
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from citywatch.console import actions
from citywatch.console.api import api_routes
from citywatch.console.auth import User, UserStore
from citywatch.console.settings import ConsoleSettings
from citywatch.console.store import FILTERS, SEVERITIES, WorkOrderIndex, overview, summarize
from citywatch.flows.config import Config
from citywatch.sinks.redis_dispatch import Keys

STATIC = Path(str(files("citywatch.console") / "static"))
SESSION_COOKIE = "cw_session"
LOGIN_CSRF_COOKIE = "cw_login_csrf"
STATES = ("dispatched", "escalated", "returned", "signed", "handling", "resolved", "closed")
SECURITY_HEADERS = {
    # Leaflet positions map panes with inline styles; scripts come only from this server.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


class HTTPFail(Exception):  # noqa: N818 - an answer, not a failure of the server
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _county_map(jurisdictions: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """Jurisdiction id -> its county id (``city`` for the city), and id -> name."""
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


class Console:
    """The server's state: Redis clients, the user store, the work order index."""

    def __init__(self, cfg: Config, redis_url: str, settings: ConsoleSettings) -> None:
        self.cfg = cfg
        self.settings = settings
        self.keys = Keys(cfg.redis.prefix)
        self.sync = redis.Redis.from_url(redis_url, socket_timeout=10)
        self.aclient = aredis.Redis.from_url(redis_url, socket_timeout=None)
        self.users = UserStore(
            self.sync,
            cfg.redis.prefix,
            idle_s=settings.session_idle_s,
            max_s=settings.session_max_s,
        )
        self.index = WorkOrderIndex(self.aclient, self.keys, refresh_s=settings.refresh_s)
        self.zones = cfg.data.zones.read_bytes()
        self.jurisdictions = cfg.data.jurisdictions.read_bytes()
        self.county_of, self.names = _county_map(orjson.loads(self.jurisdictions))
        self.departments = sorted(set(cfg.routing.departments.values()) | {"command_centre"})

    # --- auth helpers -----------------------------------------------------------------
    async def user(self, request: Request) -> tuple[User, str]:
        found = await run_in_threadpool(self.users.session, request.cookies.get(SESSION_COOKIE))
        if found is None:
            raise HTTPFail(401, "not signed in or the session expired; sign in again")
        return found

    async def writer(self, request: Request) -> User:
        """The user of a state-changing request, after the CSRF and origin checks."""
        user, csrf = await self.user(request)
        _same_origin(request)
        sent = request.headers.get("x-csrf-token", "")
        if not sent or not hmac.compare_digest(sent, csrf):
            raise HTTPFail(403, "missing or wrong X-CSRF-Token; reload the page")
        return user

    def visible(self, user: User, wo: dict[str, Any]) -> bool:
        return user.may_see(str(wo.get("centre", "")), str(wo.get("department", "")))


def _same_origin(request: Request) -> None:
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise HTTPFail(403, f"cross-origin request from {origin} refused")


def create_app(cfg: Config, redis_url: str, settings: ConsoleSettings | None = None) -> Starlette:
    """The console as an ASGI app (serve it with uvicorn)."""
    settings = settings or ConsoleSettings()
    con = Console(cfg, redis_url, settings)

    def endpoint(
        fn: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def wrapped(request: Request) -> Response:
            try:
                resp = await fn(request)
            except HTTPFail as fail:
                resp = _json({"error": fail.message}, fail.status)
            except actions.ActionError as exc:
                resp = _json({"error": str(exc)}, exc.status)
            resp.headers.update(SECURITY_HEADERS)
            return resp

        return wrapped

    def set_cookie(
        resp: Response, name: str, value: str, max_age: int | None, *, httponly: bool = True
    ) -> None:
        resp.set_cookie(
            name,
            value,
            max_age=max_age,
            httponly=httponly,
            samesite="strict",
            secure=settings.secure_cookies,
            path="/",
        )

    # --- pages ------------------------------------------------------------------------
    async def page(request: Request, name: str) -> Response:
        found = await run_in_threadpool(con.users.session, request.cookies.get(SESSION_COOKIE))
        if found is None:
            return RedirectResponse("/login", status_code=303)
        resp = FileResponse(STATIC / name, media_type="text/html")
        resp.headers["Cache-Control"] = "no-store"
        return resp

    @endpoint
    async def map_page(request: Request) -> Response:
        return await page(request, "index.html")

    @endpoint
    async def overview_page(request: Request) -> Response:
        return await page(request, "overview.html")

    @endpoint
    async def login_page(request: Request) -> Response:
        resp = FileResponse(STATIC / "login.html", media_type="text/html")
        resp.headers["Cache-Control"] = "no-store"
        # Double-submit token for the sign-in form (there is no session yet): the page's
        # script reads this cookie and echoes it in X-CSRF-Token.
        set_cookie(resp, LOGIN_CSRF_COOKIE, secrets.token_urlsafe(24), 600, httponly=False)
        return resp

    # --- auth API ---------------------------------------------------------------------
    @endpoint
    async def login(request: Request) -> Response:
        _same_origin(request)
        cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        sent = request.headers.get("x-csrf-token", "")
        if not cookie or not hmac.compare_digest(cookie, sent):
            raise HTTPFail(403, "missing or wrong sign-in token; reload the sign-in page")
        try:
            body = orjson.loads(await request.body())
            name, password = str(body["username"]), str(body["password"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise HTTPFail(400, 'expected JSON {"username": ..., "password": ...}') from None
        user = await run_in_threadpool(con.users.authenticate, name, password)
        if user is None:
            raise HTTPFail(401, "wrong user name or password")
        token, csrf = await run_in_threadpool(con.users.open_session, user)
        resp = _json({"user": user.public(), "csrf": csrf})
        set_cookie(resp, SESSION_COOKIE, token, settings.session_max_s)
        resp.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
        return resp

    @endpoint
    async def logout(request: Request) -> Response:
        await con.writer(request)
        await run_in_threadpool(con.users.close_session, request.cookies.get(SESSION_COOKIE))
        resp = _json({"ok": True})
        resp.delete_cookie(SESSION_COOKIE, path="/")
        return resp

    @endpoint
    async def me(request: Request) -> Response:
        user, csrf = await con.user(request)
        return _json({"user": user.public(), "csrf": csrf})

    # --- read API ---------------------------------------------------------------------
    @endpoint
    async def meta(request: Request) -> Response:
        user, _ = await con.user(request)
        visible = [wo for wo in con.index.orders.values() if con.visible(user, wo)]
        centres = sorted(
            {str(wo.get("centre")) for wo in visible}
            | (set(con.names) if user.is_leader else {user.centre} - {"*"})
        )
        return _json(
            {
                "centres": [{"id": c, "name": con.names.get(c, c)} for c in centres],
                "departments": con.departments
                if user.is_leader or user.department == "*"
                else [user.department],
                "kinds": sorted({str(wo.get("kind")) for wo in visible}),
                "severities": list(SEVERITIES),
                "states": list(STATES),
                "actions": [
                    a
                    for a in actions.ACTIONS
                    if a != "close" or user.is_leader or user.department == "*"
                ],
            }
        )

    @endpoint
    async def list_orders(request: Request) -> Response:
        user, _ = await con.user(request)
        await con.index.ready.wait()
        filters = {k: request.query_params.get(k, "") for k in FILTERS}
        out = [
            wo
            for wo in con.index.orders.values()
            if con.visible(user, wo)
            and all(not v or str(wo.get(k)) == v for k, v in filters.items())
        ]
        out.sort(key=lambda wo: str(wo.get("created_ms", "")), reverse=True)
        return _json({"orders": out})

    async def load_visible(request: Request, user: User) -> dict[str, str]:
        """The work order hash, fresh from Redis, if this user may see it."""
        wo_id = request.path_params["wo"]
        raw: Any = await con.aclient.hgetall(con.keys.wo(wo_id))
        if not raw:
            raise HTTPFail(404, f"work order {wo_id!r} not found")
        h = {k.decode(): v.decode() for k, v in raw.items()}
        if not con.visible(user, h):
            raise HTTPFail(
                403,
                f"work order {wo_id!r} belongs to {h.get('centre')} / {h.get('department')}, "
                "outside your centre and department",
            )
        return h

    @endpoint
    async def order_detail(request: Request) -> Response:
        user, _ = await con.user(request)
        h = await load_visible(request, user)
        audit: Any = await con.aclient.xrange(con.keys.audit(h["id"]))
        if "alerts" in h:  # the alerts inline in the hash (the first dispatch layout)
            alerts = orjson.loads(h["alerts"])
        else:  # one list entry per alert merged into the incident
            raw_alerts: Any = await con.aclient.lrange(con.keys.alerts(h["id"]), 0, -1)
            alerts = [orjson.loads(a) for a in raw_alerts]
        return _json(
            {
                "order": summarize(h),
                "alerts": alerts,
                "audit": [
                    {"id": eid.decode(), **{k.decode(): v.decode() for k, v in f.items()}}
                    for eid, f in audit
                ],
            }
        )

    @endpoint
    async def act(request: Request) -> Response:
        user = await con.writer(request)
        h = await load_visible(request, user)
        try:
            form = orjson.loads(await request.body() or b"{}")
        except orjson.JSONDecodeError:
            raise HTTPFail(400, "expected a JSON object with the action's fields") from None
        if not isinstance(form, dict):
            raise HTTPFail(400, "expected a JSON object with the action's fields")
        result = await run_in_threadpool(
            actions.perform,
            con.sync,
            con.keys,
            request.path_params["action"],
            h,
            user,
            form,
        )
        await con.index.refresh_one(h["id"])
        return _json({"ok": True, "result": result, "order": con.index.orders.get(h["id"])})

    @endpoint
    async def overview_api(request: Request) -> Response:
        user, _ = await con.user(request)
        await con.index.ready.wait()
        visible = [wo for wo in con.index.orders.values() if con.visible(user, wo)]
        data = overview(visible, con.county_of, int(time.time() * 1000))
        data["names"] = {k: v for k, v in con.names.items() if k in data["open_by_county"]}
        return _json(data)

    @endpoint
    async def geo_zones(request: Request) -> Response:
        await con.user(request)
        return Response(con.zones, media_type="application/geo+json")

    @endpoint
    async def geo_jurisdictions(request: Request) -> Response:
        await con.user(request)
        return Response(con.jurisdictions, media_type="application/geo+json")

    @endpoint
    async def events(request: Request) -> Response:
        user, _ = await con.user(request)
        token = request.cookies.get(SESSION_COOKIE)

        async def stream() -> AsyncIterator[bytes]:
            q = con.index.subscribe()
            shown: set[str] = set()
            try:
                yield b"retry: 2000\nevent: hello\ndata: {}\n\n"
                last_check = time.monotonic()
                while True:
                    try:
                        wo = await asyncio.wait_for(q.get(), timeout=10)
                    except TimeoutError:
                        wo = None
                    if time.monotonic() - last_check > 10 or wo is None:
                        last_check = time.monotonic()
                        if await run_in_threadpool(con.users.session, token) is None:
                            yield b"event: expired\ndata: {}\n\n"
                            return
                        if wo is None:
                            yield b": keep-alive\n\n"
                            continue
                    assert wo is not None
                    if con.visible(user, wo):
                        shown.add(str(wo["id"]))
                        yield b"event: wo\ndata: " + orjson.dumps(wo) + b"\n\n"
                    elif wo["id"] in shown:  # moved out of this officer's scope
                        shown.discard(str(wo["id"]))
                        yield b"event: gone\ndata: " + orjson.dumps({"id": wo["id"]}) + b"\n\n"
            finally:
                con.index.unsubscribe(q)

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        con.index.start()
        try:
            yield
        finally:
            await con.index.stop()
            await con.aclient.aclose()
            con.sync.close()

    routes = [
        Route("/", map_page),
        Route("/overview", overview_page),
        Route("/login", login_page),
        Route("/api/login", login, methods=["POST"]),
        Route("/api/logout", logout, methods=["POST"]),
        Route("/api/me", me),
        Route("/api/meta", meta),
        Route("/api/workorders", list_orders),
        Route("/api/workorders/{wo}", order_detail),
        Route("/api/workorders/{wo}/actions/{action}", act, methods=["POST"]),
        Route("/api/overview", overview_api),
        Route("/api/geo/zones", geo_zones),
        Route("/api/geo/jurisdictions", geo_jurisdictions),
        Route("/api/events", events),
        *api_routes(cfg, redis_url),  # the token API for department systems (console/api/)
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.console = con
    return app
