"""The token API over a real uvicorn server and Redis: scope, lifecycle, idempotency, limits,
the OpenAPI document, and Schemathesis fuzzing against that document."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi import checks as oas

from citywatch.console.api import api_routes, create_api_app
from citywatch.console.api.tokens import ApiToken, TokenStore
from citywatch.console.auth import User, UserStore
from citywatch.console.server import free_port
from citywatch.detectors.alerts import Alert
from citywatch.flows.config import Config
from citywatch.flows.console_site import api_site_for, site_for
from citywatch.sinks.dispatch import Dispatch, Keys, Route, WorkOrderWriter
from citywatch.sinks.lifecycle import WorkOrders

pytestmark = pytest.mark.redis

DAY_MS = 86_400_000


@dataclass
class Api:
    url: str
    client: redis.Redis
    tokens: dict[str, str]  # name -> bearer
    orders: dict[str, list[str]]  # department -> work order ids

    def call(
        self, method: str, path: str, token: str, key: str | None = None, **kw: Any
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[token]}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        return httpx.request(method, self.url + path, headers=headers, timeout=10, **kw)


def _order(client: redis.Redis, prefix: str, n: int, department: str) -> str:
    alert = Alert.make(
        "video.intrusion", "yellow", f"cam-{department}-{n}", "video", f"zone-{n}", 121.0, 32.0,
        ts_ms=1_781_528_400_000 + n, first_ts_ms=1_781_528_400_000 + n, evidence={"n": n},
    )  # fmt: skip
    d = Dispatch(alert, Route("town:a", department, "town", "town:a"), 600, 3600)
    return WorkOrderWriter(client, Keys(prefix)).write([d])[0].wo_id


@pytest.fixture()
def api(redis_url: str, config: Config) -> Iterator[Api]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    prefix = config.redis.prefix
    store = TokenStore(client, prefix)
    far = int(time.time() * 1000) + DAY_MS
    tokens = {
        "water": store.add(ApiToken(id="water", department="water_resources", expires_ms=far)),
        "transport": store.add(ApiToken(id="transport", department="transport", expires_ms=far)),
        "centre": store.add(ApiToken(id="centre", centre="town:a", expires_ms=far)),
        "slow": store.add(ApiToken(id="slow", department="transport", expires_ms=far,
                                   rate_per_min=3)),
        "old": store.add(ApiToken(id="old", department="transport", expires_ms=1)),
    }  # fmt: skip
    orders = {
        dept: [_order(client, prefix, n, dept) for n in range(3)]
        for dept in ("water_resources", "transport")
    }
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_api_app(api_site_for(config), redis_url), host="127.0.0.1", port=port,
                       log_level="warning")
    )  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "the API server did not start"
        time.sleep(0.02)
    yield Api(f"http://127.0.0.1:{port}", client, tokens, orders)
    server.should_exit = True
    thread.join(10)
    client.close()


def test_a_token_reads_and_acts_only_in_its_scope(api: Api) -> None:
    water, transport = api.orders["water_resources"], api.orders["transport"]
    listed = api.call("GET", "/api/v1/workorders", "water").json()
    assert sorted(o["id"] for o in listed["orders"]) == sorted(water)
    assert listed["next_cursor"] is None
    assert api.call("GET", f"/api/v1/workorders/{water[0]}", "water").status_code == 200
    for wo in transport:
        assert api.call("GET", f"/api/v1/workorders/{wo}", "water").status_code == 404
        for action, body in (("sign", {}), ("return", {"reason": "x"}), ("close", {})):
            key = f"k-{wo}-{action}"
            r = api.call("POST", f"/api/v1/workorders/{wo}/{action}", "water", key, json=body)
            assert r.status_code == 404, (action, r.text)
        assert api.client.hget(Keys("cw").wo(wo), "state") == "dispatched"
        assert all(e["by"] == "citywatch" for e in WorkOrders(api.client, Keys("cw")).audit(wo))
    # The same order answers alike whether it is out of scope or does not exist.
    missing = api.call("GET", "/api/v1/workorders/wo-nothing", "water")
    assert missing.status_code == 404
    centre = api.call("GET", "/api/v1/workorders", "centre").json()["orders"]
    assert sorted(o["id"] for o in centre) == sorted(water + transport)


def test_an_unknown_list_parameter_is_refused_not_ignored(api: Api) -> None:
    # A misspelt filter (``stat=``) would otherwise list every order in scope.
    r = api.call("GET", "/api/v1/workorders?stat=dispatched", "water")
    assert r.status_code == 400 and "'stat'" in r.json()["error"]
    ok = api.call("GET", "/api/v1/workorders?state=dispatched&limit=2", "water")
    assert ok.status_code == 200 and len(ok.json()["orders"]) <= 2


def test_lifecycle_with_idempotency_keys_and_the_audit_naming_the_token(api: Api) -> None:
    wo = api.orders["water_resources"][0]
    path = f"/api/v1/workorders/{wo}"
    first = api.call("POST", f"{path}/sign", "water", "sign-1")
    assert first.status_code == 200 and first.json()["order"]["state"] == "signed"
    again = api.call("POST", f"{path}/sign", "water", "sign-1")
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    other = api.call("POST", f"{path}/sign", "water", "sign-2")
    assert other.status_code == 409 and "signed" in other.json()["error"]
    reuse = api.call("POST", f"{path}/handle", "water", "sign-1")
    assert reuse.status_code == 422 and "another request" in reuse.json()["error"]
    assert api.call("POST", f"{path}/sign", "water").status_code == 400  # no key
    assert api.call("POST", f"{path}/handle", "water", "h").json()["order"]["state"] == "handling"
    bad = api.call("POST", f"{path}/feedback", "water", "f0",
                   json={"text": "done", "links": ["javascript:alert(1)"]})  # fmt: skip
    assert bad.status_code == 422
    fb = api.call("POST", f"{path}/feedback", "water", "f1",
                  json={"text": "pump fixed", "links": ["https://water.example/r/7"]})  # fmt: skip
    assert fb.json()["order"]["state"] == "resolved"
    assert fb.json()["order"]["feedback"] == "pump fixed\nhttps://water.example/r/7"
    refused = api.call("POST", f"{path}/close", "water", "c1")
    assert refused.status_code == 409 and "centre" in refused.json()["error"]
    closed = api.call("POST", f"{path}/close", "centre", "c1", json={"note": "verified"})
    assert closed.json()["order"]["state"] == "closed"
    audit = api.call("GET", path, "water").json()["audit"]
    assert [(e["action"], e["by"]) for e in audit] == [
        ("created", "citywatch"), ("sign", "token:water"), ("start", "token:water"),
        ("resolve", "token:water"), ("close", "token:centre"),
    ]  # fmt: skip


def test_return_goes_only_where_routing_allows(api: Api) -> None:
    wo = api.orders["transport"][0]
    path = f"/api/v1/workorders/{wo}/return"
    nowhere = api.call("POST", path, "transport", "r0",
                       json={"reason": "not ours", "to_department": "pizza"})  # fmt: skip
    assert nowhere.status_code == 422 and "routing" in nowhere.json()["error"]
    body = {"reason": "levee, not road", "to_department": "water_resources"}
    moved = api.call("POST", path, "transport", "r1", json=body)
    assert moved.status_code == 200
    assert moved.json()["order"]["department"] == "water_resources"
    assert api.call("GET", f"/api/v1/workorders/{wo}", "transport").status_code == 404
    assert api.call("GET", f"/api/v1/workorders/{wo}", "water").status_code == 200


def test_tokens_expire_revoke_and_are_rate_limited(api: Api) -> None:
    assert api.call("GET", "/api/v1/me", "old").status_code == 401
    r = httpx.get(api.url + "/api/v1/me", headers={"Authorization": "Bearer cwt.water.wrong"})
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert [api.call("GET", "/api/v1/me", "slow").status_code for _ in range(4)] == [200] * 3 + [
        429
    ]
    limited = api.call("GET", "/api/v1/me", "slow")
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    me = api.call("GET", "/api/v1/me", "water").json()
    assert me["department"] == "water_resources" and "hash" not in me
    assert TokenStore(api.client, "cw").revoke("water")
    assert api.call("GET", "/api/v1/me", "water").status_code == 401
    raw = api.client.hgetall("{cw}:api:{tokens}")
    assert all(api.tokens[t].rsplit(".", 1)[1] not in v for t, v in raw.items() if t in api.tokens)


def test_admin_webhook_status_needs_a_leader_session(api: Api, config: Config) -> None:
    users = UserStore(api.client, config.redis.prefix)
    users.add(User(name="lead", role="leader"), "pw")
    users.add(User(name="fish", department="agriculture_fisheries"), "pw")
    url = api.url + "/api/admin/webhooks"
    assert httpx.get(url).status_code == 401
    token, _ = users.open_session(users.get("fish"))  # type: ignore[arg-type]
    assert httpx.get(url, cookies={"cw_session": token}).status_code == 403
    token, _ = users.open_session(users.get("lead"))  # type: ignore[arg-type]
    r = httpx.get(url, cookies={"cw_session": token})
    assert r.status_code == 200 and r.json() == {"subscriptions": []}


def test_the_openapi_document_lists_exactly_the_routes(
    api: Api, config: Config, redis_url: str
) -> None:
    spec = httpx.get(api.url + "/api/openapi.json").json()
    assert spec["openapi"] == "3.1.0"
    documented = {(p, m.upper()) for p, ops in spec["paths"].items() for m in ops}
    served = {
        (r.path, m)
        for r in api_routes(api_site_for(config), redis_url)
        for m in (getattr(r, "methods", None) or ())
        if m != "HEAD" and r.path != "/api/openapi.json"
    }
    assert documented == served
    departments = spec["paths"]["/api/v1/workorders/{wo}/return"]["post"]["requestBody"]
    allowed = departments["content"]["application/json"]["schema"]["properties"]["to_department"]
    assert set(allowed["enum"]) == set(config.routing.departments.values())


def _rejects_negative_data(ctx: Any, response: Any, case: Any) -> bool | None:
    """schemathesis' negative-data check, with ``413 Content Too Large`` counted as a
    rejection too: an oversized invalid body is refused before it is parsed."""
    if response.status_code == 413:
        return None
    return oas.negative_data_rejection(ctx, response, case)  # type: ignore[no-any-return]


def _in_scope(ctx: Any, response: Any, case: Any) -> bool | None:
    """No 2xx answer may carry a work order outside the water token's scope."""
    if not 200 <= response.status_code < 300 or "/workorders" not in case.path:
        return None
    doc = response.json()
    found = doc["orders"] if "orders" in doc else [doc["order"]]
    for order in found:
        assert order["department"] == "water_resources", f"out of scope: {order['id']}"
    return True


