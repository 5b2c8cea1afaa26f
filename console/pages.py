"""The console's pages and static files: ``/`` (the map), ``/overview``, ``/static/...``."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from citywatch.console.core import ConsoleApp
from citywatch.console.web import route

STATIC = Path(str(files("citywatch.console") / "static"))


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


def routes(app: ConsoleApp) -> list[BaseRoute]:
    return [
        route(app, "/", map_page),
        route(app, "/overview", overview_page),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
