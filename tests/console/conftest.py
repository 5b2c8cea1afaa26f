"""Console fixtures: a small recording with work orders of several departments, users."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from starlette.testclient import TestClient

from citywatch.console.app import create_app
from citywatch.console.auth import User, UserStore
from citywatch.console.core import Site
from citywatch.console.settings import ConsoleSettings
from citywatch.console.web import LOGIN_CSRF_COOKIE
from citywatch.flows.commands.console import site_for
from citywatch.flows.config import Config
from citywatch.geo.reference import Reference
from citywatch.replay.generator import GenParams, generate

# The 20-minute seed-3 recording's injected incidents (how many work orders they become
# depends on incident merging):
#   geofence.enter   -> county:haimen            / airport_construction
#   geofence.enter   -> county:rugao             / agriculture_fisheries
#   sensor.threshold -> town:chongchuan-tangzha  / ecology_environment
#   video.intrusion  -> town:haimen-changle      / airport_construction
RECORDING_MINUTES = 20
RECORDING_SEED = 3

# name, password, role, centre, department
USERS = [
    ("lead", "lead-pw", "leader", "*", "*"),
    ("air", "air-pw", "officer", "*", "airport_construction"),
    ("fish", "fish-pw", "officer", "county:rugao", "agriculture_fisheries"),
]


@pytest.fixture(scope="session")
def small_recording(tmp_path_factory: pytest.TempPathFactory, reference: Reference) -> Path:
    out = tmp_path_factory.mktemp("console") / "recording.jsonl"
    generate(
        reference,
        GenParams(minutes=RECORDING_MINUTES, seed=RECORDING_SEED),
        out,
        out.with_suffix(".truth.json"),
    )
    return out


@pytest.fixture()
def users(redis_url: str, config: Config) -> UserStore:
    store = UserStore(redis.Redis.from_url(redis_url), config.redis.prefix)
    for name, pw, role, centre, dept in USERS:
        store.add(User(name=name, role=role, centre=centre, department=dept), pw)
    return store


@pytest.fixture(scope="session")
def site(config: Config) -> Site:
    """The console's view of the default configuration."""
    return site_for(config)


def login(client: TestClient, name: str, password: str) -> str:
    """Signs in like the login page does; returns the session's CSRF token."""
    assert client.get("/login").status_code == 200
    r = client.post(
        "/api/login",
        json={"username": name, "password": password},
        headers={"X-CSRF-Token": client.cookies[LOGIN_CSRF_COOKIE]},
    )
    assert r.status_code == 200, r.text
    return str(r.json()["csrf"])


@pytest.fixture()
def sign_in() -> Callable[[TestClient, str, str], str]:
    return login


@pytest.fixture()
def make_client(
    redis_url: str, site: Site, users: UserStore
) -> Iterator[Callable[..., TestClient]]:
    """Console test clients over an empty Redis with the test users: ``make_client(
    base_url=..., addr=client address, **settings)``; each is closed at the end of the test."""
    opened: list[TestClient] = []

    def make(
        base_url: str = "http://console.test", addr: str = "testclient", **settings: object
    ) -> TestClient:
        app = create_app(site, redis_url, ConsoleSettings(**settings))  # type: ignore[arg-type]
        client = TestClient(app, base_url=base_url, client=(addr, 50000))
        opened.append(client.__enter__())
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)
