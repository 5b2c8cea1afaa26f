"""``flows/placement.py`` predicts where Bytewax runs a key: checked against Bytewax itself
(a stateful step whose output records the worker it ran on), for 2 and 3 workers."""

from __future__ import annotations

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.run import cli_main
from bytewax.testing import TestingSource

from citywatch.flows.placement import replay_fixed, shard_names, worker_of


class _Where(StatelessSinkPartition[str]):
    def __init__(self, seen: dict[str, int], worker: int) -> None:
        self.seen, self.worker = seen, worker

    def write_batch(self, items: list[str]) -> None:
        for key in items:
            self.seen[key] = self.worker


class _WhereSink(DynamicSink[str]):
    def __init__(self, seen: dict[str, int]) -> None:
        self.seen = seen

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Where:
        return _Where(self.seen, worker_index)


def _bytewax_places(keys: list[str], workers: int) -> dict[str, int]:
    seen: dict[str, int] = {}
    flow = Dataflow("where")
    keyed = op.key_on("key", op.input("in", flow, TestingSource(keys)), lambda k: k)
    ran = op.stateful_map("state", keyed, lambda state, k: (state, k))
    op.output("out", op.key_rm("unkey", ran), _WhereSink(seen))
    cli_main(flow, workers_per_process=workers)
    return seen


@pytest.mark.parametrize("workers", [2, 3])
def test_worker_of_is_where_bytewax_runs_the_key(workers: int) -> None:
    fixed = replay_fixed(["recording"], peer=True)
    keys = [*shard_names(8, workers, fixed), *[f"shard-{i:03d}" for i in range(12)]]
    keys += ["recording", "peer", "fusion", "incidents", "citywatch.gps#3", "x" * 40]
    places = _bytewax_places(keys, workers)
    assert places == {k: worker_of(k, workers) for k in keys}
    assert len(set(places.values())) == workers  # the keys do spread: not vacuous


def test_shard_names_even_out_the_workers() -> None:
    fixed = replay_fixed(["recording"], peer=True)
    names = shard_names(8, 2, fixed)
    assert len(set(names)) == 8
    load = [0.0, 0.0]
    for key, weight in fixed.items():
        load[worker_of(key, 2)] += weight
    for name in names:
        load[worker_of(name, 2)] += 1
    assert abs(load[0] - load[1]) <= 1.0
    assert shard_names(8, 1, fixed) == [f"shard-{i:03d}" for i in range(8)]
