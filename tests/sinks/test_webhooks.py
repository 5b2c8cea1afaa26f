"""Outbound webhooks against a real Redis and a real HTTP receiver.

The receiver verifies every request with the ``standardwebhooks`` library's
verifier and records what it accepted. Timeline of the outage test::

    work orders 1..4 created, signed ......... receiver up: delivered
    receiver stopped; service stopped ........ orders handled, resolved, closed, returned
    service restarted (resumes pending) ...... every attempt refused, retried
    receiver restarted ....................... everything arrives, in order per order
"""

from __future__ import annotations

import logging
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
import uvicorn
from pytest_httpserver import HTTPServer
from standardwebhooks import Webhook, WebhookVerificationError
from werkzeug import Request, Response

from citywatch.console.server import free_port
from citywatch.detectors.alerts import Alert
from citywatch.sinks.client import connect
from citywatch.sinks.dispatch import Dispatch, Keys, Route, WorkOrderWriter
from citywatch.sinks.integrations.delivery import Sender, WebhookMetrics
from citywatch.sinks.integrations.events import encode_bounded
from citywatch.sinks.integrations.service import WebhookService, subscription_status
from citywatch.sinks.integrations.settings import (
    DeliverySettings,
    IntegrationConfigError,
    WebhookSpec,
    new_secret,
)
from citywatch.sinks.integrations.webhooks import HookKeys, SubscriptionStore
from citywatch.sinks.lifecycle import WorkOrders

pytestmark = pytest.mark.redis

PREFIX = "t"
T0 = 1_781_528_400_000
FAST = DeliverySettings(
    retry_for_s=120, backoff_first_s=0.02, backoff_max_s=0.2, timeout_s=5, failing_after_s=0.1
)


@dataclass
class Receiver:
    """Records every verified delivery; ``fail_first`` answers 500 to each id's first try
    after recording it (the answer was lost: citywatch must send it again)."""

    secret: str
    fail_first: bool = False
    got: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)
    hold: threading.Event | None = None
    seen: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request: Request) -> Response:
        if self.hold is not None:
            self.hold.wait(30)
        body = request.get_data()
        try:
            payload = Webhook(self.secret).verify(body, dict(request.headers))
        except WebhookVerificationError as exc:
            self.bad.append(str(exc))
            return Response("bad signature", status=401)
        msg_id = request.headers["webhook-id"]
        with self.lock:
            self.got.append((msg_id, payload))
            first = msg_id not in self.seen
            self.seen.add(msg_id)
        if self.fail_first and first:
            return Response("try again", status=500)
        return Response("", status=204)

    def unique(self) -> dict[str, dict[str, Any]]:
        """Deliveries deduplicated by webhook-id (a repeat must carry the same body)."""
        out: dict[str, dict[str, Any]] = {}
        for msg_id, payload in self.got:
            if msg_id in out:
                assert out[msg_id] == payload, f"{msg_id} repeated with another body"
            out[msg_id] = payload
        return out


def _receiver_server(handler: Receiver, port: int = 0) -> HTTPServer:
    server = HTTPServer(host="127.0.0.1", port=port)
    server.expect_request("/hook", method="POST").respond_with_handler(handler)
    server.start()
    return server


@pytest.fixture()
def client(dispatch_redis_url: str) -> Iterator[redis.Redis]:
    """One redis-server, then a 3-master Redis Cluster: the relay and delivery on both."""
    c = connect(dispatch_redis_url, check=False, decode_responses=True)
    yield c
    c.close()


def _alert(n: int, severity: str = "yellow") -> Alert:
    return Alert.make(
        "video.intrusion",
        severity,
        f"cam-{n}",
        "video",
        f"site-{n}",
        121.0 + n * 0.01,
        32.0,
        ts_ms=T0 + n * 1000,
        first_ts_ms=T0 + n * 1000,
        evidence={"confidence": 0.9},
    )


def _create(client: redis.Redis, n: int, department: str = "public_security") -> str:
    d = Dispatch(_alert(n), Route("town:a", department, "town", "town:a"), 600, 3600)
    (written,) = WorkOrderWriter(client, Keys(PREFIX)).write([d])
    return written.wo_id


def _wait(cond: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.02)


