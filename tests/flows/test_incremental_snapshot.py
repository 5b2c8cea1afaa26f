"""A shard's incremental recovery snapshot holds exactly the state a full one would.

The whole detector suite of one shard (every detector, the teleport gate, the
span reporter) is fed a generated recording with injected incidents and field
noise, encoding changed records between batches as a live shard does
(``precode``). At several points its snapshot is restored into a suite built
fresh; the restored state must decode to the same records as the fed suite's,
and both must then raise byte-identical alerts on the rest of the input::

    batches  0 ........ k ......................... end
    fed      |==== precode/snapshot ... ===========|  alerts A
    restored          r (snapshot at k) ===========|  alerts B == A[after k]
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from citywatch.detectors.alerts import Alert
from citywatch.detectors.base import same_state
from citywatch.detectors.events import Event, parse_batch
from citywatch.detectors.state import decode
from citywatch.flows.config import Config
from citywatch.flows.detect import DetectorSuite
from citywatch.flows.recovery import restore, snapshot
from citywatch.geo.reference import Reference
from citywatch.replay.generator import GenParams, generate

BATCH = 200


@pytest.fixture(scope="module")
def batches(tmp_path_factory: pytest.TempPathFactory, reference: Reference) -> list[list[Event]]:
    path = tmp_path_factory.mktemp("incr") / "rec.jsonl"
    generate(reference, GenParams(minutes=30, seed=11, noise=True), path)
    with Path(path).open("rb") as f:
        events, _bad = parse_batch(line.rstrip(b"\n") for line in f.readlines()[1:])
    reference.annotate(events)
    return [events[i : i + BATCH] for i in range(0, len(events), BATCH)]


def _feed(
    suite: DetectorSuite, batches: list[list[Event]], top: int, out: list[Alert], pre: bool
) -> int:
    for batch in batches:
        top = max(top, sorted(ev.ts_ms for ev in batch)[len(batch) // 2])
        suite.process(batch, top - 30_000, out)
        if pre:
            suite.precode(len(batch))  # some, not all: the snapshot encodes the rest
    return top


def _same(a: DetectorSuite, b: DetectorSuite) -> bool:
    return same_state(decode(snapshot(a)), decode(snapshot(b)))


@pytest.mark.parametrize("at", [0.2, 0.4, 0.6], ids=["early", "middle", "later"])
def test_a_restored_incremental_snapshot_goes_on_exactly_as_the_fed_suite(
    config: Config, reference: Reference, batches: list[list[Event]], at: float
) -> None:
    catalog = reference.zone_catalog()
    fed = DetectorSuite.from_config(config, catalog)
    cut = int(len(batches) * at)
    out: list[Alert] = []
    top = -(2**62)
    # Earlier snapshots make the last one incremental: most records come from them.
    for lo in range(0, cut, 25):
        top = _feed(fed, batches[lo : min(lo + 25, cut)], top, out, pre=True)
        snapshot(fed)
    blob = snapshot(fed)
    back = restore("detect", DetectorSuite.from_config(config, catalog), blob)
    assert fed.live_keys() > 100
    assert _same(back, fed)
    after_fed: list[Alert] = []
    after_back: list[Alert] = []
    _feed(fed, batches[cut:], top, after_fed, pre=True)
    _feed(back, batches[cut:], top, after_back, pre=False)
    assert after_fed, "the rest of the input raises alerts"
    assert pickle.dumps(after_back) == pickle.dumps(after_fed)
    assert _same(back, fed)


def test_a_live_shard_encodes_ahead_once_a_wall_second_whatever_its_tick(
    config: Config, reference: Reference
) -> None:
    """The early encoding runs on the first wall tick of each second: with ticks of
    100 ms it ran on every tick, ten times the work (13 % of the flow at 10,000 ev/s)."""
    from datetime import UTC, datetime, timedelta

    from citywatch.flows.detect import ShardLogic

    catalog = reference.zone_catalog()
    clock = [datetime(2026, 12, 1, tzinfo=UTC)]
    logic = ShardLogic(
        lambda: DetectorSuite.from_config(config, catalog),
        lambda: catalog,
        None,
        timers="wall",
        tick_s=0.1,
        now=lambda: clock[0],
    )
    encoded_at: list[datetime] = []
    precode = logic.suite.precode

    def counting(max_keys: int) -> int:
        encoded_at.append(clock[0])
        return precode(max_keys)

    logic.suite.precode = counting  # type: ignore[method-assign]
    for _ in range(30):  # 3 s of 100 ms ticks
        logic.on_notify()
        clock[0] += timedelta(milliseconds=100)
    assert len(encoded_at) == 3
    assert [b - a for a, b in zip(encoded_at, encoded_at[1:], strict=False)] == [
        timedelta(seconds=1)
    ] * 2
