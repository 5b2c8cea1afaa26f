"""Sign-in, sign-out, who am I and password change: ``/login``, ``/api/login``,
``/api/logout``, ``/api/me``, ``/api/password``.

Sign-in uses a double-submit token (there is no session yet): the login page sets
a random cookie, which the page's script echoes in ``X-CSRF-Token``. Failed
attempts are slowed per user and per address and passwords are hashed on a
bounded pool (:mod:`citywatch.console.login_guard`).
"""

from __future__ import annotations

import hmac
import math
import secrets
from collections.abc import Callable
from typing import TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute

from citywatch.console.auth import AuthError
from citywatch.console.core import ConsoleApp
from citywatch.console.login_guard import PoolFull
from citywatch.console.pages import STATIC
from citywatch.console.web import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    HTTPFail,
    json_body,
    json_response,
    route,
    same_origin,
    set_cookie,
)

T = TypeVar("T")
MIN_PASSWORD = 8
RETRY = {"Retry-After": "2"}


def client_address(request: Request) -> str:
    """The client's address (uvicorn resolves X-Forwarded-For from trusted proxies)."""
    return request.client.host if request.client else "unknown"


async def refuse_if_locked(app: ConsoleApp, name: str, addr: str) -> None:
    wait_s = await app.limiter.wait_s(name, addr)
    if wait_s > 0:
        retry = math.ceil(wait_s)
        raise HTTPFail(
            429,
            f"too many failed sign-ins for this user or from this address; try again in {retry} s",
            {"Retry-After": str(retry)},
        )


async def hashed(app: ConsoleApp, fn: Callable[..., T], *args: object) -> T:
    """``fn(*args)`` (which hashes a password) on the bounded hashing pool; 503 when full."""
    try:
        return await app.hasher.run(fn, *args)
    except PoolFull as exc:
        raise HTTPFail(503, str(exc), RETRY) from None


async def login_page(app: ConsoleApp, request: Request) -> Response:
    resp = FileResponse(STATIC / "login.html", media_type="text/html")
    resp.headers["Cache-Control"] = "no-store"
    # The page's script reads this cookie and echoes it in X-CSRF-Token.
    token = secrets.token_urlsafe(24)
    secure = app.settings.secure_cookies
    set_cookie(request, resp, LOGIN_CSRF_COOKIE, token, 600, httponly=False, secure=secure)
    return resp


async def login(app: ConsoleApp, request: Request) -> Response:
    same_origin(request)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    sent = request.headers.get("x-csrf-token", "")
    if not cookie or not hmac.compare_digest(cookie, sent):
        raise HTTPFail(403, "missing or wrong sign-in token; reload the sign-in page")
    expected = '{"username": ..., "password": ...}'
    body = await json_body(request, expected)
    if not isinstance(body.get("username"), str) or not isinstance(body.get("password"), str):
        raise HTTPFail(400, f"expected JSON {expected}")
    name, addr = body["username"], client_address(request)
    if app.hasher.full():  # answered before any Redis round trip, to shed a flood cheaply
        raise HTTPFail(503, "too many sign-ins at once; try again in a few seconds", RETRY)
    await refuse_if_locked(app, name, addr)
    user = await hashed(app, app.users.authenticate, name, body["password"])
    if user is None:
        await app.limiter.failed(name, addr)
        raise HTTPFail(401, "wrong user name or password")
    await app.limiter.succeeded(name, addr)
    token, csrf = await run_in_threadpool(app.users.open_session, user)
    resp = json_response({"user": user.public(), "csrf": csrf})
    max_age, secure = app.settings.session_max_s, app.settings.secure_cookies
    set_cookie(request, resp, SESSION_COOKIE, token, max_age, secure=secure)
    resp.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return resp


async def logout(app: ConsoleApp, request: Request) -> Response:
    await app.writer(request)
    await run_in_threadpool(app.users.close_session, request.cookies.get(SESSION_COOKIE))
    resp = json_response({"ok": True})
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


async def me(app: ConsoleApp, request: Request) -> Response:
    user, csrf = await app.user(request)
    return json_response({"user": user.public(), "csrf": csrf, "time_zone": app.settings.time_zone})


async def change_password(app: ConsoleApp, request: Request) -> Response:
    """``{"current": ..., "new": ...}``: the user's own new password; their other
    sessions end, this one stays."""
    user = await app.writer(request)
    expected = '{"current": ..., "new": ...}'
    body = await json_body(request, expected)
    current, new = body.get("current"), body.get("new")
    if not isinstance(current, str) or not isinstance(new, str):
        raise HTTPFail(400, f"expected JSON {expected}")
    if len(new) < MIN_PASSWORD:
        raise HTTPFail(422, f"the new password needs at least {MIN_PASSWORD} characters")
    addr = client_address(request)
    await refuse_if_locked(app, user.name, addr)
    if await hashed(app, app.users.authenticate, user.name, current) is None:
        await app.limiter.failed(user.name, addr)
        raise HTTPFail(403, "the current password is wrong")
    token = request.cookies.get(SESSION_COOKIE)
    try:
        await hashed(app, lambda: app.users.set_password(user.name, new, keep_token=token))
    except AuthError as exc:
        raise HTTPFail(422, str(exc)) from None
    return json_response({"ok": True})


def routes(app: ConsoleApp) -> list[BaseRoute]:
    return [
        route(app, "/login", login_page),
        route(app, "/api/login", login, ["POST"]),
        route(app, "/api/logout", logout, ["POST"]),
        route(app, "/api/me", me),
        route(app, "/api/password", change_password, ["POST"]),
    ]
