"""The incident stage inside the flow: the same incidents at any batching and worker count."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from citywatch.flows.config import Config
from citywatch.flows.pipeline import ReferenceHolder
from citywatch.geo.reference import Reference
from citywatch.replay.generator import GenParams, generate
from citywatch.replay.recording import iter_lines


@pytest.fixture(scope="module")
def lines(tmp_path_factory: pytest.TempPathFactory, reference: Reference) -> list[bytes]:
    rec = tmp_path_factory.mktemp("inc") / "rec.jsonl"
    generate(reference, GenParams(minutes=40, seed=11), rec)
    return list(iter_lines(rec))


def _incidents(dispatches: list) -> list[tuple[str, str, str, str]]:
    return sorted(
        (d.alert.id, d.alert.incident, d.route.queue, d.incident.severity) for d in dispatches
    )


def test_incidents_do_not_depend_on_batching_or_workers(
    lines: list[bytes], run_batched: Callable[[list[bytes], int, int], list]
) -> None:
    base = _incidents(run_batched(lines, 1000, 1))
    assert base, "the recording must raise alerts"
    assert all(inc and inc.startswith("in-") for _, inc, _, _ in base)
    assert _incidents(run_batched(lines, 97, 2)) == base
    assert _incidents(run_batched(lines, 5000, 1)) == base


def test_the_clock_waits_for_the_slowest_shard(config: Config, reference: Reference) -> None:
    # shards 0..6 report 13:00; shard 7 is still at 12:00 (a partition it has not caught
    # up on): an alert at 12:30 is held until shard 7 passes 12:30 + hold + 2 pushes.
    from citywatch.detectors.alerts import Alert
    from citywatch.flows.detect import WatermarkMark
    from citywatch.flows.stage_incidents import IncidentLogic

    hour = 3_600_000
    t12 = 1_781_496_000_000  # 2026-06-15T04:00Z, 12:00 local
    logic = IncidentLogic(config, ReferenceHolder(reference), None)
    shards = [f"shard-{i:03d}" for i in range(config.flow.shards)]
    alert = Alert.make(
        "sensor.threshold",
        "red",
        "wl-1",
        "sensor",
        None,
        120.9,
        32.0,
        ts_ms=t12 + hour // 2,
        first_ts_ms=t12 + hour // 2,
        evidence={},
    )

    def released(values: list) -> list:
        out, _ = logic.on_batch(values)
        return [a.id for batch in out for a in batch]

    ahead = [WatermarkMark(s, t12 + hour) for s in shards[:-1]]
    assert released([*ahead, WatermarkMark(shards[-1], t12), [alert]]) == []
    for _ in range(3):
        assert released([WatermarkMark(s, t12 + hour) for s in shards[:-1]]) == []
    caught_up = [WatermarkMark(shards[-1], t12 + hour)]
    got = [released(caught_up) for _ in range(3)]
    assert sum(got, []) == [alert.id]
