"""The token API's routes: scope, rate limit, idempotency, then the lifecycle operation."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from citywatch.console.api.spec import LINK_PATTERN, MAX_LIMIT, SEVERITIES, STATES, openapi
from citywatch.console.api.tokens import ApiToken, IdempotencyStore, RateLimiter, TokenStore
from citywatch.console.auth import UserStore
from citywatch.console.settings import ConsoleSettings
from citywatch.sinks.client import RedisOptions, open_client
from citywatch.sinks.dispatch import Keys
from citywatch.sinks.integrations.service import subscription_status
from citywatch.sinks.integrations.settings import IntegrationSettings
from citywatch.sinks.integrations.webhooks import HookKeys, SubscriptionStore
from citywatch.sinks.lifecycle import (
    TransitionRefused,
    UnknownWorkOrder,
    WorkOrderError,
    WorkOrders,
)

# The query parameters of GET /api/v1/workorders, as the OpenAPI document lists them.
LIST_PARAMS_ORDER = ("state", "severity", "kind", "limit", "cursor")
LIST_PARAMS = frozenset(LIST_PARAMS_ORDER)

_LINK = re.compile(LINK_PATTERN)
_TEXT = re.compile(r"\S")
ALERTS_SHOWN = 200  # newest alerts of an order in its detail


class Fail(Exception):  # noqa: N818 - an answer, not a failure of the server
    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, dict(headers or {})


def _json(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(data), status_code=status, media_type="application/json", headers=headers
    )


def _s(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def _str_field(form: Mapping[str, Any], name: str, max_len: int, *, required: bool) -> str:
    value = form.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or len(value) > max_len:
        msg = f"{name!r} must be a string of at most {max_len} characters"
        raise Fail(422, msg)
    if required and not _TEXT.search(value):
        raise Fail(422, f"{name!r} is required (some text)")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiSite:
    """What the token API needs from the engine's configuration (the console layer
    does not read the configuration itself; ``citywatch.flows`` builds this)."""

    prefix: str  # Redis key prefix
    integrations: IntegrationSettings  # [api], [[webhooks]], [outputs.webhooks]
    console: ConsoleSettings  # session lifetimes, for the leaders' webhook status page
    departments: tuple[str, ...]  # every department routing may send an order to


class TokenApi:
    """State of the token API: Redis, the stores, the settings, the allowed departments."""

    def __init__(self, site: ApiSite, redis_url: RedisOptions | str) -> None:
        self.site = site
        self.settings = site.integrations.api
        prefix = site.prefix
        opts = redis_url if isinstance(redis_url, RedisOptions) else RedisOptions(url=redis_url)
        self.client = open_client(opts, check=False, decode_responses=True)
        self.keys = Keys(prefix)
        self.orders = WorkOrders(self.client, self.keys, wait_replicas=opts.wait_replicas)
        self.tokens = TokenStore(self.client, prefix)
        self.rate = RateLimiter(self.client, prefix)
        self.idem = IdempotencyStore(self.client, prefix, self.settings.idempotency_ttl_s)
        console = site.console
        self.users = UserStore(
            self.client, prefix, idle_s=console.session_idle_s, max_s=console.session_max_s
        )
        self.hook_keys = HookKeys(prefix)
        self.hooks = SubscriptionStore(self.client, self.hook_keys, site.integrations.webhooks)
        self.departments = sorted(site.departments)
        self.document = orjson.dumps(openapi(self.departments))

    # --- checks --------------------------------------------------------------------------
    def token(self, request: Request) -> ApiToken:
        auth = request.headers.get("authorization", "")
        scheme, _, bearer = auth.partition(" ")
        token = self.tokens.authenticate(bearer.strip()) if scheme.lower() == "bearer" else None
        if token is None:
            msg = "send a valid, unexpired token: Authorization: Bearer cwt.<id>.<secret>"
            raise Fail(401, msg, {"WWW-Authenticate": 'Bearer realm="citywatch"'})
        limit = token.rate_per_min or self.settings.rate_per_min
        wait_s = self.rate.hit(token.id, limit)
        if wait_s:
            msg = f"rate limit of token {token.id!r} ({limit} per minute) exceeded"
            raise Fail(429, msg, {"Retry-After": str(wait_s)})
        return token

    def order(self, token: ApiToken, wo_id: str) -> dict[str, str]:
        """The order if the token may see it; out of scope answers as not found."""
        try:
            h = self.orders.get(wo_id)
        except UnknownWorkOrder:
            h = {}
        if not h or not token.may_see(h.get("centre", ""), h.get("department", "")):
            raise Fail(404, f"work order {wo_id!r} not found in this token's scope")
        return h

    # --- reads ---------------------------------------------------------------------------
    def list_orders(self, token: ApiToken, q: Mapping[str, str]) -> dict[str, Any]:
        unknown = sorted(set(q) - LIST_PARAMS)
        if unknown:  # a misspelt filter must not silently list everything
            shown = ", ".join(repr(k[:40]) for k in unknown[:5])
            known = ", ".join(LIST_PARAMS_ORDER)
            raise Fail(400, f"unknown query parameter(s) {shown}; known: {known}")
        filters = {k: q.get(k, "") for k in ("state", "severity", "kind")}
        if filters["state"] and filters["state"] not in STATES:
            raise Fail(400, f"state must be one of {', '.join(STATES)}")
        if filters["severity"] and filters["severity"] not in SEVERITIES:
            raise Fail(400, f"severity must be one of {', '.join(SEVERITIES)}")
        limit = _int_param(q, "limit", 100, 1, MAX_LIMIT)
        pos = _int_param(q, "cursor", 0, 0, None)
        out: list[dict[str, str]] = []
        scanned = 0
        index = self.keys.index()
        while len(out) < limit and scanned < 20 * MAX_LIMIT:
            ids = [_s(x) for x in self.client.zrevrange(index, pos, pos + 499)]
            if not ids:
                return {"orders": out, "next_cursor": None}
            pipe = self.client.pipeline(transaction=False)
            for wo_id in ids:
                pipe.hgetall(self.keys.wo(wo_id))
            for h in pipe.execute():
                pos += 1
                scanned += 1
                if (
                    h
                    and token.may_see(h.get("centre", ""), h.get("department", ""))
                    and all(not v or h.get(k) == v for k, v in filters.items())
                ):
                    out.append(_public(h))
                    if len(out) == limit:
                        break
        more = self.client.zcard(index) > pos
        return {"orders": out, "next_cursor": pos if more else None}

    def detail(self, token: ApiToken, wo_id: str) -> dict[str, Any]:
        h = self.order(token, wo_id)
        alerts: Any = self.client.lrange(self.keys.alerts(wo_id), -ALERTS_SHOWN, -1)
        return {
            "order": _public(h),
            "audit": self.orders.audit(wo_id),
            "alerts": [orjson.loads(a) for a in alerts],
        }

    # --- actions -------------------------------------------------------------------------
    def act(self, token: ApiToken, action: str, wo_id: str, form: Mapping[str, Any]) -> Any:
        h = self.order(token, wo_id)
        o, by = self.orders, token.by
        if action == "sign":
            return o.sign(wo_id, by)
        if action == "handle":
            return o.start(wo_id, by)
        if action == "feedback":
            text = _str_field(form, "text", 4000, required=True)
            links = form.get("links", [])
            if not isinstance(links, list) or len(links) > 10:
                raise Fail(422, "'links' must be a list of at most 10 http(s) URLs")
            for link in links:
                if not isinstance(link, str) or len(link) > 2000 or not _LINK.match(link):
                    raise Fail(422, f"'links': not an http(s) URL: {str(link)[:100]!r}")
            return o.resolve(wo_id, by, "\n".join([text.strip(), *links]))
        if action == "close":
            if not token.centre_wide:
                raise Fail(409, "close: the centre verifies and closes; a department token cannot")
            return o.close(wo_id, by, _str_field(form, "note", 2000, required=False))
        if action == "return":
            reason = _str_field(form, "reason", 2000, required=True)
            to = form.get("to_department")
            if to is not None and (not isinstance(to, str) or to not in self.departments):
                known = ", ".join(self.departments)
                raise Fail(422, f"'to_department' must be one of routing's: {known}")
            if to == h.get("department"):
                raise Fail(422, f"'to_department': the order is with {to} already")
            return o.return_(wo_id, by, reason, to_department=to or None)
        raise Fail(404, f"unknown action {action!r}")  # pragma: no cover - routes list them


def _int_param(q: Mapping[str, str], name: str, default: int, lo: int, hi: int | None) -> int:
    raw = q.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = lo - 1
    if value < lo or (hi is not None and value > hi):
        bounds = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise Fail(400, f"{name} must be an integer {bounds}, got {raw[:40]!r}")
    return value


def _public(h: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in h.items() if k not in ("queue_entry", "queued", "alerts")}


ALLOWED_FIELDS = {
    "sign": set(),
    "handle": set(),
    "feedback": {"text", "links"},
    "close": {"note"},
    "return": {"reason", "to_department"},
}


def api_routes(site: ApiSite, redis_url: RedisOptions | str) -> list[BaseRoute]:
    """The API's routes (full paths under ``/api``), for the console or a server of its own."""
    api = TokenApi(site, redis_url)

    def endpoint(
        fn: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def wrapped(request: Request) -> Response:
            try:
                resp = await fn(request)
            except Fail as fail:
                resp = _json({"error": fail.message}, fail.status, fail.headers)
            resp.headers["Cache-Control"] = "no-store"
            return resp

        return wrapped

    async def body_of(request: Request) -> dict[str, Any]:
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > api.settings.max_body_bytes:
                raise Fail(413, f"body larger than {api.settings.max_body_bytes} bytes")
        if not raw.strip():
            return {}
        try:
            form = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise Fail(400, "the body must be a JSON object") from None
        if not isinstance(form, dict):
            raise Fail(422, "the body must be a JSON object")
        return form

    @endpoint
    async def document(request: Request) -> Response:
        return Response(api.document, media_type="application/json")

    @endpoint
    async def me(request: Request) -> Response:
        token = await run_in_threadpool(api.token, request)
        return _json(token.public())

    @endpoint
    async def list_orders(request: Request) -> Response:
        token = await run_in_threadpool(api.token, request)
        q = dict(request.query_params)
        return _json(await run_in_threadpool(api.list_orders, token, q))

    @endpoint
    async def detail(request: Request) -> Response:
        token = await run_in_threadpool(api.token, request)
        return _json(await run_in_threadpool(api.detail, token, request.path_params["wo"]))

    def action(name: str) -> Callable[[Request], Awaitable[Response]]:
        @endpoint
        async def run(request: Request) -> Response:
            token = await run_in_threadpool(api.token, request)
            key = request.headers.get("idempotency-key", "")
            if not key or len(key) > 255:
                raise Fail(400, "send an Idempotency-Key header (1-255 characters) per action")
            form = await body_of(request)
            extra = sorted(set(form) - ALLOWED_FIELDS[name])
            if extra:
                raise Fail(422, f"{name}: unknown field(s) {extra}")
            wo_id = request.path_params["wo"]
            fp = hashlib.sha256(orjson.dumps([name, wo_id, form])).hexdigest()
            prior = await run_in_threadpool(api.idem.begin, token.id, key, fp)
            if prior is not None:
                if prior.get("fp") != fp:
                    raise Fail(422, "this Idempotency-Key was used for another request")
                if prior.get("state") != "done":
                    raise Fail(409, "the first request with this Idempotency-Key is running")
                return _json(prior["body"], int(prior["status"]), {"Idempotent-Replayed": "true"})
            try:
                status, body = 200, {"ok": True, "order": _public(
                    await run_in_threadpool(api.act, token, name, wo_id, form))}  # fmt: skip
            except Fail as fail:
                status, body = fail.status, {"error": fail.message}
            except UnknownWorkOrder as exc:
                status, body = 404, {"error": str(exc)}
            except TransitionRefused as exc:
                status, body = 409, {"error": str(exc)}
            except WorkOrderError as exc:
                status, body = 422, {"error": str(exc)}
            except BaseException:
                await run_in_threadpool(api.idem.abandon, token.id, key)
                raise
            if status == 429:  # not an answer to keep
                await run_in_threadpool(api.idem.abandon, token.id, key)
            else:
                await run_in_threadpool(api.idem.finish, token.id, key, fp, status, body)
            return _json(body, status)

        return run

    @endpoint
    async def webhooks_admin(request: Request) -> Response:
        found = await run_in_threadpool(api.users.session, request.cookies.get("cw_session"))
        if found is None:
            raise Fail(401, "sign in to the console as a leader")
        if not found[0].is_leader:
            raise Fail(403, "webhook status is for leaders")

        def rows() -> list[dict[str, Any]]:
            s = api.site.integrations.delivery
            return [subscription_status(api.client, api.hook_keys, h, s) for h in api.hooks.all()]

        return _json({"subscriptions": await run_in_threadpool(rows)})

    wo = "/api/v1/workorders/{wo}"
    return [
        Route("/api/openapi.json", document),
        Route("/api/v1/me", me),
        Route("/api/v1/workorders", list_orders),
        Route(wo, detail),
        *(Route(f"{wo}/{a}", action(a), methods=["POST"]) for a in ALLOWED_FIELDS),
        Route("/api/admin/webhooks", webhooks_admin),
    ]


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
    return _json({"error": str(detail)}, status)


def create_api_app(site: ApiSite, redis_url: RedisOptions | str) -> Starlette:
    """The token API on its own (``citywatch api serve``)."""
    return Starlette(
        routes=api_routes(site, redis_url), exception_handlers={HTTPException: _http_error}
    )
