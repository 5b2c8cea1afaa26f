"""The sinks package split by job: no import circle, and the WorkOrder record is the hash."""

from __future__ import annotations

import ast
import pkgutil
from pathlib import Path

import pytest
import redis

import citywatch.sinks
from citywatch.detectors.alerts import Alert
from citywatch.sinks.dispatch import Dispatch, Keys, Route, WorkOrder, WorkOrderWriter
from citywatch.sinks.lifecycle import WorkOrders

T0 = 1_781_528_400_000


def _imports_of(module: str) -> set[str]:
    """The sinks modules that ``module`` imports (a subpackage counts as one module: its
    own imports and those of every module inside it)."""
    base = Path(citywatch.sinks.__path__[0]) / module.rsplit(".", 1)[1]
    files = sorted(base.rglob("*.py")) if base.is_dir() else [base.with_suffix(".py")]
    out: set[str] = set()
    for path in files:
        out |= _imports_in(path)
    # A module inside the subpackage is the subpackage itself.
    return {n if n.count(".") < 3 else ".".join(n.split(".")[:3]) for n in out} - {module}


def _imports_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "citywatch.sinks":
                out.update(f"citywatch.sinks.{a.name}" for a in node.names)
            elif node.module.startswith("citywatch.sinks."):
                out.add(node.module)
    return out


def test_sinks_modules_import_one_way() -> None:
    """No module of the package reaches itself through its imports (TYPE_CHECKING ones too)."""
    names = [f"citywatch.sinks.{m.name}" for m in pkgutil.iter_modules(citywatch.sinks.__path__)]
    graph = {n: _imports_of(n) & set(names) for n in names}

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        for nxt in graph[start]:
            if nxt == target or (nxt not in seen and reaches(nxt, target, seen | {nxt})):
                return True
        return False

    circles = [n for n in names if reaches(n, n, {n})]
    assert circles == []


@pytest.mark.redis
def test_work_order_record_round_trips_the_stored_hash(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    keys = Keys("t")
    alert = Alert.make(
        "video.intrusion", "orange", "cam-1", "video", "site-1", 121.01, 32.0,
        ts_ms=T0, first_ts_ms=T0, evidence={},
    )  # fmt: skip
    d = Dispatch(alert, Route("town:a", "public_security", "town", "town:a"), 60, 3600)
    [written] = WorkOrderWriter(client, keys).write([d])
    orders = WorkOrders(client, keys)
    orders.sign(written.wo_id, "alice", now_ms=T0 + 5)
    stored = orders.get(written.wo_id)
    record = orders.record(written.wo_id)
    assert record.to_hash() == stored
    assert (record.state, record.queued, record.detail("signed_by")) == ("signed", True, "alice")
    assert (record.lon, record.subjects, record.zone) == (121.01, ("cam-1",), "site-1")
    fresh = WorkOrder.new(d, now_ms=T0).to_hash()
    assert set(fresh) | {"queue_entry", "signed_by", "signed_ms"} == set(stored)
    client.close()
