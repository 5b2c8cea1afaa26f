"""A Redis Cluster failover in the middle of dispatch loses and repeats no work order.

A cluster of 3 masters with one replica each; the dispatch sink writes batches with
``wait_replicas = 1`` while an officer signs the orders as they appear. Half-way, the
master that serves the prefix's slot is killed (SIGKILL); its replica is promoted
(cluster-node-timeout 1 s) and redis-py's cluster client follows it. The killed node
comes back 3 s later (as a supervisor would restart it) and rejoins as the new
master's replica; until then the promoted master has no replica, so ``WAIT`` cannot
be satisfied and the sink holds and retries its batch (an acknowledged write is on
two nodes, or not acknowledged). Afterwards every alert is in its work
order exactly once, every order has exactly one queue entry, and every signature
the officer was told of is there, once::

    batches  0 ........ 14 | kill | 15 retried: failover, then the old master back as
                                   a replica, WAIT satisfied | 16 ... 29
    officer  sign, sign, ... (retried with the same transition id) ...
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import redis
from redis.cluster import RedisCluster

from citywatch.detectors.alerts import Alert
from citywatch.sinks.client import RedisOptions, RetryPolicy, connect
from citywatch.sinks.dispatch import Dispatch, Keys, RedisDispatchSink, Route
from citywatch.sinks.embedded_cluster import EmbeddedRedisCluster
from citywatch.sinks.lifecycle import UNSIGNED, UnknownWorkOrder, WorkOrders

pytestmark = pytest.mark.redis

T0 = 1_781_528_400_000
KEYS = Keys("t")
SITES = 40  # incidents, one work order each
ALERTS = 600  # 15 per incident
BATCH = 20
RETRY = RetryPolicy(first_s=0.05, max_s=0.5, give_up_s=60.0)


def _dispatch(n: int) -> Dispatch:
    site = n % SITES
    alert = Alert.make(
        "video.intrusion", "yellow", f"cam-{n}", "video", f"site-{site}", 121.0, 32.0,
        ts_ms=T0 + n * 1000, first_ts_ms=T0 + n * 1000, evidence={},
    )  # fmt: skip
    alert.incident = f"in-site{site}"  # every alert of a site: one incident, one order
    return Dispatch(alert, Route("town:a", "public_security", "town", "town:a"), 60, 3600)


@pytest.fixture()
def cluster() -> Iterator[EmbeddedRedisCluster]:
    with EmbeddedRedisCluster(masters=3, replicas=1, node_timeout_ms=1000) as c:
        yield c


def test_killing_the_dispatch_master_mid_run_loses_and_repeats_nothing(
    cluster: EmbeddedRedisCluster,
) -> None:
    opts = RedisOptions(url=cluster.url, wait_replicas=1, retry=RETRY)
    sink = RedisDispatchSink(opts, KEYS)
    sink.setup()
    victim = cluster.master_of(KEYS.index())
    dispatches = [_dispatch(n) for n in range(ALERTS)]
    signed: list[str] = []  # the orders the officer was told it signed
    stop = threading.Event()
    errors: list[BaseException] = []
    officer_client = connect(cluster.url, decode_responses=True)

    def officer() -> None:
        orders = WorkOrders(officer_client, KEYS, retry=RETRY, wait_replicas=1)
        try:
            while not stop.is_set() and len(signed) < SITES:
                for site in range(SITES):
                    wo_id = f"wo-site{site}"
                    if wo_id in signed:
                        continue
                    try:
                        orders.sign(wo_id, "alice", transition_id=f"sign-{site}")
                        signed.append(wo_id)
                    except UnknownWorkOrder:
                        pass  # not dispatched yet
                stop.wait(0.02)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    signer = threading.Thread(target=officer)
    signer.start()
    restart = threading.Timer(3.0, victim.start)  # as its supervisor would, with nodes.conf
    for start in range(0, ALERTS, BATCH):
        if start == ALERTS // 2:
            victim.kill()
            restart.start()
        sink.write_batch(dispatches[start : start + BATCH])
    restart.join()
    stop.set()
    signer.join()
    sink.close()
    assert errors == []
    assert sink.retries > 0, "the failover did not reach the sink: nothing was tested"
    cluster.wait_ready()
    assert cluster.master_of(KEYS.index()).port != victim.port

    client: redis.Redis = connect(cluster.url, decode_responses=True)
    orders = WorkOrders(client, KEYS)
    ids = sorted(orders.ids())
    assert ids == sorted(f"wo-site{s}" for s in range(SITES))
    queue_entries: dict[str, int] = {}
    for qkey in client.scan_iter(KEYS.queue_pattern()):
        for _, fields in client.xrange(qkey):
            queue_entries[fields["wo"]] = queue_entries.get(fields["wo"], 0) + 1
    for site in range(SITES):
        wo_id = f"wo-site{site}"
        expected = [d.alert.id for d in dispatches if d.alert.incident == f"in-site{site}"]
        got = [a["id"] for a in orders.alerts(wo_id)]
        assert got == expected, f"{wo_id}: alerts lost or repeated"
        wo = orders.get(wo_id)
        assert int(wo["alert_count"]) == len(expected)
        assert queue_entries[wo_id] == 1
        signs = [e for e in orders.audit(wo_id) if e["action"] == "sign"]
        if wo_id in signed:
            assert wo["state"] not in UNSIGNED and len(signs) == 1, wo_id
        else:
            assert wo["state"] in UNSIGNED and signs == [], wo_id
    client.close()
    officer_client.close()


def test_a_master_that_lost_the_upsert_script_takes_the_batch(redis_cluster_url: str) -> None:
    """A promoted replica, a restarted node or SCRIPT FLUSH: the cluster pipeline's
    EVALSHA answers NOSCRIPT, the writer loads the script again and repeats the batch."""
    from citywatch.sinks.dispatch import WorkOrderWriter

    client = connect(redis_cluster_url, decode_responses=True)
    writer = WorkOrderWriter(client, KEYS)
    writer.write([_dispatch(0)])
    client.execute_command("SCRIPT FLUSH", target_nodes=RedisCluster.ALL_NODES)
    written = writer.write([_dispatch(n) for n in range(1, 2 * SITES)])
    assert [w.outcome for w in written].count("created") == SITES - 1
    assert len(WorkOrders(client, KEYS).ids()) == SITES
    client.close()
