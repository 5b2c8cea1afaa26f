"""The duty officers' console: a Starlette app over the Redis work orders.

Every API route checks the session and the officer's scope on the server: an
officer reads and acts only on the work orders of their centre and department
(a leader on all), whatever the request asks for. State-changing requests need
the session's CSRF token in ``X-CSRF-Token`` and a same-origin ``Origin`` when
the browser sends one. Pages and assets are static files in ``console/static``
(Leaflet and leaflet.markercluster bundled, no CDN); live updates arrive over
server-sent events.

The routes live in one module per resource, each a list of plain handlers over
one :class:`~citywatch.console.core.ConsoleApp`: :mod:`~citywatch.console.api_auth`
(sign-in), :mod:`~citywatch.console.api_orders` (work orders and actions),
:mod:`~citywatch.console.api_feed` (map layers, live events),
:mod:`~citywatch.console.api_overview` and :mod:`~citywatch.console.pages`.
Another module mounts its own routes with ``create_app(..., extra_routes=...)``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from citywatch.console import api_auth, api_feed, api_orders, api_overview, pages
from citywatch.console.core import ConsoleApp, Site
from citywatch.console.settings import ConsoleSettings
from citywatch.console.web import LOGIN_CSRF_COOKIE, SESSION_COOKIE, SecurityHeaders
from citywatch.sinks.client import RedisOptions

__all__ = ["LOGIN_CSRF_COOKIE", "SESSION_COOKIE", "ConsoleApp", "Site", "create_app"]

RESOURCES = (api_auth, api_orders, api_feed, api_overview, pages)


def build(
    con: ConsoleApp,
    extra_routes: Callable[[ConsoleApp], Sequence[BaseRoute]] | None = None,
) -> Starlette:
    """The ASGI app serving ``con``: the routes of every resource module (and
    ``extra_routes(con)``, placed first); it starts and stops ``con``'s index."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        con.index.start()
        try:
            yield
        finally:
            await con.close()

    routes = list(extra_routes(con)) if extra_routes else []
    for module in RESOURCES:
        routes.extend(module.routes(con))
    app = Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(SecurityHeaders)])
    app.state.console = con
    return app


def create_app(
    site: Site,
    redis_url: RedisOptions | str,
    settings: ConsoleSettings | None = None,
    *,
    extra_routes: Callable[[ConsoleApp], Sequence[BaseRoute]] | None = None,
) -> Starlette:
    """The console as an ASGI app (serve it with uvicorn)."""
    return build(ConsoleApp.open(site, redis_url, settings or ConsoleSettings()), extra_routes)