@pytest.mark.slow
def test_schemathesis_fuzz(api: Api) -> None:
    """Every operation of the served document, valid and invalid input: no 5xx, nothing
    outside the document, no work order outside the token's scope. Half the generated
    order ids are swapped for real ones (in and out of scope) so actions really run."""
    schema = schemathesis.openapi.from_url(api.url + "/api/openapi.json")
    real = [*api.orders["water_resources"], *api.orders["transport"]]
    checks = [
        schemathesis.checks.not_a_server_error,
        oas.status_code_conformance,
        oas.content_type_conformance,
        oas.response_headers_conformance,
        oas.response_schema_conformance,
        _rejects_negative_data,
        _in_scope,
    ]
    ran: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=10,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def fuzz(case: Any) -> None:
                wo = (case.path_parameters or {}).get("wo")
                if isinstance(wo, str) and len(wo) <= 128 and sum(map(ord, wo)) % 2 == 0:
                    case.path_parameters["wo"] = real[sum(map(ord, wo)) % len(real)]
                case.call_and_validate(
                    base_url=api.url,
                    headers={"Authorization": f"Bearer {api.tokens['water']}"},
                    checks=checks,
                )

            fuzz()
            ran.append(f"{mode.value} {operation.method.upper()} {operation.path}")
    assert len(ran) == 2 * 9, ran


