"""A live partition's lanes running on with the wall clock come to a shard as one
:class:`RunOn` a tick, kept by reference and read only when a lane's clock is needed: the
same clocks and the same timers due as the per-source update they replace, caps (held
fixes) respected, no lane ever going back, and every lane in the snapshot."""

from __future__ import annotations

import random

from citywatch.detectors.lanes import LaneClocks, LaneTimers, RunOn, RunOnLanes, lane_name
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
