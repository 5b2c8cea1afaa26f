"""Work orders in a real Redis: one per incident, idempotent, every lifecycle transition.

The tests that take ``client`` run twice: on one redis-server and on a 3-master
Redis Cluster (``dispatch_redis_url``).

Timeline of the SLA test (sign-off SLA 60 s)::

    t=0 created (town)   t=60 s sign due   t=61 s escalator -> county   t=122 s -> city
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import redis

from citywatch.detectors.alerts import Alert
from citywatch.detectors.incidents import IncidentMerger, IncidentParams
from citywatch.sinks.dispatch import (
    Dispatch,
    DispatchError,
    Keys,
    RedisDispatchSink,
    Route,
    WorkOrderWriter,
    connect,
)
from citywatch.sinks.embedded_redis import EmbeddedRedis
from citywatch.sinks.escalation import accountability, all_orders, escalate_due
from citywatch.sinks.lifecycle import TransitionRefused, WorkOrderError, WorkOrders
from citywatch.sinks.silences import SilenceStore, make_silence

pytestmark = pytest.mark.redis

T0 = 1_781_528_400_000
PARENTS = {"town:a": ("county:x", "county"), "county:x": ("city", "city")}


def _alert(subject: str, t_s: int, severity: str = "yellow", zone: str | None = "site-1") -> Alert:
    lon = 121.0 + 0.01 * int(zone.rsplit("-", 1)[1]) if zone else 121.0  # ~950 m apart
    return Alert.make(
        "video.intrusion",
        severity,
        subject,
        "video",
        zone,
        lon,
        32.0,
        ts_ms=T0 + t_s * 1000,
        first_ts_ms=T0 + t_s * 1000,
        evidence={},
    )


def _dispatches(alerts: list[Alert], level: str = "town", sign_sla_s: int = 60) -> list[Dispatch]:
    merged = IncidentMerger(IncidentParams(hold_s=0)).push(alerts)
    centre = {"town": "town:a", "county": "county:x", "city": "city"}[level]
    return [
        Dispatch(a, Route(centre, "public_security", level, "town:a"), sign_sla_s, 3600, incident=v)
        for a, v in merged
    ]


@pytest.fixture()
def client(dispatch_redis_url: str) -> Iterator[redis.Redis]:
    c = connect(dispatch_redis_url, check=False, decode_responses=True)
    yield c
    c.close()


@pytest.fixture()
def orders(client: redis.Redis) -> WorkOrders:
    return WorkOrders(client, Keys("t"))


def _one(client: redis.Redis, alerts: list[Alert], **kw: object) -> str:
    writer = WorkOrderWriter(client, Keys("t"))
    written = writer.write(_dispatches(alerts, **kw))  # type: ignore[arg-type]
    return written[0].wo_id


def test_one_work_order_per_incident_grows_with_its_alerts(
    client: redis.Redis, orders: WorkOrders
) -> None:
    keys = Keys("t")
    alerts = [_alert("cam-1", 0), _alert("cam-2", 30), _alert("cam-3", 60, "orange")]
    written = WorkOrderWriter(client, keys).write(_dispatches(alerts))
    assert [w.outcome for w in written] == ["created", "merged", "merged"]
    assert len({w.wo_id for w in written}) == 1
    wo = orders.get(written[0].wo_id)
    assert (wo["alert_count"], wo["severity"], wo["subjects"]) == (
        "3",
        "orange",
        "cam-1,cam-2,cam-3",
    )
    assert [a["subject"] for a in orders.alerts(wo["id"])] == ["cam-1", "cam-2", "cam-3"]
    actions = [e["action"] for e in orders.audit(wo["id"])]
    assert actions == ["created", "alert_merged", "alert_merged", "severity_raised"]
    assert client.xlen(keys.queue(wo["queue"])) == 1
    assert wo["queued"] == "1" and wo["queue_entry"]


def test_redelivery_of_the_same_incidents_changes_nothing(client: redis.Redis) -> None:
    keys = Keys("t")
    alerts = [_alert("cam-1", 0), _alert("cam-2", 30), _alert("cam-9", 10, zone="site-2")]
    writer = WorkOrderWriter(client, keys)
    first = writer.write(_dispatches(alerts))
    before = {k: client.dump(k) for k in client.scan_iter("{t}:wo:*")}
    again = writer.write(_dispatches(alerts))
    assert [w.outcome for w in again] == ["repeat"] * 3
    assert {w.wo_id for w in first} == {w.wo_id for w in again}
    assert {k: client.dump(k) for k in client.scan_iter("{t}:wo:*")} == before
    assert client.zcard(keys.index()) == 2
    assert sum(client.xlen(q) for q in client.scan_iter(keys.queue_pattern())) == 2


def test_growing_incident_is_rerouted_to_a_higher_level_while_unsigned(
    client: redis.Redis,
    orders: WorkOrders,
) -> None:
    keys = Keys("t")
    writer = WorkOrderWriter(client, keys)
    a1, a2 = _alert("cam-1", 0), _alert("cam-2", 30, "red")
    d1 = _dispatches([a1, a2])
    d1[1].route = Route("city", "public_security", "city", "town:a")
    out = writer.write(d1)
    assert [w.outcome for w in out] == ["created", "rerouted"]
    wo = orders.get(out[0].wo_id)
    assert (wo["centre"], wo["level"], wo["queued"]) == ("city", "city", "1")
    assert client.xlen(keys.queue("city|public_security")) == 1


def test_every_transition_and_the_refusals(orders: WorkOrders, client: redis.Redis) -> None:
    wo_id = _one(client, [_alert("cam-1", 0)])
    assert orders.sign(wo_id, "alice", now_ms=T0 + 1)["state"] == "signed"
    with pytest.raises(
        TransitionRefused,
        match="sign refused for .*: it is signed; sign needs dispatched or escalated",
    ):
        orders.sign(wo_id, "bob")
    with pytest.raises(TransitionRefused):
        orders.close(wo_id, "centre")
    assert orders.start(wo_id, "alice")["state"] == "handling"
    with pytest.raises(WorkOrderError, match="feedback is required"):
        orders.resolve(wo_id, "alice", " ")
    assert orders.resolve(wo_id, "alice", "fence repaired")["feedback"] == "fence repaired"
    assert orders.reopen(wo_id, "centre-1", "still open")["state"] == "handling"
    orders.resolve(wo_id, "alice", "fence repaired, photo attached")
    closed = orders.close(wo_id, "centre-1", "verified on camera")
    assert closed["state"] == "closed"
    with pytest.raises(TransitionRefused, match="it is closed"):
        orders.reassign(wo_id, "centre-1", department="transport")
    actions = [(e["action"], e["from"], e["state"]) for e in orders.audit(wo_id)[1:]]
    assert actions == [
        ("sign", "dispatched", "signed"),
        ("start", "signed", "handling"),
        ("resolve", "handling", "resolved"),
        ("reopen", "resolved", "handling"),
        ("resolve", "handling", "resolved"),
        ("close", "resolved", "closed"),
    ]


def test_return_to_sender_and_reassign_move_the_order_between_queues(
    orders: WorkOrders,
    client: redis.Redis,
) -> None:
    keys = Keys("t")
    wo_id = _one(client, [_alert("cam-1", 0)])
    returned = orders.return_(wo_id, "alice", "not ours")
    assert (returned["state"], returned["returns"]) == ("returned", "1")
    with pytest.raises(TransitionRefused):
        orders.sign(wo_id, "alice")
    moved = orders.reassign(wo_id, "centre-1", department="transport")
    assert (moved["state"], moved["queue"]) == ("dispatched", "town:a|transport")
    assert [w["id"] for w in orders.queue("town:a|transport")] == [wo_id]
    assert orders.queue("town:a|public_security") == []
    again = orders.return_(wo_id, "bob", "wrong again", to_department="water_resources")
    assert (again["state"], again["returns"]) == ("dispatched", "2")
    assert client.xlen(keys.queue("town:a|water_resources")) == 1
    with pytest.raises(WorkOrderError, match="give the reason"):
        orders.return_(wo_id, "bob", "")


def test_two_officers_signing_at_once_exactly_one_wins(
    dispatch_redis_url: str, client: redis.Redis
) -> None:
    wo_id = _one(client, [_alert("cam-1", 0)])
    start = threading.Barrier(8)
    wins: list[str] = []
    refusals: list[str] = []

    def officer(name: str) -> None:
        mine = WorkOrders(connect(dispatch_redis_url, decode_responses=True), Keys("t"))
        start.wait()
        try:
            mine.sign(wo_id, name)
            wins.append(name)
        except TransitionRefused as exc:
            refusals.append(exc.state)

    threads = [threading.Thread(target=officer, args=(f"officer-{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and refusals == ["signed"] * 7
    assert WorkOrders(client, Keys("t")).get(wo_id)["signed_by"] == wins[0]


def test_escalator_moves_unsigned_orders_up_and_flags_overdue(
    orders: WorkOrders,
    client: redis.Redis,
) -> None:
    parent = PARENTS.get
    unsigned = _one(client, [_alert("cam-1", 0)], sign_sla_s=60)
    signed = _one(client, [_alert("cam-7", 0, zone="site-7")], sign_sla_s=60)
    created = int(orders.get(unsigned)["created_ms"])
    orders.sign(signed, "alice", now_ms=int(orders.get(signed)["created_ms"]) + 1000)
    assert escalate_due(orders, parent, now_ms=created + 30_000).escalated == []
    res = escalate_due(orders, parent, now_ms=created + 61_000)
    assert res.escalated == [unsigned]
    wo = orders.get(unsigned)
    assert (wo["state"], wo["centre"], wo["level"], wo["escalations"]) == (
        "escalated",
        "county:x",
        "county",
        "1",
    )
    assert [w["id"] for w in orders.queue("county:x|public_security")] == [unsigned]
    res = escalate_due(orders, parent, now_ms=created + 122_000)
    assert res.escalated == [unsigned] and orders.get(unsigned)["centre"] == "city"
    res = escalate_due(orders, parent, now_ms=created + 183_000)
    assert res.at_top == [unsigned]
    # resolution deadline (3600 s) passed: flagged once, recorded in the audit trail
    res = escalate_due(orders, parent, now_ms=created + 3_601_000)
    assert sorted(res.overdue) == sorted([unsigned, signed])
    assert orders.get(signed)["overdue"] == "1"
    assert orders.audit(signed)[-1]["action"] == "overdue"
    report = accountability(all_orders(orders), now_ms=created + 3_601_000)
    assert report["department"]["public_security"]["orders"] == 2
    assert report["department"]["public_security"]["sign_p50_s"] == 1.0
    assert report["centre"]["city"]["escalations"] == 2


def test_silenced_alerts_create_no_work_order(client: redis.Redis) -> None:
    keys = Keys("t")
    SilenceStore(client, keys).add(
        make_silence("zone", "site-1", T0, T0 + 600_000, "alice", "fence works")
    )
    writer = WorkOrderWriter(client, keys, silence_cache_s=0)
    out = writer.write(_dispatches([_alert("cam-1", 0), _alert("cam-2", 700)]))
    assert [w.outcome for w in out] == ["silenced", "created"]
    assert client.xlen(keys.silenced()) == 1
    assert client.zcard(keys.index()) == 1


def test_password_protected_server() -> None:
    with EmbeddedRedis(password="s3cret-pw") as server:
        bare = server.url.replace(":s3cret-pw@", "")
        with pytest.raises(DispatchError, match="redis://"):
            connect(bare)
        client = connect(server.url)
        out = WorkOrderWriter(client, Keys("t")).write(_dispatches([_alert("cam-1", 0)]))
        assert out[0].created
        assert WorkOrders(client, Keys("t")).sign(out[0].wo_id, "alice")["state"] == "signed"
        client.close()


def test_redis_crash_and_restart_loses_no_work_order(tmp_path: object) -> None:
    """Half the incidents are written, Redis crashes (SIGKILL), the sink keeps retrying the
    second half, Redis restarts from its append-only file: every work order is there."""
    server = EmbeddedRedis(appendonly=True).start()
    try:
        alerts = [_alert(f"cam-{i}", i, zone=f"site-{i}") for i in range(40)]
        ds = _dispatches(alerts)
        sink = RedisDispatchSink(server.url, Keys("t"))
        sink.setup()
        sink.write_batch(ds[:20])
        server.kill()
        writer = threading.Thread(target=sink.write_batch, args=(ds[20:],))
        writer.start()
        while sink.retries < 2:  # the sink is holding the batch and retrying
            writer.join(0.05)
        server.start()
        writer.join()
        sink.close()
        client = redis.Redis.from_url(server.url, decode_responses=True)
        assert client.zcard("{t}:index:{wo}") == 40
        assert all(
            client.hget(Keys("t").wo(d.alert.incident.replace("in-", "wo-")), "queued") == "1"
            for d in ds
            if d.alert.incident
        )
        client.close()
    finally:
        server.cleanup()
