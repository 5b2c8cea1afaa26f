"""The lanes' fast path changes nothing: batch by batch, the same alerts as the row-wise
scan of every lane that moved on.

Each batch, a shard hears the clocks of every source of its partition (a city has
thousands of gateways) and its absence and windowed detectors pop what is due in the
lanes that moved on. When many lanes move on at once, the fast path
(``_ByLane._pop_lazy``) looks only at the lanes with something due, found from the heap
of due times; the reference walks every lane that moved on, the way it always did. A generated
recording with field noise (skewed and stepped gateway clocks, reordered and late fixes)
goes through the watermark step and the shards as the flow wires them, in both ways:
every batch must raise the same alerts in the same order
(``tests/detectors/test_lanes_lazy.py`` checks the pops themselves against the walk's).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from citywatch.benchmarks.shard_cpu import batches, run_shards
from citywatch.detectors import lanes
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


def run(rec: Path, config: Config, reference: Reference) -> list[list[str]]:
    """Each batch's alerts (kind, id, ts) in the order the shards raised them."""
    raised, _suites = run_shards(batches(rec, reference, BATCH), config, reference, SHARDS)
    return [[f"{a.kind} {a.id} {a.ts_ms}" for a in out] for out in raised]


def test_lanes_with_pending_work_give_the_alerts_of_a_scan_of_every_lane(
    noisy_recording: Path,
    config: Config,
    reference: Reference,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lazy: list[int] = []
    pop_lazy = lanes._ByLane._pop_lazy

    def counted(self: Any, now_ms: int, moved: Any, before: int, out: list[Any]) -> None:
        n = len(out)
        pop_lazy(self, now_ms, moved, before, out)
        lazy.append(len(out) - n)  # items it found due

    monkeypatch.setattr(lanes._ByLane, "_pop_lazy", counted)
    # A medium recording's partitions move 20-29 lanes on a batch: below the threshold
    # that takes the heap, so lower it (a city's partitions move ~1,800).
    monkeypatch.setattr(lanes, "LAZY_LANES", 4)
    fast = run(noisy_recording, config, reference)
    # The fast path was taken, and found items due in some calls but not in others.
    assert len(lazy) >= 100
    assert 0 < sum(1 for n in lazy if n) < len(lazy)
    monkeypatch.setattr(lanes, "LAZY_LANES", 10**9)  # every lane walked, always
    rows = run(noisy_recording, config, reference)
    kinds = {line.split()[0] for batch in fast for line in batch}
    # Absence kinds, judged on their lanes' clocks, are there.
    assert {"sensor.offline", "track.gap"} <= kinds
    assert sum(map(len, fast)) >= 10
    assert fast == rows