def _service(client: redis.Redis, specs: list[WebhookSpec], **kw: Any) -> WebhookService:
    keys = HookKeys(PREFIX)
    store = SubscriptionStore(client, keys, specs)
    svc = WebhookService(client, keys, store, kw.pop("settings", FAST), reload_s=0.2, **kw)
    svc.start()
    _wait(svc.active.is_set, "the service to take the lease")
    return svc


def _spec(sub_id: str, url: str, secret: str, **kw: Any) -> WebhookSpec:
    return WebhookSpec(id=sub_id, url=url, secret=secret, **kw)


def _check_order(deliveries: dict[str, dict[str, Any]]) -> dict[str, list[int]]:
    seqs: dict[str, list[int]] = {}
    for payload in deliveries.values():
        seqs.setdefault(payload["data"]["work_order_id"], []).append(payload["data"]["sequence"])
    return seqs


def test_outage_and_restart_deliver_everything_once_in_order(client: redis.Redis) -> None:
    secret = new_secret()
    rec = Receiver(secret, fail_first=True)
    server = _receiver_server(rec)
    port = server.port
    url = server.url_for("/hook")
    svc = _service(client, [_spec("dept", url, secret)])
    orders = WorkOrders(client, Keys(PREFIX))
    ids = [_create(client, n) for n in range(4)]
    for wo in ids:
        orders.sign(wo, "alice")
    _wait(lambda: len(rec.unique()) == 8, "the first 8 deliveries")
    arrival_before = [m for m, _ in rec.got]

    server.stop()
    svc.stop()
    for i, wo in enumerate(ids):
        orders.start(wo, "alice")
        orders.resolve(wo, "alice", "cleared")
        if i % 2:
            orders.close(wo, "centre-bob")
    ids.append(_create(client, 9))
    orders.return_(ids[-1], "alice", "not ours")
    keys = HookKeys(PREFIX)
    spec = _spec("dept", url, secret)
    failed_before = subscription_status(client, keys, spec, FAST)["failures"]
    svc = _service(client, [spec])
    _wait(
        lambda: subscription_status(client, keys, spec, FAST)["failures"] > failed_before + 2,
        "failed attempts while the receiver is down",
    )
    status = subscription_status(client, keys, spec, FAST)
    assert status["failing_since_ms"] and status["backlog"] > 0
    assert "ConnectError" in status["last_error"]

    server = _receiver_server(rec, port)
    expected = 8 + 4 * 2 + 2 + 2  # start+resolve each, 2 closes, created+returned
    _wait(lambda: len(rec.unique()) == expected, f"{expected} deliveries")
    svc.stop()
    server.stop()

    assert rec.bad == []
    unique = rec.unique()
    assert len(rec.got) > len(unique)  # the 500s forced repeats, which dedup removed
    seqs = _check_order(unique)
    assert seqs == {wo: list(range(1, len(v) + 1)) for wo, v in seqs.items()}
    # Arrival order per work order follows the sequence (repeats aside).
    arrivals: dict[str, list[int]] = {}
    for msg_id, payload in rec.got:
        wo, seq = payload["data"]["work_order_id"], payload["data"]["sequence"]
        if not arrivals.get(wo) or arrivals[wo][-1] != seq:
            arrivals.setdefault(wo, []).append(seq)
        assert msg_id == f"msg_{wo}_{seq}"
    assert all(v == sorted(v) for v in arrivals.values()), arrivals
    assert arrival_before == [m for m, _ in rec.got[: len(arrival_before)]]
    types = sorted(p["type"] for p in unique.values())
    assert types.count("workorder.created") == 5
    assert types.count("workorder.signed") == 4
    assert types.count("workorder.closed") == 2
    assert types.count("workorder.returned") == 1
    closed = [p for p in unique.values() if p["type"] == "workorder.closed"]
    assert all(p["data"]["state"] == "closed" and p["data"]["by"] == "centre-bob" for p in closed)
    created = [p for p in unique.values() if p["type"] == "workorder.created"]
    assert all(p["data"]["alert"]["kind"] == "video.intrusion" for p in created)
    final = subscription_status(client, keys, spec, FAST)
    assert final["backlog"] == 0 and final["failing_since_ms"] is None


