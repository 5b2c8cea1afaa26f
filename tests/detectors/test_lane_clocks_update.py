"""``LaneClocks.update`` (lane names made once per partition and source) gives what the
first loop over every source gave: the same lanes moved on, in the same order, with the
same clocks, and the same clocks kept (in the same order, as a snapshot holds them)."""

from __future__ import annotations

import random

import pytest

from citywatch.detectors.lanes import LaneClocks, lane_name
from citywatch.detectors.watermark import NO_WATERMARK


def reference(
    known: dict[str, int], partition: str, clocks: dict[str, int], caps: dict[str, int]
) -> list[tuple[str, int]]:
    """The loop over every source, as the lanes were first updated."""
    moved = []
    for source, ms in clocks.items():
        lane = lane_name(partition, source)
        ms = min(ms, caps.get(source, ms))
        if ms > known.get(lane, NO_WATERMARK):
            known[lane] = ms
            moved.append((lane, ms))
    return moved


@pytest.mark.parametrize("sources", [3, 16, 1_800])
def test_update_moves_the_lanes_the_loop_over_every_source_moves(sources: int) -> None:
    rng = random.Random(sources)
    lanes = LaneClocks()
    known: dict[str, int] = {}
    t0 = 1_767_225_600_000
    names = [f"gw-{i}" for i in range(sources)]
    now = dict.fromkeys(names, t0)
    moved_any = 0
    for batch in range(60):
        for partition in ("gps#0", "sensor#1"):
            # Sources come and go, most move on, some stay, a few step back (a clock
            # that is never taken back), and held fixes cap some sources' lanes.
            heard = [s for s in names if rng.random() < 0.9]
            rng.shuffle(heard)
            clocks = {}
            for s in heard:
                now[s] += rng.choice((0, 0, 250, 1_000, 5_000, -3_000))
                clocks[s] = now[s]
            if batch % 7 == 3 and sources > 5:
                clocks[f"gw-new-{batch}"] = t0 + batch * 1_000  # a source heard first
            cap = t0 + batch * 2_000
            caps = {s: cap for s in heard if batch % 3 and rng.random() < 0.3}
            want = reference(known, partition, clocks, caps)
            got = lanes.update(partition, clocks, caps)
            assert list(got.items()) == want
            assert list(lanes.clocks.items()) == list(known.items())
            moved_any += len(want)
    assert moved_any > 0
    assert lanes.update("gps#0", {}, {}) == {}
