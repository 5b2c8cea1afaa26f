"""A live partition's lanes running on with the wall clock come to a shard as one
:class:`RunOn` a tick, kept by reference and read only when a lane's clock is needed: the
same clocks and the same timers due as the per-source update they replace, caps (held
fixes) respected, no lane ever going back, and every lane in the snapshot."""

from __future__ import annotations

import random

from citywatch.detectors.lanes import (
    LaneClocks,
    LaneQueue,
    LaneTimers,
    RunOn,
    RunOnLanes,
    lane_name,
)
from citywatch.detectors.state import Snapshot
from citywatch.detectors.watermark import NO_WATERMARK

T0 = 1_767_225_600_000


def test_a_run_on_is_kept_not_walked() -> None:
    lanes = LaneClocks()
    run_on = RunOn({f"gw-{i}": T0 + i for i in range(5_000)})
    moved = lanes.update("gps#0", run_on, {})
    assert isinstance(moved, RunOnLanes)
    assert lanes.clocks == {}  # nothing written per source
    assert lanes.clock(lane_name("gps#0", "gw-7")) == T0 + 7
    assert moved[lane_name("gps#0", "gw-7")] == T0 + 7
    assert moved.get(lane_name("gps#1", "gw-7")) is None  # another partition's lane
    assert lanes.clock(lane_name("gps#1", "gw-7")) == NO_WATERMARK
    assert moved.top == T0 + 4_999 and len(moved) == 5_000


def test_a_cap_holds_a_lane_back_and_never_takes_it_back() -> None:
    lanes = LaneClocks()
    lane = lane_name("gps#0", "gw-1")
    lanes.update("gps#0", RunOn({"gw-1": T0 + 5_000}), {})
    assert lanes.clock(lane) == T0 + 5_000
    # A fix of gw-1 is held with its cap behind where the lane is: the lane stays.
    lanes.update("gps#0", RunOn({"gw-1": T0 + 6_000}), {"gw-1": T0 + 2_000})
    assert lanes.clock(lane) == T0 + 5_000
    lanes.update("gps#0", RunOn({"gw-1": T0 + 9_000}), {"gw-1": T0 + 7_000})
    assert lanes.clock(lane) == T0 + 7_000
    lanes.update("gps#0", RunOn({"gw-1": T0 + 9_500}), {})  # released
    assert lanes.clock(lane) == T0 + 9_500
    # A data batch's clocks beside a run-on: whichever is further on.
    lanes.update("gps#0", {"gw-1": T0 + 12_000}, {})
    assert lanes.clock(lane) == T0 + 12_000


def test_the_snapshot_holds_every_lane_as_it_is() -> None:
    lanes = LaneClocks()
    lanes.update("gps#0", {"gw-1": T0}, {})
    lanes.update("gps#0", RunOn({"gw-1": T0 + 1_000, "gw-2": T0 + 2_000}), {"gw-2": T0 + 1_500})
    snap = lanes.state()
    assert isinstance(snap, Snapshot)
    again = LaneClocks()
    again.restore(snap)
    assert again.clocks == {
        lane_name("gps#0", "gw-1"): T0 + 1_000,
        lane_name("gps#0", "gw-2"): T0 + 1_500,
    }


def test_the_same_clocks_and_timers_as_the_per_source_update() -> None:
    # (Caps are the gate's now, for every partition's lanes at once, not as they were at
    # each partition's last update: see the test above.)
    rng = random.Random(7)
    sources = [f"gw-{i}" for i in range(300)]
    walked, lazy = LaneClocks(), LaneClocks()
    timers_walked, timers_lazy = LaneTimers(), LaneTimers()
    ran = dict.fromkeys(sources, T0)
    fired_walked: list[tuple[int, str, str]] = []
    fired_lazy: list[tuple[int, str, str]] = []
    shard_ms = T0 - 60_000
    for tick in range(200):
        for partition in ("gps#0", "gps#1"):
            for _ in range(20):  # keys filed under some lanes
                source = rng.choice(sources)
                due = ran[source] + rng.randrange(0, 5_000)
                key = f"k{tick}-{rng.randrange(10**6)}"
                lane = lane_name(partition, source)
                timers_walked.add(key, due, lane)
                timers_lazy.add(key, due, lane)
            for source in sources:  # most run on, some stay (a wrong clock never back)
                ran[source] += rng.choice((0, 100, 250, 250, 400))
            full = RunOn(dict(ran))
            want = walked.update(partition, dict(full), {})
            got = lazy.update(partition, full, {})
            for lane, ms in want.items():
                assert got[lane] == ms
            fired_walked += timers_walked.pop_due(shard_ms, want)
            fired_lazy += timers_lazy.pop_due(shard_ms, got)
        shard_ms += 200
    assert sorted(fired_lazy) == sorted(fired_walked)
    assert len(fired_walked) > 1_000
    assert len(timers_lazy) == len(timers_walked)
    for lane, ms in walked.clocks.items():
        assert lazy.clock(lane) == ms


