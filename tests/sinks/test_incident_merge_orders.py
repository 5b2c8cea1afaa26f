"""Live incidents whose id moves keep one work order; merged incidents close one order
as merged into the other, atomically and once (real Redis).

Timeline (seconds after T0; quiet period 900 s; merge keys subject and zone)::

    0    5   10
    |----|----|
    B0        A10        A opens first (cam-1, z1), then B (cam-2, z2), earlier in time
       L5 L5.5           cam-3 in z1 and in z2 links them: A's order absorbs B's
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator

import pytest
import redis

from citywatch.detectors.alerts import Alert
from citywatch.detectors.incidents import IncidentMerger, IncidentParams, IncidentView
from citywatch.sinks.client import RetryPolicy, connect
from citywatch.sinks.dispatch import Dispatch, Keys, Route, WorkOrderWriter
from citywatch.sinks.escalation import accountability, all_orders
from citywatch.sinks.lifecycle import TransitionRefused, UnknownWorkOrder, WorkOrders
from citywatch.sinks.workorder import order_id_of

from .test_lifecycle_atomic import check_invariants, race

pytestmark = pytest.mark.redis

T0 = 1_781_528_400_000
KEYS = Keys("t")
ROUTE = Route("town:a", "public_security", "town", "town:a")


def _a(subject: str, t_s: float, zone: str) -> Alert:
    t = T0 + int(t_s * 1000)
    lon = 121.0 if zone == "z1" else 121.5
    return Alert.make(
        "video.intrusion", "yellow", subject, "video", zone, lon, 32.0,
        ts_ms=t, first_ts_ms=t, evidence={"t": t_s},
    )  # fmt: skip


def _dispatches(pairs: list[tuple[Alert, IncidentView]]) -> list[Dispatch]:
    return [Dispatch(a, ROUTE, 60, 3600, incident=v) for a, v in pairs]


@pytest.fixture()
def client(dispatch_redis_url: str) -> Iterator[redis.Redis]:
    c = connect(dispatch_redis_url, check=False, decode_responses=True)
    yield c
    c.close()


def _open_orders(client: redis.Redis) -> dict[str, dict[str, str]]:
    ids = client.zrange(KEYS.index(), 0, -1)
    hashes = {i: client.hgetall(KEYS.wo(i)) for i in ids}
    return {i: h for i, h in hashes.items() if h["state"] != "merged"}


def test_a_late_earliest_alert_updates_the_order_it_belongs_to(client: redis.Redis) -> None:
    merger = IncidentMerger(IncidentParams(quiet_s=900))
    writer = WorkOrderWriter(client, KEYS)
    [w1] = writer.write(_dispatches(merger.push([_a("cam-1", 5, "z1")])))
    late = merger.push([_a("cam-2", 1, "z1")])  # earlier: the incident's id moves to it
    [w2] = writer.write(_dispatches(late))
    assert (w1.outcome, w2.outcome) == ("created", "merged")
    assert w2.wo_id == w1.wo_id
    [order] = _open_orders(client).values()
    assert order["incident"] == late[0][1].id != "in-" + w1.wo_id[3:]
    assert order["alert_count"] == "2"
    assert order["first_ts"] == "2026-06-15T13:00:01.000Z"
    audit = client.xrange(KEYS.audit(w1.wo_id))
    assert [e["action"] for _, e in audit] == ["created", "alert_merged"]
    assert audit[-1][1]["incident"] == late[0][1].id
    check_invariants(client, KEYS)


def _linked_run(client: redis.Redis, sign_b: str | None = None) -> tuple[str, str]:
    """A opens, then B; optionally an officer signs B; then the linking alerts come.
    Returns the ids of A's and B's work orders."""
    merger = IncidentMerger(IncidentParams(quiet_s=900, match=("subject", "zone")))
    writer = WorkOrderWriter(client, KEYS)
    [wa] = writer.write(_dispatches(merger.push([_a("cam-1", 10, "z1")])))
    [wb] = writer.write(_dispatches(merger.push([_a("cam-2", 0, "z2")])))
    if sign_b:
        WorkOrders(client, KEYS).sign(wb.wo_id, sign_b)
    link = merger.push([_a("cam-3", 5, "z1"), _a("cam-3", 5.5, "z2")])
    out = writer.write(_dispatches(link))
    assert {w.wo_id for w in out} == {wa.wo_id}  # every alert goes to A's order
    assert writer.write(_dispatches(link)) == [(wa.wo_id, "repeat")] * len(link)
    return wa.wo_id, wb.wo_id


def test_linked_incidents_leave_one_open_order_with_every_alert(client: redis.Redis) -> None:
    a, b = _linked_run(client)
    assert list(_open_orders(client)) == [a]
    orders = WorkOrders(client, KEYS)
    survivor, gone = orders.get(a), orders.get(b)
    assert (gone["state"], gone["merged_into"], gone["merged_state"]) == (
        "merged", a, "dispatched",
    )  # fmt: skip
    assert survivor["alert_count"] == "4"
    assert {x["subject"] for x in orders.alerts(a)} == {"cam-1", "cam-2", "cam-3"}
    assert len(orders.alerts(a)) == 4
    assert survivor["incident"] == "in-" + b[3:]  # the earliest alert (B's) names it
    assert [e["action"] for e in orders.audit(b)] == ["created", "merged"]
    absorbed = [e for e in orders.audit(a) if e["action"] == "absorbed"]
    assert [(e["order"], e["order_state"], e["alerts"]) for e in absorbed] == [
        (b, "dispatched", "1")
    ]
    # nobody is asked to sign the absorbed order: out of its queue and its due sets
    assert b not in client.zrange(KEYS.due_sign(), 0, -1)
    assert b not in client.zrange(KEYS.due_resolve(), 0, -1)
    assert [w["id"] for w in orders.queue("town:a|public_security")] == [a]
    # the report counts the incident once: the merged order is part of the survivor
    assert accountability(all_orders(orders))["department"]["public_security"]["orders"] == 1
    feed = [f for _, f in client.xrange(KEYS.feed())]
    assert [(f["event"], f["wo"], f["order"]) for f in feed if "order" in f] == [
        ("merged_into", b, a),
        ("absorbed", a, b),
    ]
    check_invariants(client, KEYS)


def test_the_survivor_takes_over_the_sign_off_of_the_absorbed_order(
    client: redis.Redis,
) -> None:
    a, b = _linked_run(client, sign_b="alice")
    orders = WorkOrders(client, KEYS)
    gone, survivor = orders.get(b), orders.get(a)
    assert (gone["state"], gone["merged_state"], gone["signed_by"]) == (
        "merged", "signed", "alice",
    )  # fmt: skip
    assert (survivor["state"], survivor["signed_by"]) == ("signed", "alice")
    [line] = [e for e in orders.audit(a) if e["action"] == "absorbed"]
    assert (line["state"], line["from"], line["signed_by"]) == ("signed", "dispatched", "alice")
    assert a not in client.zrange(KEYS.due_sign(), 0, -1)
    orders.start(a, "alice")  # the officer goes on with the surviving order
    with pytest.raises(TransitionRefused):
        orders.start(b, "alice")
    check_invariants(client, KEYS)


def test_merge_is_applied_once_and_refuses_itself(client: redis.Redis) -> None:
    a, b = _linked_run(client)
    orders = WorkOrders(client, KEYS)
    assert orders.merge(b, a, incident="in-x") == "merged"  # a repeat: nothing changes
    assert [e["action"] for e in orders.audit(b)] == ["created", "merged"]
    assert len([e for e in orders.audit(a) if e["action"] == "absorbed"]) == 1
    with pytest.raises(UnknownWorkOrder):
        orders.merge("wo-nothing", a, incident="in-x")
    with pytest.raises(Exception, match="into itself"):
        orders.merge(a, a, incident="in-x")


RETRY = RetryPolicy(first_s=0.01, max_s=0.2, give_up_s=20.0)
ROUNDS = 30


def _merge_race(redis_url: str, n: int, a: str, b: str, incident: str) -> dict[str, str]:
    """Officer alice works on ``a``, bob on ``b``, while dispatch merges ``b`` into ``a``
    twice and a killer cuts connections; returns the sign-offs the officers were told of."""
    rng = random.Random(n)
    signed: dict[str, str] = {}
    errors: list[BaseException] = []

    # Clients are made before the killer starts: a cluster client reads the slot map
    # as it is made, and that first read is not what this test races.
    clients = [connect(redis_url, check=False, decode_responses=True) for _ in range(3)]

    def officer(wo_id: str, name: str, seed: int, c: redis.Redis) -> None:
        orders = WorkOrders(c, KEYS, retry=RETRY)
        try:
            for act in random.Random(seed).sample(["sign", "start", "sign"], 3):
                try:
                    if act == "sign":
                        orders.sign(wo_id, name, transition_id=f"{name}-{n}")
                        signed[wo_id] = name
                    else:
                        orders.start(wo_id, name)
                except TransitionRefused:
                    pass
        except BaseException as exc:  # surfaced below, with the round number
            errors.append(exc)

    def dispatcher(c: redis.Redis) -> None:
        orders = WorkOrders(c, KEYS, retry=RETRY)
        try:
            for _ in range(2):  # a redelivery repeats it
                orders.merge(b, a, incident=incident)
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=officer, args=(a, "alice", n, clients[0])),
        threading.Thread(target=officer, args=(b, "bob", n + 1000, clients[1])),
        threading.Thread(target=dispatcher, args=(clients[2],)),
    ]
    race(redis_url, threads, rng)
    for c in clients:
        c.close()
    assert errors == [], f"round {n}: {errors!r}"
    return signed


def test_officers_racing_a_merge_leave_one_consistent_outcome(
    dispatch_redis_url: str, client: redis.Redis
) -> None:
    """Each round: two fresh orders; two officers sign and start them while dispatch
    merges the newer into the older and a killer cuts connections. Whatever wins, the
    absorbed order is merged once, the survivor's audit names it once, a sign-off told
    to an officer is kept, and the layout's invariants hold."""
    writer = WorkOrderWriter(client, KEYS)
    orders = WorkOrders(client, KEYS)
    for n in range(ROUNDS):
        alerts = [_a(f"cam-{n}-a", n * 100 + 10, "z1"), _a(f"cam-{n}-b", n * 100, "z2")]
        for x in alerts:
            x.incident = "in-" + x.id.split("-", 1)[1]
        writer.write([Dispatch(x, ROUTE, 60, 3600) for x in alerts])
        a, b = (order_id_of(x.incident or "") for x in alerts)
        signed = _merge_race(dispatch_redis_url, n, a, b, alerts[1].incident or "")
        gone, survivor = orders.get(b), orders.get(a)
        assert gone["state"] == "merged" and gone["merged_into"] == a
        assert [e["action"] for e in orders.audit(b)].count("merged") == 1
        assert [e["action"] for e in orders.audit(a)].count("absorbed") == 1
        if signed.get(b) == "bob":  # bob's sign-off was applied before the merge
            assert gone["signed_by"] == "bob" and gone["merged_state"] in ("signed", "handling")
            assert survivor["signed_by"] in ("alice", "bob")
            assert survivor["state"] in ("signed", "handling")
        else:
            assert gone["merged_state"] == "dispatched" and not gone.get("signed_by")
        if signed.get(a) == "alice":
            assert survivor["signed_by"] == "alice"
        check_invariants(client, KEYS)
