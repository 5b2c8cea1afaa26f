"""The lanes' fast path changes nothing: batch by batch, the same alerts as the row-wise
scan of every lane that moved on.

Each batch, a shard hears the clocks of every source of its partition (a city has
thousands of gateways) and its absence and windowed detectors pop what is due in the
lanes that moved on. The fast path (:class:`citywatch.detectors.lanes.Moved`) looks only
at the lanes a detector has something pending in, found once per batch; the reference
walks every lane that moved on, as a plain list, the way it always did. A generated
recording with field noise (skewed and stepped gateway clocks, reordered and late fixes)
goes through the watermark step and the shards as the flow wires them, in both ways:
every batch must raise the same alerts in the same order, and the detectors' state
must end the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from citywatch.benchmarks.shard_cpu import batches, run_shards
from citywatch.detectors.lanes import LaneClocks, Moved
from citywatch.detectors.state import encode
from citywatch.flows.config import Config
from citywatch.geo.reference import Reference
from citywatch.replay.generator import GenParams, generate

BATCH = 2_000
SHARDS = 4


@pytest.fixture(scope="module")
def noisy_recording(tmp_path_factory: pytest.TempPathFactory, reference: Reference) -> Path:
    d = tmp_path_factory.mktemp("lanes")
    rec = d / "rec.jsonl"
    params = GenParams(minutes=55, seed=29, scale="medium", noise=True, skewed_gateways_pct=20.0)
    generate(reference, params, rec, d / "truth.json")
    return rec


def run(rec: Path, config: Config, reference: Reference) -> tuple[list[list[str]], list[bytes]]:
    """Each batch's alerts (kind, id, ts) in the order the shards raised them, and each
    shard's state at the end."""
    raised, suites = run_shards(batches(rec, reference, BATCH), config, reference, SHARDS)
    alerts = [[f"{a.kind} {a.id} {a.ts_ms}" for a in out] for out in raised]
    return alerts, [encode(suites[name].state()) for name in sorted(suites)]


def test_lanes_with_pending_work_give_the_alerts_of_a_scan_of_every_lane(
    noisy_recording: Path,
    config: Config,
    reference: Reference,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    looked: list[int] = []
    among = Moved.among

    def counted(self: Moved, names: Iterable[str]) -> list[tuple[str, int]]:
        found = among(self, names)
        looked.append(len(self) - len(found))
        return found

    monkeypatch.setattr(Moved, "among", counted)
    fast, fast_states = run(noisy_recording, config, reference)
    # The fast path was taken, and skipped lanes with nothing pending in them.
    assert len(looked) >= 100
    assert sum(looked) >= 2 * len(looked)
    update = LaneClocks.update

    def scan_all(self: LaneClocks, partition: str, clocks: dict[str, int], cap: int) -> list:
        return list(update(self, partition, clocks, cap))  # a plain list: every lane

    monkeypatch.setattr(LaneClocks, "update", scan_all)
    rows, row_states = run(noisy_recording, config, reference)
    kinds = {line.split()[0] for batch in fast for line in batch}
    # Absence kinds, judged on their lanes' clocks, are there.
    assert {"sensor.offline", "track.gap"} <= kinds
    assert sum(map(len, fast)) >= 10
    assert fast == rows
    assert fast_states == row_states
