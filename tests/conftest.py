"""Shared fixtures: a real redis-server per test session, a clean database per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from flows.config import Config, load_config
from geo.reference import Reference
from sinks.embedded_redis import EmbeddedRedis

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