def test_the_console_serves_the_api(config: Config, redis_url: str) -> None:
    from citywatch.console.app import create_app

    api_site = api_site_for(config)
    app = create_app(
        site_for(config), redis_url, extra_routes=lambda _con: api_routes(api_site, redis_url)
    )

    async def calls() -> list[int]:
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://console") as c:
            doc = (await c.get("/api/openapi.json")).json()
            assert doc["openapi"] == "3.1.0"
            # the API's route, and the console's own one beside it
            return [(await c.get(p)).status_code for p in ("/api/v1/me", "/api/me")]

    assert asyncio.run(calls()) == [401, 401]


def test_tokens_command(redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from citywatch.flows.cli import main

    r = ["--redis-url", redis_url]
    assert main(["api", "tokens", "add", *r, "water-sys", "--department", "water_resources",
                 "--days", "30", "--rate", "60"]) == 0  # fmt: skip
    bearer = capsys.readouterr().out.split("bearer (shown once): ")[1].strip()
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    token = TokenStore(client, "cw").authenticate(bearer)
    assert token is not None and token.department == "water_resources"
    assert token.rate_per_min == 60 and token.centre == "*"
    assert main(["api", "tokens", "list", *r]) == 0
    listed = capsys.readouterr().out
    assert "water-sys  * / water_resources  29d left  60/min" in listed
    assert bearer.rsplit(".", 1)[1] not in listed
    assert main(["api", "tokens", "add", *r, "nobody"]) == 2  # neither centre nor department
    assert "give a department" in capsys.readouterr().err
    assert main(["api", "tokens", "revoke", *r, "water-sys"]) == 0
    assert TokenStore(client, "cw").authenticate(bearer) is None
    client.close()
