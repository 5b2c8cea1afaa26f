"""``citywatch redis migrate-keys`` moves an earlier version's keys (``cw:...``) to the
hash-tagged layout (``{cw}:...``), on one server and on a Redis Cluster, and the work
orders carry on (state, audit, queue consumer group) as if nothing happened."""

from __future__ import annotations

import pytest
import redis

from citywatch.detectors.alerts import Alert
from citywatch.flows.cli import main
from citywatch.sinks.client import connect
from citywatch.sinks.dispatch import GROUP, Dispatch, Keys, Route, WorkOrderWriter
from citywatch.sinks.lifecycle import WorkOrders
from citywatch.sinks.migrate import migrate_keys

pytestmark = pytest.mark.redis

T0 = 1_781_528_400_000
KEYS = Keys("cw")


def _dispatch(n: int) -> Dispatch:
    alert = Alert.make(
        "video.intrusion", "yellow", f"cam-{n}", "video", f"site-{n % 3}", 121.0, 32.0,
        ts_ms=T0 + n * 1000, first_ts_ms=T0 + n * 1000, evidence={},
    )  # fmt: skip
    alert.incident = f"in-site{n % 3}"
    return Dispatch(alert, Route("town:a", "public_security", "town", "town:a"), 60, 3600)


def _as_legacy(client: redis.Redis) -> int:
    """Rename every ``{cw}:...`` key back to the earlier ``cw:...`` (what an older
    version left behind); returns how many."""
    moved = 0
    for key in list(client.scan_iter(match="{cw}:*")):
        name = key.decode()
        old = "cw" + name[len("{cw}") :]
        client.restore(old, 0, client.dump(key))  # type: ignore[arg-type]
        client.delete(key)
        moved += 1
    return moved


def test_migrate_keys_moves_an_old_layout_and_work_goes_on(
    dispatch_redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = connect(dispatch_redis_url)
    text = connect(dispatch_redis_url, decode_responses=True)
    WorkOrderWriter(text, KEYS).write([_dispatch(n) for n in range(9)])
    orders = WorkOrders(text, KEYS)
    orders.ensure_group("town:a|public_security")
    orders.sign("wo-site0", "alice")
    before = {wo: (orders.get(wo), orders.audit(wo), orders.alerts(wo)) for wo in orders.ids()}
    legacy = _as_legacy(raw)
    assert legacy > 10 and orders.ids() == []

    assert main(["redis", "migrate-keys", "--dry-run", "--redis-url", dispatch_redis_url]) == 0
    assert f"would move {legacy} keys from cw:* to {{cw}}:*" in capsys.readouterr().out
    assert orders.ids() == []  # a dry run changes nothing
    assert main(["redis", "migrate-keys", "--redis-url", dispatch_redis_url]) == 0
    assert f"moved {legacy} keys" in capsys.readouterr().out

    after = {wo: (orders.get(wo), orders.audit(wo), orders.alerts(wo)) for wo in orders.ids()}
    assert after == before
    assert list(raw.scan_iter(match="cw:*")) == []
    groups = text.xinfo_groups(KEYS.queue("town:a|public_security"))
    assert [g["name"] for g in groups] == [GROUP]
    orders.sign("wo-site1", "bob")  # the scripts work on the moved keys
    assert orders.get("wo-site1")["state"] == "signed"
    assert migrate_keys(raw, "cw").moved == []  # a second run finds nothing


def test_a_key_whose_new_name_exists_is_left_alone(dispatch_redis_url: str) -> None:
    raw = connect(dispatch_redis_url)
    raw.set("cw:console:note", b"old")
    raw.set("{cw}:console:note", b"new")
    raw.set("cw:other", b"x")
    res = migrate_keys(raw, "cw")
    assert res.conflicts == ["cw:console:note"] and res.moved == ["cw:other"]
    assert raw.get("{cw}:console:note") == b"new" and raw.get("{cw}:other") == b"x"
