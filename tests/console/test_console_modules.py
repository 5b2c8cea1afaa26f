"""The console's structure: one handler module per resource, usable alone, and no
import of the engine's flows (the command that starts the console passes the city in)."""

from __future__ import annotations

import io
import subprocess
import sys
import wave
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from citywatch.console import api_orders
from citywatch.console.auth import UserStore
from citywatch.console.core import ConsoleApp, Site
from citywatch.console.settings import ConsoleSettings
from citywatch.console.web import SESSION_COOKIE

pytestmark = pytest.mark.redis


def test_the_console_does_not_import_the_flows() -> None:
    code = (
        "import sys, citywatch.console.app, citywatch.console.server, citywatch.console.demo\n"
        "print(sorted(m for m in sys.modules if m.startswith('citywatch.flows')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.fixture()
def orders_only(redis_url: str, site: Site, users: UserStore) -> Iterator[TestClient]:
    """The work-order routes alone, over a ConsoleApp, without the rest of the console."""
    con = ConsoleApp.open(site, redis_url, ConsoleSettings())
    con.index.ready.set()  # an empty index, never started: nothing to follow
    app = Starlette(routes=api_orders.routes(con))
    with TestClient(app, base_url="http://console.test") as client:
        yield client
    con.sync.close()


def test_a_handler_module_serves_alone(orders_only: TestClient, users: UserStore) -> None:
    assert orders_only.get("/api/workorders").status_code == 401
    user = users.get("fish")
    assert user is not None
    token, _ = users.open_session(user)
    orders_only.cookies.set(SESSION_COOKIE, token)
    assert orders_only.get("/api/workorders").json() == {"orders": []}
    meta = orders_only.get("/api/meta").json()
    assert meta["departments"] == ["agriculture_fisheries"] and "close" not in meta["actions"]
    assert orders_only.get("/api/workorders/wo-nope").status_code == 404
    assert orders_only.get("/api/overview").status_code == 404  # another module's route


def test_the_bundled_chime_is_the_generated_one() -> None:
    from citywatch.console.chime import chime_wav
    from citywatch.console.pages import STATIC

    bundled = (STATIC / "chime.wav").read_bytes()
    assert bundled == chime_wav(), "regenerate: python -m citywatch.console.chime " + str(
        STATIC / "chime.wav"
    )
    with wave.open(io.BytesIO(bundled)) as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        assert 0.3 < w.getnframes() / w.getframerate() < 1.0
