"""The map's feed: its layers (``/api/geo/...``) and live work orders (``/api/events``).

The event stream sends each changed work order in the officer's scope as it
changes (``event: wo``), ``gone`` when one leaves the scope, and ``expired``
when the session ends; a comment every 10 s keeps proxies from closing it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute

from citywatch.console.auth import User
from citywatch.console.core import ConsoleApp
from citywatch.console.web import SESSION_COOKIE, route

KEEPALIVE_S = 10.0


async def geo_zones(app: ConsoleApp, request: Request) -> Response:
    await app.user(request)
    return Response(app.site.zones_geojson, media_type="application/geo+json")


async def geo_jurisdictions(app: ConsoleApp, request: Request) -> Response:
    await app.user(request)
    return Response(app.site.jurisdictions_geojson, media_type="application/geo+json")


async def geo_basemap(app: ConsoleApp, request: Request) -> Response:
    await app.user(request)
    return Response(app.site.basemap_geojson, media_type="application/geo+json")


async def _stream(app: ConsoleApp, user: User, token: str | None) -> AsyncIterator[bytes]:
    q = app.index.subscribe()
    shown: set[str] = set()
    try:
        yield b"retry: 2000\nevent: hello\ndata: {}\n\n"
        last_check = time.monotonic()
        while True:
            try:
                wo = await asyncio.wait_for(q.get(), timeout=KEEPALIVE_S)
            except TimeoutError:
                wo = None
            if time.monotonic() - last_check > KEEPALIVE_S or wo is None:
                last_check = time.monotonic()
                if await run_in_threadpool(app.users.session, token) is None:
                    yield b"event: expired\ndata: {}\n\n"
                    return
                if wo is None:
                    yield b": keep-alive\n\n"
                    continue
            assert wo is not None
            if app.visible(user, wo):
                shown.add(str(wo["id"]))
                yield b"event: wo\ndata: " + orjson.dumps(wo) + b"\n\n"
            elif wo["id"] in shown:  # moved out of this officer's scope
                shown.discard(str(wo["id"]))
                yield b"event: gone\ndata: " + orjson.dumps({"id": wo["id"]}) + b"\n\n"
    finally:
        app.index.unsubscribe(q)


async def events(app: ConsoleApp, request: Request) -> Response:
    user, _ = await app.user(request)
    return StreamingResponse(
        _stream(app, user, request.cookies.get(SESSION_COOKIE)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def routes(app: ConsoleApp) -> list[BaseRoute]:
    return [
        route(app, "/api/geo/zones", geo_zones),
        route(app, "/api/geo/jurisdictions", geo_jurisdictions),
        route(app, "/api/geo/basemap", geo_basemap),
        route(app, "/api/events", events),
    ]
