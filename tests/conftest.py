"""Shared fixtures: a real redis-server and a real 3-master Redis Cluster per test session
(started on first use), a clean database per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from citywatch.flows.config import Config, load_config
from citywatch.geo.reference import Reference
from citywatch.sinks.embedded_cluster import EmbeddedRedisCluster
from citywatch.sinks.embedded_redis import EmbeddedRedis

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    """One real redis-server (Debian's, started on a free port) for the whole session."""
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture()
def redis_url(redis_server: EmbeddedRedis) -> Iterator[str]:
    """The server's URL, with the database flushed before each test."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    yield redis_server.url


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[EmbeddedRedisCluster]:
    """A real Redis Cluster of 3 masters (Debian's redis-server, ``--cluster-enabled
    yes``, joined by ``redis-cli --cluster create``) for the whole session."""
    with EmbeddedRedisCluster(masters=3) as cluster:
        yield cluster


@pytest.fixture()
def redis_cluster_url(redis_cluster: EmbeddedRedisCluster) -> Iterator[str]:
    """The cluster's ``redis+cluster://`` URL, every master flushed before each test."""
    redis_cluster.flush()
    yield redis_cluster.url


@pytest.fixture(params=["node", "cluster"])
def dispatch_redis_url(request: pytest.FixtureRequest) -> str:
    """A flushed single server, then a flushed Redis Cluster: the dispatch, lifecycle
    and race tests take this to run against both topologies."""
    name = "redis_url" if request.param == "node" else "redis_cluster_url"
    return str(request.getfixturevalue(name))


@pytest.fixture(scope="session")
def config() -> Config:
    return load_config()


@pytest.fixture(scope="session")
def reference(config: Config) -> Reference:
    d = config.data
    return Reference.load(d.zones, d.jurisdictions, d.sensors, d.cameras, config.zone_kinds)


@pytest.fixture()
def kafka_bootstrap() -> Iterator[str]:
    """A fresh librdkafka mock cluster (3 brokers) and its bootstrap address.

    The cluster lives inside this fixture's producer, so it stays up exactly as long
    as the test; subprocesses connect to the address. It keeps only ~10 k messages
    per partition and topics auto-create (4 partitions) on first produce.
    """
    from confluent_kafka import Producer

    mock = Producer({"test.mock.num.brokers": 3, "log_level": 2})
    md = mock.list_topics(timeout=10)
    yield ",".join(f"{b.host}:{b.port}" for b in md.brokers.values())
    mock.flush(5)
    del mock
