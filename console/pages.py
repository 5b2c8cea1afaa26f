"""The console's pages and static files: ``/`` (the map), ``/overview``, ``/password``,
``/static/...``."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from citywatch.console.core import ConsoleApp
from citywatch.console.web import error_response, route

STATIC = Path(str(files("citywatch.console") / "static"))
# What the sign-in page loads; every other static file needs a session.
PUBLIC_STATIC = frozenset({"console.css", "common.js", "login.js", "i18n/en.json", "i18n/zh.json"})


class SessionStaticFiles(StaticFiles):
    """The static files, all but :data:`PUBLIC_STATIC` for signed-in users only."""

    def __init__(self, app: ConsoleApp) -> None:
        super().__init__(directory=STATIC)
        self.console = app

    async def get_response(self, path: str, scope: Scope) -> Response:
        if path.replace("\\", "/") not in PUBLIC_STATIC:
            if await self.console.session(Request(scope)) is None:
                return error_response(401, "not signed in or the session expired; sign in again")
        return await super().get_response(path, scope)


async def _page(app: ConsoleApp, request: Request, name: str) -> Response:
    if await app.session(request) is None:
        return RedirectResponse("/login", status_code=303)
    resp = FileResponse(STATIC / name, media_type="text/html")
    resp.headers["Cache-Control"] = "no-store"
    return resp


async def map_page(app: ConsoleApp, request: Request) -> Response:
    return await _page(app, request, "index.html")


async def overview_page(app: ConsoleApp, request: Request) -> Response:
    return await _page(app, request, "overview.html")


async def password_page(app: ConsoleApp, request: Request) -> Response:
    return await _page(app, request, "password.html")


def routes(app: ConsoleApp) -> list[BaseRoute]:
    return [
        route(app, "/", map_page),
        route(app, "/overview", overview_page),
        route(app, "/password", password_page),
        Mount("/static", SessionStaticFiles(app), name="static"),
    ]