def test_a_shifted_key_is_never_judged_past_its_partition_s_ingest_clock() -> None:
    """A key's shift is anchored to its source's transit when taken and judged against
    the transit now; a lane that cannot follow that transit back (a gateway whose clock
    stepped two minutes behind: its events come late, its lane never goes back) would
    put the key two minutes ahead. It is held to its partition's ingest clock less its
    own event's transit."""
    from citywatch.detectors.events import SensorEvent
    from citywatch.detectors.sensor_health import OfflineDetector, OfflineParams

    det = OfflineDetector({"water_level": OfflineParams(silent_s=600)})
    lanes = LaneClocks()
    det.lanes = lanes
    lanes.partition = "sensor#0"
    reading = SensorEvent(T0, "wl-1", "water_level", 1.0, src="gw-1")
    lane = lanes.lane(reading)
    assert lane == lane_name("sensor#0", "gw-1")
    lanes.set_transits("sensor#0", {"gw-1": 1_000})
    lanes.shift_ms = -200  # its reading took 1.2 s, the gateway's usual 1.0 s
    anchored = det.event_shift(reading)
    assert anchored == -1_200
    lanes.update("sensor#0", RunOn({"gw-1": T0}, base=T0 + 1_500), {})
    assert det.judged_clock(lane, T0, anchored) == T0 - 200  # its lane + its shift
    lanes.set_transits("sensor#0", {"gw-1": 121_000})  # the clock stepped behind
    lanes.update("sensor#0", RunOn({"gw-1": T0 + 100}, base=T0 + 1_600), {})
    # by the transit alone: T0 + 100 - 1_200 + 121_000, two minutes ahead
    assert det.judged_clock(lane, lanes.clock(lane), anchored) == T0 + 1_600 - 1_200
    lanes.shift_ms = 0
    assert det.event_shift(reading) is None


def test_a_run_on_reads_only_its_own_partition_s_lanes_with_something_pending() -> None:
    asked: list[str] = []

    class Counting(LaneClocks):
        def clock(self, lane: str) -> int:
            asked.append(lane)
            return super().clock(lane)

    lanes = Counting()
    queue: LaneQueue[str] = LaneQueue()
    for i in range(40):
        queue.add(T0 + i, f"a{i}", lane_name("sensor#0", f"gw-{i}"))
        queue.add(T0 + i, f"b{i}", lane_name("sensor#1", f"gw-{i}"))
    queue.pop_due(T0 - 60_000, lanes.update("sensor#1", RunOn({"gw-0": T0 - 1}), {}))
    asked.clear()
    moved = lanes.update("sensor#0", RunOn({f"gw-{i}": T0 + 100 for i in range(500)}), {})
    got = queue.pop_due(T0 - 60_000, moved)
    assert [item for item, _lane in got] == [f"a{i}" for i in range(40)]  # by due time
    # Its own 40 lanes with readings pending, not its 500 sources nor the other's lanes.
    assert sorted(asked) == sorted(lane_name("sensor#0", f"gw-{i}") for i in range(40))
    assert len(queue) == 40  # partition 1's readings still wait for their lanes


def test_lanes_emptied_and_filed_again_between_passes_of_the_shard_clock_keep_the_heap_small() -> (
    None
):
    """Live: each tick's run-on empties a lane, a new reading files it again, while the
    shard's clock stays far behind: the heap of due times is made again once it holds
    more than twice as many entries as lanes are pending, and nothing is lost."""
    lanes = LaneClocks()
    queue: LaneQueue[int] = LaneQueue()
    sources = [f"gw-{i}" for i in range(50)]
    added = taken = 0
    biggest = 0
    for tick in range(2_000):
        at = T0 + tick * 100
        for source in sources:
            queue.add(at, added, lane_name("sensor#0", source))
            added += 1
        moved = lanes.update("sensor#0", RunOn(dict.fromkeys(sources, at)), {})
        taken += len(queue.pop_due(T0 - 600_000, moved))
        biggest = max(biggest, len(queue._next))
    assert taken == added and len(queue) == 0
    assert biggest <= 2 * len(sources) + 64 + len(sources)
