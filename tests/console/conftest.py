"""Console fixtures: a small recording with work orders of several departments, users."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from starlette.testclient import TestClient

from citywatch.console.app import create_app
from citywatch.console.auth import User, UserStore
from citywatch.console.core import Site
from citywatch.console.settings import ConsoleSettings
from citywatch.console.web import LOGIN_CSRF_COOKIE
from citywatch.detectors.alerts import Alert
from citywatch.flows.config import Config
from citywatch.flows.console_site import site_for
from citywatch.geo.reference import Reference
from citywatch.replay.generator import GenParams, generate
from citywatch.sinks.dispatch import Dispatch, Keys, Route, WorkOrderWriter

# The 20-minute seed-3 recording's injected incidents (how many work orders they become
# depends on incident merging):
#   geofence.enter      -> county:haimen            / airport_construction
#   geofence.enter      -> county:rugao             / agriculture_fisheries
#   sensor.threshold    -> town:chongchuan-wenfeng  / ecology_environment
#   video.intrusion     -> town:haimen-changle      / airport_construction
#   video.construction  -> county:tongzhou          / airport_construction
#   fusion.corroborated -> city (red)               / airport_construction
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


CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "console"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


@pytest.fixture()
def new_page() -> Iterator[Callable[..., Any]]:
    """Pages in Debian's headless Chromium (Playwright; never a browser download):
    ``new_page(locale="en-GB", init_script=None)``, each in its own profile."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(
            f"{CHROMIUM} is missing: install Debian's chromium (make test does, where apt-get "
            "is allowed); these tests never download a browser"
        )
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright is missing: pip install -e '.[dev]'"
    )
    profiles: list[str] = []
    contexts: list[Any] = []
    with sync_api.sync_playwright() as p:

        def make(locale: str = "en-GB", init_script: str | None = None) -> Any:
            profiles.append(tempfile.mkdtemp(prefix="cw-chromium-"))
            ctx = p.chromium.launch_persistent_context(
                profiles[-1],
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_ARGS,
                locale=locale,
                viewport={"width": 1400, "height": 900},
            )
            contexts.append(ctx)
            ctx.set_default_timeout(20_000)
            if init_script:
                ctx.add_init_script(init_script)
            return ctx.new_page()

        try:
            yield make
        finally:
            for ctx in contexts:
                ctx.close()
            for profile in profiles:
                shutil.rmtree(profile, ignore_errors=True)


def shot(page: Any, name: str) -> None:
    """A full-page screenshot into tests/artifacts/console/ (gitignored)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def page_sign_in(page: Any, url: str, name: str, password: str) -> None:
    page.goto(url + "/login")
    page.fill("#username", name)
    page.fill("#password", password)
    page.click("#login-submit")
    page.wait_for_url(url + "/")
    page.wait_for_selector("#live.on")


@pytest.fixture()
def browser_sign_in() -> Callable[[Any, str, str, str], None]:
    return page_sign_in


@pytest.fixture()
def screenshot() -> Callable[[Any, str], None]:
    return shot


@pytest.fixture()
def console_url(redis_url: str, site: Site, users: UserStore) -> Iterator[str]:
    """The console served from a thread over the test Redis, with the test users."""
    from citywatch.console.server import ConsoleThread, free_port

    server = ConsoleThread(site, redis_url, ConsoleSettings(port=free_port(), refresh_s=0.5))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def write_work_order(
    client: redis.Redis,
    keys: Keys,
    *,
    severity: str = "red",
    kind: str = "geofence.enter",
    subject: str = "truck-1",
    zone: str | None = "airport-site",
    lon: float = 121.245,  # the airport site centre
    lat: float = 32.04,
    ts_ms: int = 1_781_528_720_000,
    centre: str = "county:haimen",
    department: str = "airport_construction",
    evidence: dict[str, Any] | None = None,
) -> str:
    """A work order written by the dispatch sink's own writer, as the engine would; its id."""
    alert = Alert.make(
        kind,
        severity,
        subject,
        "gps",
        zone,
        lon,
        lat,
        ts_ms=ts_ms,
        first_ts_ms=ts_ms,
        evidence=evidence or {},
    )
    route = Route(centre, department, "county", centre)
    (written,) = WorkOrderWriter(client, keys).write([Dispatch(alert, route, 300, 3600)])
    return written.wo_id


@pytest.fixture()
def write_order() -> Callable[..., str]:
    return write_work_order
