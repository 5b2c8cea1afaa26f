"""The whole path on a Redis Cluster: the flow dispatches a recording into a 3-master
cluster, and the console (its blocking and asyncio cluster clients) lists the work
orders, signs one, and its live index follows the change."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from citywatch.console.app import create_app
from citywatch.console.auth import User, UserStore
from citywatch.console.core import Site
from citywatch.console.settings import ConsoleSettings
from citywatch.flows.config import Config
from citywatch.flows.runner import run_recordings
from citywatch.sinks.client import connect
from citywatch.sinks.keys import Keys
from citywatch.sinks.lifecycle import WorkOrders

pytestmark = pytest.mark.redis
SignIn = Callable[[TestClient, str, str], str]


def test_flow_and_console_on_a_cluster(
    redis_cluster_url: str, config: Config, small_recording: Path, site: Site, sign_in: SignIn
) -> None:
    client = connect(redis_cluster_url, decode_responses=True)
    UserStore(client, config.redis.prefix).add(
        User(name="lead", role="leader", centre="*", department="*"), "lead-pw"
    )
    result = run_recordings([small_recording], config, redis_cluster_url, progress=False)
    stored = WorkOrders(client, Keys(config.redis.prefix))
    ids = stored.ids()
    assert sum(result.stats.work_orders.values()) == len(ids) > 0

    app = create_app(site, redis_cluster_url, ConsoleSettings(refresh_s=0.2))
    with TestClient(app, base_url="http://console.test") as web:
        csrf = sign_in(web, "lead", "lead-pw")
        listed = web.get("/api/workorders").json()["orders"]
        assert sorted(o["id"] for o in listed) == sorted(ids)
        target = next(o for o in listed if o["state"] == "dispatched")
        r = web.post(
            f"/api/workorders/{target['id']}/actions/sign",
            json={},
            headers={"X-CSRF-Token": csrf},
        )
        assert r.status_code == 200, r.text
        assert stored.get(target["id"])["state"] == "signed"
        deadline = time.monotonic() + 20  # the index follows the live feed
        state = ""
        while state != "signed" and time.monotonic() < deadline:
            state = web.get(f"/api/workorders/{target['id']}").json()["order"]["state"]
            time.sleep(0.1)
        assert state == "signed"
    client.close()
