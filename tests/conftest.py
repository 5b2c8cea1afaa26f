"""Shared fixtures: a real redis-server per test session, a clean database per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from citywatch.flows.config import Config, load_config
from citywatch.geo.reference import Reference
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