def test_filters_and_a_slow_endpoint_delays_no_other(client: redis.Redis) -> None:
    secret = new_secret()
    hold = threading.Event()
    slow, fast, closed = Receiver(secret, hold=hold), Receiver(secret), Receiver(secret)
    servers = [_receiver_server(r) for r in (slow, fast, closed)]
    urls = [s.url_for("/hook") for s in servers]
    specs = [
        _spec("slow", urls[0], secret),
        _spec("fast", urls[1], secret, departments=("water_resources",)),
        _spec("closed", urls[2], secret, events=("workorder.closed",), severities=("yellow",)),
    ]
    svc = _service(client, specs)
    orders = WorkOrders(client, Keys(PREFIX))
    water = [_create(client, n, "water_resources") for n in range(3)]
    other = _create(client, 7, "public_security")
    for wo in [*water, other]:
        orders.sign(wo, "alice")
        orders.resolve(wo, "alice", "done")
        orders.close(wo, "centre")
    # The slow receiver holds its first request; the others are not held up by it.
    _wait(lambda: len(fast.unique()) == 3 * 4, "the fast subscription's deliveries")
    _wait(lambda: len(closed.unique()) == 4, "the closed-only subscription's deliveries")
    assert len(slow.got) <= 1
    assert {p["data"]["department"] for p in fast.unique().values()} == {"water_resources"}
    assert {p["type"] for p in closed.unique().values()} == {"workorder.closed"}
    hold.set()
    _wait(lambda: len(slow.unique()) == 4 * 4, "the slow subscription's deliveries")
    svc.stop()
    for s in servers:
        s.stop()


def test_gives_up_into_the_dead_letter_stream(client: redis.Redis, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook").respond_with_data("database down", status=503)
    settings = DeliverySettings(retry_for_s=0.3, backoff_first_s=0.02, backoff_max_s=0.05)
    spec = _spec("down", httpserver.url_for("/hook"), new_secret())
    svc = _service(client, [spec], settings=settings)
    wo = _create(client, 1)
    keys = HookKeys(PREFIX)
    _wait(lambda: client.xlen(keys.dead("down")) == 1, "the dead letter")
    svc.stop()
    (_, dead), *_ = client.xrange(keys.dead("down"))
    assert dead["wo"] == wo and dead["type"] == "workorder.created"
    assert dead["error"] == "HTTP 503: database down" and int(dead["attempts"]) >= 2
    assert client.xlen(keys.out("down")) == 0
    assert subscription_status(client, keys, spec, settings)["dead_letters"] == 1


def test_redirects_only_within_the_same_origin(httpserver: HTTPServer) -> None:
    secret = new_secret()
    rec = Receiver(secret)
    httpserver.expect_request("/moved").respond_with_data(
        "", status=307, headers={"Location": "/hook"}
    )
    httpserver.expect_request("/away").respond_with_data(
        "", status=307, headers={"Location": "http://203.0.113.9/hook"}
    )
    httpserver.expect_request("/see-other").respond_with_data(
        "", status=303, headers={"Location": "/hook"}
    )
    httpserver.expect_request("/hook").respond_with_handler(rec)
    body = b'{"type":"webhook.test"}'

    def post(path: str) -> Any:
        sender = Sender(_spec("r", httpserver.url_for(path), secret), FAST)
        try:
            return sender.post("msg_1", body)
        finally:
            sender.close()

    assert post("/moved").ok and len(rec.got) == 1
    away = post("/away")
    assert not away.ok and away.error.startswith("redirect to another host refused")
    assert not post("/see-other").ok
    assert len(rec.got) == 1


def test_secrets_never_reach_the_logs(
    client: redis.Redis, caplog: pytest.LogCaptureFixture, httpserver: HTTPServer
) -> None:
    secret = new_secret()
    rec = Receiver(secret, fail_first=True)  # one failure logged, then a delivery
    httpserver.expect_request("/hook").respond_with_handler(rec)
    dead = _spec("gone", "http://127.0.0.1:9/hook?token=hush", secret)
    live = _spec("live", httpserver.url_for("/hook") + "?token=hush", secret)
    caplog.set_level(logging.DEBUG)
    svc = _service(client, [dead, live])
    _create(client, 1)
    keys = HookKeys(PREFIX)
    _wait(lambda: int(client.hget(keys.status("gone"), "failures") or 0) >= 2, "failures")
    _wait(lambda: len(rec.unique()) == 1 and len(rec.got) == 2, "the live delivery")
    svc.stop()
    ours = ("citywatch", "httpx", "httpcore")  # not the test receiver's access log
    text = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith(ours))
    assert "gone" in text and "live" in text  # both were logged about
    assert secret not in text and secret.removeprefix("whsec_") not in text
    assert "hush" not in text


