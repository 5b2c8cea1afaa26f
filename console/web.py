"""HTTP plumbing shared by the console's handler modules: answers, errors, cookies, origin.

A handler is a plain ``async def handler(app, request) -> Response`` over the
:class:`citywatch.console.core.ConsoleApp`; :func:`route` binds it to a path and turns
the errors it raises (:class:`HTTPFail`, :class:`~citywatch.console.actions.ActionError`)
into JSON answers ``{"error": ...}`` with their status.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from citywatch.console import actions

if TYPE_CHECKING:
    from citywatch.console.core import ConsoleApp

SESSION_COOKIE = "cw_session"
LOGIN_CSRF_COOKIE = "cw_login_csrf"
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
        resp.headers.update(SECURITY_HEADERS)
        return resp

    endpoint.__name__ = handler.__name__
    return Route(path, endpoint, methods=methods)


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
