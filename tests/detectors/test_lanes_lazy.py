"""Many lanes moving on at once are found from the heap of due times, not walked: the
same items in the same order as the walk (``LAZY_LANES`` set high forces the walk)."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from citywatch.detectors import lanes as lanes_mod
from citywatch.detectors.lanes import LaneQueue, LaneTimers

LANES = [f"gps#0|tr-{i:03d}" for i in range(60)]

steps = st.lists(
    st.one_of(
        # add: (lane, due, key)
        st.tuples(st.just("add"), st.integers(0, 59), st.integers(0, 5_000), st.integers(0, 9)),
        # move: (first lane, how many, clock base, spread, shard clock back, before)
        st.tuples(
            st.just("move"),
            st.integers(0, 59),
            st.integers(0, 60),
            st.integers(0, 6_000),
            st.integers(0, 800),
            st.integers(0, 3_000),
            st.integers(0, 1),
        ),
    ),
    max_size=120,
)


def _run(ops: list[tuple[int | str, ...]], lazy_min: int) -> list[object]:
    old = lanes_mod.LAZY_LANES
    lanes_mod.LAZY_LANES = lazy_min
    try:
        timers, queue = LaneTimers(), LaneQueue[str]()
        clock: dict[str, int] = {}
        seen: list[object] = []
        for op in ops:
            if op[0] == "add":
                _, lane_i, due, key = op
                lane = LANES[int(lane_i)]
                timers.add(f"k{key}", int(due), lane)
                queue.add(int(due), f"q{key}@{due}", lane)
                continue
            start, n, base, spread, back, before = (int(x) for x in op[1:])
            moved: dict[str, int] = {}
            for j in range(n):
                lane = LANES[(start + j) % len(LANES)]
                ms = base + (j * 37) % (spread + 1)
                if ms > clock.get(lane, -1):
                    clock[lane] = moved[lane] = ms
            now = base - back
            seen.append(timers.pop_due(now, moved, before))
            seen.append(queue.pop_due(now, moved, before))
        seen.append(timers.pop_due(10_000))
        seen.append(queue.pop_due(10_000))
        return seen
    finally:
        lanes_mod.LAZY_LANES = old


@settings(max_examples=300, deadline=None)
@given(steps)
# A lane advanced by its clock, then popped by the shard's clock beside another lane: the
# heap must hold the entries the walk leaves (a taken lane's, an emptied lane's).
@example([("add", 0, 0, 0), ("add", 0, 1, 0), ("add", 1, 0, 0), ("move", 0, 1, 0, 0, 1, 0)])
@example([("add", 0, 0, 0), ("add", 1, 0, 0), ("move", 0, 1, 0, 0, 1, 0), ("add", 0, 1, 0)])
def test_lazy_pop_gives_what_the_walk_gives(ops: list[tuple[int | str, ...]]) -> None:
    assert _run(ops, 0) == _run(ops, 10**9)


def test_lazy_pop_takes_only_due_lanes_from_many() -> None:
    t = LaneTimers()
    for i, lane in enumerate(LANES):
        t.add(f"k{i}", 1_000 + i * 100, lane)
    moved = {lane: 2_000 for lane in LANES}  # 60 lanes: more than LAZY_LANES
    got = t.pop_due(0, moved)
    assert [key for _due, key, _lane in got] == [f"k{i}" for i in range(11)]
    assert len(t) == 49
    assert t.pop_due(0, {lane: 2_050 for lane in LANES}) == []
