"""Work orders: ``/api/meta``, ``/api/workorders``, one order, and its actions.

Every read and action checks the officer's scope on the server, whatever the
request asks for; actions also need the session's CSRF token.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from citywatch.console import actions
from citywatch.console.api.spec import STATES
from citywatch.console.auth import User
from citywatch.console.core import ConsoleApp
from citywatch.console.store import FILTERS, SEVERITIES, summarize
from citywatch.console.web import HTTPFail, json_body, json_response, route


async def meta(app: ConsoleApp, request: Request) -> Response:
    """The filter choices and actions this user has."""
    user, _ = await app.user(request)
    visible = [wo for wo in app.index.orders.values() if app.visible(user, wo)]
    centres = sorted(
        {str(wo.get("centre")) for wo in visible}
        | (set(app.names) if user.is_leader else {user.centre} - {"*"})
    )
    everything = user.is_leader or user.department == "*"
    return json_response(
        {
            "centres": [{"id": c, "name": app.names.get(c, c)} for c in centres],
            "names": app.names,
            "departments": app.departments if everything else [user.department],
            "kinds": sorted({str(wo.get("kind")) for wo in visible}),
            "severities": list(SEVERITIES),
            "states": list(STATES),
            "actions": [a for a in actions.ACTIONS if a != "close" or everything],
        }
    )


async def list_orders(app: ConsoleApp, request: Request) -> Response:
    user, _ = await app.user(request)
    await app.index.ready.wait()
    filters = {k: request.query_params.get(k, "") for k in FILTERS}
    out = [
        wo
        for wo in app.index.orders.values()
        if app.visible(user, wo) and all(not v or str(wo.get(k)) == v for k, v in filters.items())
    ]
    out.sort(key=lambda wo: str(wo.get("created_ms", "")), reverse=True)
    return json_response({"orders": out})


async def load_visible(app: ConsoleApp, request: Request, user: User) -> dict[str, str]:
    """The work order hash, fresh from Redis, if this user may see it."""
    wo_id = request.path_params["wo"]
    raw: Any = await app.aclient.hgetall(app.keys.wo(wo_id))
    h = {k.decode(): v.decode() for k, v in (raw or {}).items()}
    if not h or not app.visible(user, h):
        # One answer for "no such order" and "not yours", so ids outside a scope do not leak.
        raise HTTPFail(404, f"work order {wo_id!r} not found in your centre and department")
    return h


async def order_detail(app: ConsoleApp, request: Request) -> Response:
    user, _ = await app.user(request)
    h = await load_visible(app, request, user)
    audit: Any = await app.aclient.xrange(app.keys.audit(h["id"]))
    if "alerts" in h:  # the alerts inline in the hash (the first dispatch layout)
        alerts = orjson.loads(h["alerts"])
    else:  # one list entry per alert merged into the incident
        raw_alerts: Any = await app.aclient.lrange(app.keys.alerts(h["id"]), 0, -1)
        alerts = [orjson.loads(a) for a in raw_alerts]
    return json_response(
        {
            "order": summarize(h),
            "return_to": actions.return_targets(h, app.departments),
            "alerts": alerts,
            "audit": [
                {"id": eid.decode(), **{k.decode(): v.decode() for k, v in f.items()}}
                for eid, f in audit
            ],
        }
    )


async def act(app: ConsoleApp, request: Request) -> Response:
    user = await app.writer(request)
    h = await load_visible(app, request, user)
    form = await json_body(request, "with the action's fields")
    result = await run_in_threadpool(
        actions.perform,
        app.sync,
        app.keys,
        request.path_params["action"],
        h,
        user,
        form,
        app.departments,
        wait_replicas=app.wait_replicas,
    )
    await app.index.refresh_one(h["id"])
    return json_response({"ok": True, "result": result, "order": app.index.orders.get(h["id"])})


def routes(app: ConsoleApp) -> list[BaseRoute]:
    return [
        route(app, "/api/meta", meta),
        route(app, "/api/workorders", list_orders),
        route(app, "/api/workorders/{wo}", order_detail),
        route(app, "/api/workorders/{wo}/actions/{action}", act, ["POST"]),
    ]
