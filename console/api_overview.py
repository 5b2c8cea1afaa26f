"""The leadership overview's figures: ``/api/overview`` (over the user's scope only)."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from citywatch.console.core import ConsoleApp
from citywatch.console.store import overview
from citywatch.console.web import json_response, route


async def overview_api(app: ConsoleApp, request: Request) -> Response:
    user, _ = await app.user(request)
    await app.index.ready.wait()
    visible = [wo for wo in app.index.orders.values() if app.visible(user, wo)]
    data = overview(visible, app.county_of, int(time.time() * 1000))
    data["names"] = {k: v for k, v in app.names.items() if k in data["open_by_county"]}
    return json_response(data)


def routes(app: ConsoleApp) -> list[BaseRoute]:
    return [route(app, "/api/overview", overview_api)]
