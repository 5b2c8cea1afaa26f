"""``[outputs.kafka]``: alerts and work-order changes on librdkafka's mock cluster.

orders 1..3 created (alerts), signed .... step(): published, acknowledged
order 1 grows, order 2 closed ........... a new output resumes: only the new changes
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from confluent_kafka import Consumer, KafkaError, TopicPartition
from pytest_httpserver import HTTPServer
from standardwebhooks import Webhook
from werkzeug import Response

from citywatch.detectors.alerts import Alert
from citywatch.flows.config import DEFAULT_CONFIG
from citywatch.sinks.dispatch import Dispatch, Keys, Route, WorkOrderWriter
from citywatch.sinks.integrations.kafka_out import KafkaOutput
from citywatch.sinks.integrations.settings import (
    KafkaOutputSettings,
    integration_settings,
    new_secret,
)
from citywatch.sinks.lifecycle import WorkOrders

pytestmark = [pytest.mark.redis, pytest.mark.kafka]

T0 = 1_781_528_400_000
SETTINGS = KafkaOutputSettings(enabled=True, alerts_topic="t.alerts", workorders_topic="t.wo")


@pytest.fixture()
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url, decode_responses=True)
    yield c
    c.close()


def _dispatch(n: int, t_s: int, severity: str = "yellow") -> Dispatch:
    """An alert of incident ``in-inc<n>`` (work order ``wo-inc<n>``), first seen at ``t_s``."""
    alert = Alert.make(
        "sensor.threshold", severity, f"wl-{n}", "sensor", f"levee-{n}", 121.0, 32.0,
        ts_ms=T0 + t_s * 1000, first_ts_ms=T0 + t_s * 1000, evidence={"value": 5.2},
    )  # fmt: skip
    alert = replace(alert, incident=f"in-inc{n}")
    return Dispatch(alert, Route("town:a", "water_resources", "town", "town:a"), 600, 3600)


def _read(bootstrap: str, topic: str) -> list[tuple[str, dict[str, Any]]]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "check", "enable.partition.eof": True}
    )
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in parts])
    out: list[tuple[str, dict[str, Any]]] = []
    ends = 0
    while ends < len(parts):
        for msg in consumer.consume(100, 1.0):
            if msg.error() is not None:
                ends += msg.error().code() == KafkaError._PARTITION_EOF
                continue
            out.append((msg.key().decode(), orjson.loads(msg.value())))
    consumer.close()
    return out


def _drain(out: KafkaOutput) -> None:
    while out.step(block_ms=50):
        pass
    out.step(block_ms=50)


def test_alerts_and_changes_keyed_by_incident_once(
    client: redis.Redis, kafka_bootstrap: str
) -> None:
    keys = Keys("t")
    out = KafkaOutput(client, keys, SETTINGS, kafka_bootstrap)
    assert out.config["enable.idempotence"] is True and out.config["acks"] == "all"
    out.setup()
    writer, orders = WorkOrderWriter(client, keys), WorkOrders(client, keys)
    ids = [w.wo_id for w in writer.write([_dispatch(n, n) for n in range(3)])]
    for wo in ids:
        orders.sign(wo, "alice")
    _drain(out)
    out.close()

    # A second output (a restart) resumes after what the first acknowledged.
    again = KafkaOutput(client, keys, SETTINGS, kafka_bootstrap)
    again.setup()
    assert [w.outcome for w in writer.write([_dispatch(0, 30, "orange")])] == ["merged"]
    orders.resolve(ids[1], "alice", "sandbags placed")
    orders.close(ids[1], "centre")
    _drain(again)
    again.close()

    changes = _read(kafka_bootstrap, "t.wo")
    alerts = _read(kafka_bootstrap, "t.alerts")
    assert len({c["event_id"] for _, c in changes}) == len(changes) == 3 + 3 + 1 + 2
    assert len(alerts) == 3 + 1 and len({a["id"] for _, a in alerts}) == 4
    assert ids == ["wo-inc0", "wo-inc1", "wo-inc2"]
    incident_of = {wo: "in-" + wo.removeprefix("wo-") for wo in ids}
    for key, c in changes:
        assert key == incident_of[c["data"]["work_order_id"]]
    for key, a in alerts:
        assert key == incident_of[a["work_order_id"]] and a["kind"] == "sensor.threshold"
    per_order: dict[str, list[str]] = {}
    for _, c in changes:
        per_order.setdefault(c["data"]["work_order_id"], []).append(c["type"])
    assert per_order[ids[1]] == [
        "workorder.created", "workorder.signed", "workorder.updated", "workorder.closed",
    ]  # fmt: skip
    assert per_order[ids[0]][-1] == "workorder.updated"  # the orange alert grew it
    closed = next(c for _, c in changes if c["type"] == "workorder.closed")
    assert closed["data"]["by"] == "centre" and closed["data"]["work_order"]["state"] == "closed"


def test_output_settings_validate() -> None:
    doc = {"outputs": {"kafka": {"enabled": True, "alerts_topic": ""}}}
    with pytest.raises(ValueError, match="alerts_topic"):
        integration_settings(doc, {})
    with pytest.raises(ValueError, match="unknown output"):
        integration_settings({"outputs": {"s3": {}}}, {})
    cfg = integration_settings({"outputs": {"kafka": {"enabled": True, "batch": 10}}}, {})
    assert cfg.kafka.enabled and cfg.kafka.batch == 10


@pytest.mark.slow
def test_outputs_command_runs_webhooks_and_kafka(
    redis_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    """``citywatch outputs`` as an operator runs it: a process, stopped by SIGTERM."""
    secret = new_secret()
    got: list[dict[str, Any]] = []
    server = HTTPServer(host="127.0.0.1", port=0)
    server.expect_request("/hook").respond_with_handler(
        lambda r: (
            got.append(Webhook(secret).verify(r.get_data(), dict(r.headers)))
            or Response("", status=204)
        )
    )
    server.start()
    text = DEFAULT_CONFIG.read_text(encoding="utf-8")
    for name in ("zones.geojson", "jurisdictions.geojson", "sensors.csv", "cameras.csv"):
        text = text.replace(f'"{name}"', f'"{DEFAULT_CONFIG.parent / name}"', 1)
    cfg = tmp_path / "citywatch.toml"
    cfg.write_text(
        text + f'\n[[webhooks]]\nid = "w"\nurl = "{server.url_for("/hook")}"\n'
        f'secret = "{secret}"\n\n[outputs.kafka]\nenabled = true\nalerts_topic = "o.alerts"\n'
        'workorders_topic = "o.wo"\n',
        encoding="utf-8",
    )
    env = {**os.environ, "CITYWATCH_KAFKA_BOOTSTRAP": kafka_bootstrap}
    cmd = [sys.executable, "-m", "citywatch", "outputs", "--config", str(cfg),
           "--redis-url", redis_url]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "webhooks (w)" in line and "kafka (o.alerts, o.wo)" in line, line
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        keys = Keys("cw")
        # The relay takes the lease and joins the feed just after it starts.
        deadline = time.monotonic() + 30
        while not client.exists("{cw}:webhooks:{lease}") and time.monotonic() < deadline:
            time.sleep(0.05)
        (written,) = WorkOrderWriter(client, keys).write([_dispatch(1, 1)])
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        server.stop()
    assert [g["data"]["work_order_id"] for g in got] == [written.wo_id]
    assert [c["data"]["work_order_id"] for _, c in _read(kafka_bootstrap, "o.wo")] == [
        written.wo_id
    ]
