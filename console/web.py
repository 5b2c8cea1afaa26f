"""HTTP plumbing shared by the console's handler modules: answers, errors, cookies, origin.

A handler is a plain ``async def handler(app, request) -> Response`` over the
:class:`citywatch.console.core.ConsoleApp`; :func:`route` binds it to a path and turns
the errors it raises (:class:`HTTPFail`, :class:`~citywatch.console.actions.ActionError`)
into JSON answers ``{"error": ...}`` with their status.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import orjson
import redis
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from citywatch.console import actions

if TYPE_CHECKING:
    from citywatch.console.core import ConsoleApp

log = logging.getLogger(__name__)
SESSION_COOKIE = "cw_session"
LOGIN_CSRF_COOKIE = "cw_login_csrf"
# Scripts, styles, images and media from this server only; no inline script or style (the
# console's scripts style elements through the DOM, which CSP allows); never in a frame.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self'; font-src 'self'; connect-src 'self'; object-src 'none'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class SecurityHeaders:
    """ASGI middleware: :data:`SECURITY_HEADERS` on every response (pages, API, static
    files, errors), unless the response set one itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.raw = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                have = {k.lower() for k, _ in headers}
                headers.extend((k, v) for k, v in self.raw if k not in have)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


A = TypeVar("A", bound="ConsoleApp")
Handler = Callable[[A, Request], Awaitable[Response]]


class HTTPFail(Exception):  # noqa: N818 - an answer, not a failure of the server
    """Raised by a handler to answer ``status`` with ``{"error": message}``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def json_response(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    resp = json_response({"error": message}, status)
    resp.headers.update(headers or {})
    return resp


def route(app: A, path: str, handler: Handler[A], methods: list[str] | None = None) -> Route:
    """``handler`` bound to ``app`` and served at ``path``, its errors answered as JSON."""

    async def endpoint(request: Request) -> Response:
        try:
            resp = await handler(app, request)
        except HTTPFail as fail:
            resp = error_response(fail.status, fail.message, fail.headers)
        except actions.ActionError as exc:
            resp = error_response(exc.status, str(exc))
        except redis.RedisError as exc:
            log.warning("console: Redis failed on %s: %s", request.url.path, exc)
            resp = error_response(503, "the work-order store (Redis) is unavailable; retry")
        return resp

    endpoint.__name__ = handler.__name__
    return Route(path, endpoint, methods=methods)


def set_cookie(
    request: Request,
    resp: Response,
    name: str,
    value: str,
    max_age: int | None,
    *,
    httponly: bool = True,
    secure: bool = False,
) -> None:
    """A SameSite=Strict cookie for the whole site, Secure over TLS (or when ``secure``)."""
    resp.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=httponly,
        samesite="strict",
        secure=secure or request.url.scheme == "https",
        path="/",
    )


def same_origin(request: Request) -> None:
    """Refuses a request whose ``Origin`` (when the browser sends one) is another site."""
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise HTTPFail(403, f"cross-origin request from {origin} refused")


async def json_body(request: Request, expected: str) -> dict[str, Any]:
    """The request's JSON object body (empty when there is none); 400 otherwise."""
    try:
        body = orjson.loads(await request.body() or b"{}")
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise HTTPFail(400, f"expected a JSON object {expected}")
    return body
