"""The incident stage inside the flow: the same incidents at any batching and worker count."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from citywatch.detectors.alerts import Alert
from citywatch.flows.config import Config
from citywatch.flows.pipeline import ReferenceHolder
from citywatch.flows.records import AlertBatch
from citywatch.flows.stage_incidents import IncidentLogic
from citywatch.geo.reference import Reference
from citywatch.replay.generator import GenParams, generate
from citywatch.replay.recording import iter_lines

HOUR = 3_600_000
T12 = 1_781_496_000_000  # 2026-06-15T04:00Z, 12:00 local


@pytest.fixture(scope="module")
def lines(tmp_path_factory: pytest.TempPathFactory, reference: Reference) -> list[bytes]:
    rec = tmp_path_factory.mktemp("inc") / "rec.jsonl"
    generate(reference, GenParams(minutes=40, seed=11), rec)
    return list(iter_lines(rec))


def _incidents(dispatches: list) -> tuple[list[tuple[str, str]], dict[str, tuple]]:
    """Each alert's incident, and each incident as it stands at the end (its last
    dispatch): severity, alert count and the queue it is routed to."""
    final: dict[str, tuple] = {}
    for d in dispatches:
        final[d.alert.incident] = (d.incident.severity, d.incident.alert_count, d.route.queue)
    return sorted((d.alert.id, d.alert.incident) for d in dispatches), final


def test_incidents_do_not_depend_on_batching_or_workers(
    lines: list[bytes], run_batched: Callable[[list[bytes], int, int], list]
) -> None:
    base = _incidents(run_batched(lines, 1000, 1))
    assert base[0], "the recording must raise alerts"
    assert all(inc and inc.startswith("in-") for _, inc in base[0])
    assert _incidents(run_batched(lines, 97, 2)) == base
    assert _incidents(run_batched(lines, 5000, 1)) == base


def _alert(t: int) -> Alert:
    return Alert.make(
        "sensor.threshold", "red", "wl-1", "sensor", None, 120.9, 32.0,
        ts_ms=t, first_ts_ms=t, evidence={},
    )  # fmt: skip


def _released(logic: IncidentLogic, values: list[AlertBatch]) -> list[str]:
    out, _ = logic.on_batch(values)
    return [a.id for batch in out for a in batch.alerts]


def test_a_replay_waits_for_the_slowest_shard(config: Config, reference: Reference) -> None:
    # shards 0..6 report 13:00; shard 7 is still at 12:00 (a partition it has not caught
    # up on): an alert at 12:30 is held until shard 7 passes 12:30.
    logic = IncidentLogic(config, ReferenceHolder(reference), None)
    shards = [f"shard-{i:03d}" for i in range(config.flow.shards)]
    alert = _alert(T12 + HOUR // 2)
    ahead = [AlertBatch([], T12 + HOUR, s) for s in shards[:-1]]
    assert _released(logic, [*ahead, AlertBatch([], T12, shards[-1]), AlertBatch([alert])]) == []
    assert _released(logic, ahead) == []
    assert _released(logic, [AlertBatch([], T12 + HOUR, shards[-1])]) == [alert.id]


def test_a_live_run_dispatches_at_once(config: Config, reference: Reference) -> None:
    live = dataclasses.replace(config, flow=dataclasses.replace(config.flow, timers="wall"))
    logic = IncidentLogic(live, ReferenceHolder(reference), None)
    alert = _alert(T12)
    # no shard has reported any watermark yet: the alert leaves with its incident now
    out, _ = logic.on_batch([AlertBatch([alert], T12 - HOUR, "shard-003")])
    batch = next(iter(out))
    assert [a.id for a in batch.alerts] == [alert.id]
    assert batch.views[0].state == "opened"
    assert logic.notify_at() is None  # nothing is held