def test_subscriptions_validate_and_config_ones_are_read_only(client: redis.Redis) -> None:
    secret = new_secret()
    with pytest.raises(IntegrationConfigError, match="http:// or https://"):
        _spec("x", "file:///etc/passwd", secret)
    with pytest.raises(IntegrationConfigError, match="no credentials"):
        _spec("x", "https://user:pw@h.example/hook", secret)
    with pytest.raises(IntegrationConfigError, match="unknown event"):
        _spec("x", "https://h.example/hook", secret, events=("workorder.deleted",))
    with pytest.raises(IntegrationConfigError, match="secret must be"):
        _spec("x", "https://h.example/hook", "short")
    keys = HookKeys(PREFIX)
    store = SubscriptionStore(client, keys, [_spec("cfg", "https://h.example/a", secret)])
    store.add(_spec("mine", "https://h.example/b", secret, source="redis"))
    assert [s.id for s in store.all()] == ["cfg", "mine"]
    assert store.get("mine") == _spec("mine", "https://h.example/b", secret, source="redis")
    with pytest.raises(IntegrationConfigError, match="configuration file"):
        store.remove("cfg")
    with pytest.raises(IntegrationConfigError, match="exists already"):
        store.add(_spec("mine", "https://h.example/c", secret))
    assert store.remove("mine") and [s.id for s in store.all()] == ["cfg"]


def test_bodies_are_bounded() -> None:
    event = {
        "type": "workorder.created",
        "timestamp": "x",
        "data": {
            "work_order": {"id": "wo-1", "feedback": "x" * 10_000},
            "alert": {"id": "a", "kind": "k", "evidence": {"blob": "y" * 10_000}},
        },
    }
    small = orjson.loads(encode_bounded(event, 12_000))
    assert small["data"]["truncated"] and "evidence" not in small["data"]["alert"]
    assert small["data"]["work_order"]["feedback"]
    tiny = orjson.loads(encode_bounded(event, 4096))
    assert tiny["data"]["work_order"] == {"id": "wo-1"}
    assert orjson.loads(encode_bounded(event, 100_000)) == event


def test_metrics_count_deliveries_and_failures(client: redis.Redis) -> None:
    secret = new_secret()
    rec = Receiver(secret, fail_first=True)
    server = _receiver_server(rec)
    metrics = WebhookMetrics()
    svc = _service(client, [_spec("m", server.url_for("/hook"), secret)], metrics=metrics)
    _create(client, 1)
    _wait(lambda: len(rec.got) == 2, "a failure and a retry")
    sample = metrics.registry.get_sample_value
    labels = {"subscription": "m"}
    _wait(lambda: sample("citywatch_webhook_deliveries_total", labels) == 1.0, "the metric")
    svc.stop()
    server.stop()
    assert sample("citywatch_webhook_failures_total", {"subscription": "m"}) == 1.0
    assert sample("citywatch_webhook_retries_total", {"subscription": "m"}) == 1.0
    assert sample("citywatch_webhook_request_seconds_count", {"subscription": "m"}) == 2.0


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_tls_is_verified_by_default(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=ctx)
    server.expect_request("/hook").respond_with_data("", status=204)
    server.start()
    spec = _spec("tls", server.url_for("/hook"), new_secret())
    assert spec.url.startswith("https://")
    try:
        for settings, ok in ((FAST, False), (replace(FAST, ca_file=str(cert)), True)):
            sender = Sender(spec, settings)
            res = sender.post("msg_tls", b"{}")
            sender.close()
            assert res.ok is ok, res.error
            if not ok:
                assert "CERTIFICATE_VERIFY_FAILED" in res.error
    finally:
        server.stop()


def test_deliveries_reuse_the_connection() -> None:
    """A 2xx answer is read to its end, so the next delivery rides the same connection."""
    clients: list[tuple[str, int]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        clients.append(scope["client"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b'{"ok": true}'})

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    _wait(lambda: server.started, "the receiver")
    sender = Sender(_spec("ka", f"http://127.0.0.1:{port}/hook", new_secret()), FAST)
    try:
        assert all(sender.post(f"msg_{i}", b"{}").ok for i in range(3))
    finally:
        sender.close()
        server.should_exit = True
        thread.join(10)
    assert len(clients) == 3 and len(set(clients)) == 1, clients
