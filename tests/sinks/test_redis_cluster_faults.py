"""Redis Cluster faults around a whole replay: a seed node down at start, a master lost
mid-run, the whole cluster down at start. Same checks as the single-node faults of
``test_redis_faults.py``: the run waits and resumes, no work order is lost or repeated.

One cluster of 3 masters with a replica each (cluster-node-timeout 1 s) for the module::

    seed down     stop node 0 (a master; its replica is promoted) → start with
                  redis+cluster://node0,node1,... → replay as on one node
    failover      replay paced x150 | ~1.5 s: SIGKILL the master of the prefix's slot,
                  replica promoted, old master back 3 s later as its replica
    cluster down  every node stopped → wait_for_redis waits → nodes back (nodes.conf)
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from citywatch.flows.config import Config
from citywatch.flows.runner import check_redis, run_recordings
from citywatch.geo.reference import Reference
from citywatch.replay.generator import GenParams, generate
from citywatch.sinks.client import DispatchError, RedisOptions, connect, wait_for_redis
from citywatch.sinks.embedded_cluster import EmbeddedRedisCluster
from citywatch.sinks.embedded_redis import EmbeddedRedis
from citywatch.sinks.keys import Keys
from citywatch.sinks.queues import comparable_orders

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def cluster() -> Iterator[EmbeddedRedisCluster]:
    with EmbeddedRedisCluster(masters=3, replicas=1, node_timeout_ms=1000) as c:
        yield c


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory, reference: Reference) -> Path:
    path = tmp_path_factory.mktemp("cluster-faults") / "rec.jsonl"
    generate(reference, GenParams(minutes=25, scale="small", seed=3), path)
    return path


@pytest.fixture(scope="module")
def clean(config: Config, redis_server: EmbeddedRedis, recording: Path) -> dict[str, object]:
    """The work orders of a run on one node without faults: the reference."""
    url = redis_server.url.rsplit("/", 1)[0] + "/8"
    redis.Redis.from_url(url).flushdb()
    run_recordings([recording], config, url, progress=False)
    client = redis.Redis.from_url(url)
    try:
        orders = comparable_orders(client, Keys("cw"))
    finally:
        client.close()
    assert orders, "the recording must create work orders"
    return orders


def _seeds(nodes: list[EmbeddedRedis]) -> str:
    return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in nodes)


def _orders(url: str) -> dict[str, object]:
    client = connect(url)
    try:
        return comparable_orders(client, Keys("cw"))
    finally:
        client.close()


def _settle(cluster: EmbeddedRedisCluster) -> None:
    """Every node up and the cluster whole again, then empty, for the next test."""
    for node in cluster.nodes:
        if node._proc is None:
            node.start()
    cluster.wait_ready()
    cluster.flush()


def test_a_start_survives_its_first_seed_node_down(
    cluster: EmbeddedRedisCluster, config: Config, recording: Path, clean: dict[str, object]
) -> None:
    _settle(cluster)
    first = cluster.nodes[0]
    seeds = _seeds(cluster.nodes[:3])
    first.stop()
    try:
        cluster.wait_ready()  # its replica took its slots over
        with pytest.raises(DispatchError, match="Redis Cluster"):
            wait_for_redis(RedisOptions(url=f"redis+cluster://127.0.0.1:{first.port}"), 0)
        check_redis(config, seeds, 0)  # what `run` does at start: the next seed answers
        run_recordings([recording], config, seeds, progress=False)
        assert _orders(seeds) == clean
    finally:
        _settle(cluster)


def test_a_master_lost_mid_run_loses_and_repeats_no_work_order(
    cluster: EmbeddedRedisCluster, config: Config, recording: Path, clean: dict[str, object]
) -> None:
    _settle(cluster)
    url = _seeds(cluster.live_nodes())
    victim = cluster.master_of(Keys("cw").index())
    # An acknowledged write is on the replica too (WAIT 1), so a failover keeps it.
    cfg = dataclasses.replace(
        config,
        redis=dataclasses.replace(config.redis, retry_backoff_max_s=0.5, wait_replicas=1),
    )
    killed = threading.Event()

    def cut() -> None:
        time.sleep(1.5)
        victim.kill()
        killed.set()
        time.sleep(3.0)
        victim.start()  # as its supervisor would: it rejoins as the new master's replica

    cutter = threading.Thread(target=cut)
    cutter.start()
    try:
        result = run_recordings([recording], cfg, url, speed=150, progress=False)
    finally:
        cutter.join()
    assert killed.is_set() and result.stats.events_in > 0
    cluster.wait_ready()
    assert cluster.master_of(Keys("cw").index()).port != victim.port, "no failover happened"
    assert _orders(url) == clean
    _settle(cluster)


def test_a_start_waits_for_a_cluster_that_is_down(cluster: EmbeddedRedisCluster) -> None:
    _settle(cluster)
    url = _seeds(cluster.nodes)
    for node in cluster.nodes:
        node.kill()
    said: list[str] = []
    with pytest.raises(DispatchError, match=r"--redis-wait 1\)"):
        wait_for_redis(RedisOptions(url=url), 1.0, on_wait=said.append)
    assert said and all("not reachable" in s for s in said)
    later = threading.Timer(1.5, lambda: [n.start() for n in cluster.nodes])
    later.start()
    try:
        said.clear()
        client = wait_for_redis(RedisOptions(url=url), None, on_wait=said.append)
        cluster.wait_ready()
        assert client.set("{cw}:probe", b"1") and said
        client.close()
    finally:
        later.join()
        _settle(cluster)
