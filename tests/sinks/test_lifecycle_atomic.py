"""Every write of one work-order change happens in one atomic, idempotent script call.

The race test: each round, officers on their own connections sign, start, resolve,
close, reopen, return, reassign and escalate the same few orders while a dispatcher
merges new alerts into them and a killer cuts every client connection
(``CLIENT KILL``) between and during calls; after each round every invariant of the
layout is checked against a full scan of the keys. Every test runs on one
redis-server and on a 3-master Redis Cluster.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator

import pytest
import redis
from redis.cluster import RedisCluster

from citywatch.detectors.alerts import Alert
from citywatch.sinks.client import RetryPolicy, connect, is_cluster
from citywatch.sinks.dispatch import Dispatch, Keys, Route, WorkOrderWriter
from citywatch.sinks.escalation import escalate_due
from citywatch.sinks.lifecycle import OPEN_STATES, UNSIGNED, WorkOrderError, WorkOrders

pytestmark = pytest.mark.redis

T0 = 1_781_528_400_000
KEYS = Keys("t")
ROUNDS = 50
CENTRES = ("town:a", "county:x", "city")


def _alert(n: int, site: int, severity: str = "yellow") -> Alert:
    alert = Alert.make(
        "video.intrusion", severity, f"cam-{n}", "video", f"site-{site}", 121.0, 32.0,
        ts_ms=T0 + n * 1000, first_ts_ms=T0 + n * 1000, evidence={},
    )  # fmt: skip
    alert.incident = f"in-site{site}"  # every alert of a site: one incident, one order
    return alert


def _dispatch(n: int, site: int, level: str = "town", severity: str = "yellow") -> Dispatch:
    centre = {"town": "town:a", "county": "county:x", "city": "city"}[level]
    route = Route(centre, "public_security", level, "town:a")
    return Dispatch(_alert(n, site, severity), route, 60, 3600)


@pytest.fixture()
def client(dispatch_redis_url: str) -> Iterator[redis.Redis]:
    c = connect(dispatch_redis_url, check=False, decode_responses=True)
    yield c
    c.close()


def check_invariants(client: redis.Redis, keys: Keys = KEYS) -> None:
    """The layout agrees with itself, read by a full scan."""
    hashes = {
        k.rsplit("{", 1)[1].rstrip("}") for k in client.scan_iter(f"{keys.root}:wo:*", _type="hash")
    }
    assert set(client.zrange(keys.index(), 0, -1)) == hashes, "index != full scan"
    entries: dict[str, list[tuple[str, str]]] = {}
    for qkey in client.scan_iter(keys.queue_pattern()):
        queue = qkey.rsplit("{", 1)[1][:-1]
        for entry_id, fields in client.xrange(qkey):
            entries.setdefault(fields["wo"], []).append((queue, entry_id))
    due_sign = dict(client.zrange(keys.due_sign(), 0, -1, withscores=True))
    due_resolve = dict(client.zrange(keys.due_resolve(), 0, -1, withscores=True))
    for wo_id in hashes:
        wo = client.hgetall(keys.wo(wo_id))
        state = wo["state"]
        assert entries.get(wo_id) == [(wo["queue"], wo["queue_entry"])], (wo_id, state)
        assert wo["queued"] == "1"
        assert (wo_id in due_sign) == (state in UNSIGNED), (wo_id, state)
        if state in UNSIGNED:
            assert due_sign[wo_id] == int(wo["sign_due_ms"])
        has_resolve_sla = state in OPEN_STATES and wo["overdue"] != "1"
        assert (wo_id in due_resolve) == has_resolve_sla, (wo_id, state, wo["overdue"])
        if has_resolve_sla:
            assert due_resolve[wo_id] == int(wo["resolve_due_ms"])
    assert set(due_sign) <= hashes and set(due_resolve) <= hashes
    assert set(entries) <= hashes


def _officer_moves(orders: WorkOrders, wo_id: str, rng: random.Random, name: str) -> None:
    centre = rng.choice(CENTRES)
    level = {"town:a": "town", "county:x": "county", "city": "city"}[centre]
    far = T0 + 10**9  # every deadline has passed: escalation and overdue may apply
    moves: list[Callable[[], object]] = [
        lambda: orders.sign(wo_id, name),
        lambda: orders.start(wo_id, name),
        lambda: orders.resolve(wo_id, name, "done"),
        lambda: orders.close(wo_id, "centre"),
        lambda: orders.reopen(wo_id, "centre", "not done"),
        lambda: orders.return_(wo_id, name, "not ours", to_department=rng.choice(["", "x"])),
        lambda: orders.reassign(wo_id, "centre", centre=centre, level=level),
        lambda: orders.escalate(wo_id, to_centre=centre, level=level, now_ms=far),
        lambda: orders.flag_overdue(wo_id, now_ms=far),
    ]
    rng.choice(moves)()


RETRY = RetryPolicy(first_s=0.01, max_s=0.2, give_up_s=20.0)
SITES = 4  # orders raced at once; each round opens one more and races the newest


def _race_round(redis_url: str, round_no: int, first_alert: int) -> int:
    """Four officers and a dispatcher race while a killer cuts connections; returns how
    many transitions the officers were told were applied."""
    rng = random.Random(round_no)
    done: list[int] = []
    errors: list[BaseException] = []

    # Clients are made before the killer starts: a cluster client reads the slot map
    # as it is made, and that first read is not what this test races.
    clients = [connect(redis_url, check=False, decode_responses=True) for _ in range(6)]

    def officer(seed: int, c: redis.Redis) -> None:
        r = random.Random(seed)
        orders = WorkOrders(c, KEYS, retry=RETRY)
        try:
            for _ in range(6):
                try:
                    site = r.randrange(round_no, round_no + SITES)
                    _officer_moves(orders, f"wo-site{site}", r, f"o{seed}")
                    done.append(1)
                except WorkOrderError:
                    pass
        except BaseException as exc:  # surfaced below, with the round number
            errors.append(exc)

    def dispatcher(c: redis.Redis) -> None:
        writer = WorkOrderWriter(c, KEYS)
        level = rng.choice(["town", "county", "city"])
        sites = range(round_no, round_no + SITES + 1)  # the last one is new
        batch = [_dispatch(first_alert + i, s, level, "orange") for i, s in enumerate(sites)]
        try:
            RETRY.run(lambda: writer.write(batch))
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=officer, args=(round_no * 10 + i, clients[i])) for i in range(4)
    ]
    threads.append(threading.Thread(target=dispatcher, args=(clients[4],)))
    race(redis_url, threads, rng, clients[5])
    for c in clients:
        c.close()
    assert errors == [], f"round {round_no}: {errors!r}"
    return len(done)


def race(
    redis_url: str,
    threads: list[threading.Thread],
    rng: random.Random,
    cut_with: redis.Redis | None = None,
) -> None:
    """Run ``threads`` to the end while a killer cuts every client connection
    (``CLIENT KILL``, on every node of a cluster) at random moments between and
    during their calls."""
    stop = threading.Event()
    c = cut_with if cut_with is not None else connect(redis_url, check=False, decode_responses=True)

    def killer() -> None:
        while not stop.wait(rng.uniform(0.001, 0.01)):
            # On a cluster: every node's clients (the work is on the prefix's node).
            where = {"target_nodes": RedisCluster.ALL_NODES} if is_cluster(c) else {}
            c.client_kill_filter(_type="normal", skipme=True, **where)

    cutter = threading.Thread(target=killer)
    cutter.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    cutter.join()
    if cut_with is None:
        c.close()


def test_racing_officers_and_cut_connections_keep_every_invariant(
    dispatch_redis_url: str, client: redis.Redis
) -> None:
    WorkOrderWriter(client, KEYS).write([_dispatch(n, n) for n in range(SITES)])
    check_invariants(client)
    applied = 0
    for round_no in range(ROUNDS):
        applied += _race_round(dispatch_redis_url, round_no, 100 + 10 * round_no)
        escalate_due(WorkOrders(client, KEYS), lambda c: ("county:x", "county"), now_ms=T0)
        check_invariants(client)
    # Every transition an officer was told of left its audit line, none twice (a
    # return to a department is two transitions: the return and the reassign).
    lifecycle = {"sign", "start", "resolve", "close", "reopen", "return", "reassign"}
    lifecycle |= {"escalate", "overdue"}
    audit = [
        e
        for site in range(ROUNDS + SITES)
        for _, e in client.xrange(KEYS.audit(f"wo-site{site}"))
        if e["action"] in lifecycle
    ]
    onward = sum(1 for e in audit if e["action"] == "reassign" and e["by"].startswith("o"))
    assert applied > 3 * ROUNDS
    assert applied <= len(audit) <= applied + onward


def test_a_transition_repeated_with_its_id_is_applied_once(client: redis.Redis) -> None:
    [w] = WorkOrderWriter(client, KEYS).write([_dispatch(1, 1)])
    orders = WorkOrders(client, KEYS)
    first = orders.sign(w.wo_id, "alice", transition_id="tx-1")
    again = orders.sign(w.wo_id, "alice", transition_id="tx-1")  # the reply was lost; retried
    assert first == again
    assert [e["action"] for e in orders.audit(w.wo_id)] == ["created", "sign"]
    check_invariants(client)


def test_an_order_left_unqueued_by_the_old_two_step_write_is_requeued_once(
    client: redis.Redis,
) -> None:
    """The old writer queued and indexed in a second round trip; a crash between them
    left ``queued=0``. A redelivery indexes it and queues it exactly once."""
    writer = WorkOrderWriter(client, KEYS)
    d = _dispatch(1, 1)
    [w] = writer.write([d])
    client.hset(KEYS.wo(w.wo_id), "queued", "0")  # the entry was written, the flag was not
    client.zrem(KEYS.index(), w.wo_id)  # and the index write was lost
    assert writer.write([d])[0].outcome == "repeat"
    check_invariants(client)
    client.hset(KEYS.wo(w.wo_id), mapping={"queued": "0", "queue_entry": ""})
    client.delete(KEYS.queue("town:a|public_security"))  # nothing reached the queue
    writer.write([d])
    check_invariants(client)
