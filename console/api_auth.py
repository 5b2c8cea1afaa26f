"""Sign-in, sign-out and who am I: ``/login``, ``/api/login``, ``/api/logout``, ``/api/me``.

Sign-in uses a double-submit token (there is no session yet): the login page sets
a random cookie, which the page's script echoes in ``X-CSRF-Token``.
"""

from __future__ import annotations

import hmac
import secrets

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute

from citywatch.console.core import ConsoleApp
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


def _cookie(
    app: ConsoleApp,
    request: Request,
    resp: Response,
    name: str,
    value: str,
    max_age: int | None,
    *,
    httponly: bool = True,
) -> None:
    secure = app.settings.secure_cookies
    set_cookie(request, resp, name, value, max_age, httponly=httponly, secure=secure)


async def login_page(app: ConsoleApp, request: Request) -> Response:
    resp = FileResponse(STATIC / "login.html", media_type="text/html")
    resp.headers["Cache-Control"] = "no-store"
    # The page's script reads this cookie and echoes it in X-CSRF-Token.
    _cookie(app, request, resp, LOGIN_CSRF_COOKIE, secrets.token_urlsafe(24), 600, httponly=False)
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
    user = await run_in_threadpool(app.users.authenticate, body["username"], body["password"])
    if user is None:
        raise HTTPFail(401, "wrong user name or password")
    token, csrf = await run_in_threadpool(app.users.open_session, user)
    resp = json_response({"user": user.public(), "csrf": csrf})
    _cookie(app, request, resp, SESSION_COOKIE, token, app.settings.session_max_s)
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
    return json_response({"user": user.public(), "csrf": csrf})


def routes(app: ConsoleApp) -> list[BaseRoute]:
    return [
        route(app, "/login", login_page),
        route(app, "/api/login", login, ["POST"]),
        route(app, "/api/logout", logout, ["POST"]),
        route(app, "/api/me", me),
    ]
