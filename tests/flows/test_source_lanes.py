"""Absence and windowed kinds are judged on the clock of the key's own source.

Two gateways with correct clocks, one fast (its events reach the flow as they are
stamped) and one slow (every event reaches the flow 20 s after its stamp, within
``max_out_of_order_s``), through the watermark step and one detector shard, as the
flow wires them::

    gw-a (fast)  wl-a0..a3 (60 s), hz-a0..a1 (15 s) ───────────────────────────►
    gw-b (slow)  the same, 20 s late ──────────────────────────────────────────►
                 wl-a1, hz-a1 stop at minute 20; wl-b1, hz-b1 at minute 25;
                 wl-a0, wl-b0 read 9 (over the window limit 5) until minute 10

Each alert must come in the batch in which its own gateway's clock (its newest
accepted event time less ``[flow] source_slack_ms``) passes the alert's ``ts``
(the deadline, or the window's end): no later, as the slow gateway would otherwise
hold it back, and no earlier, as the fast gateway's clock must not judge the slow
one's keys.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from citywatch.detectors.alerts import Alert
from citywatch.detectors.events import Event, GpsEvent, SensorEvent
from citywatch.detectors.lanes import LaneQueue, LaneTimers
from citywatch.detectors.sensor_health import TIMER_MS, OfflineDetector, OfflineParams
from citywatch.detectors.sensor_offline_rows import state_v3
from citywatch.detectors.sensor_window import WindowDetector, WindowParams
from citywatch.detectors.state import Snapshot, decode, encode
from citywatch.detectors.timers import DueTimers
from citywatch.detectors.tracks_gap import GapDetector, GapParams
from citywatch.detectors.watermark import NO_WATERMARK, Watermarker, front_lead_ms
from citywatch.flows.config_sections import FlowSettings
from citywatch.flows.detect import DetectorSuite, shard_builder
from citywatch.flows.pipeline import shard_step
from citywatch.flows.records import EventBatch
from citywatch.flows.stage_watermark import watermark_step
from citywatch.flows.stats import RunStats

T0 = 1_767_225_600_000
MIN = 60_000
SLOW_MS = 20_000
STOP_MIN = {"gw-a": 20, "gw-b": 25}  # when each gateway's key 1 falls silent
KINDS = ["sensor.offline", "sensor.window", "track.gap"]


def gateway(gw: str, minutes: int = 40) -> list[Event]:
    """Four gauges (a reading a minute) and two trucks (a fix every 15 s) behind ``gw``;
    gauge and truck 1 stop at ``STOP_MIN[gw]``, gauge 0 reads over the limit until
    minute 10."""
    out: list[Event] = []
    off = 100 if gw == "gw-a" else 400
    for m in range(minutes):
        for i in range(4):
            if i == 1 and m >= STOP_MIN[gw]:
                continue
            value = 9.0 if i == 0 and m < 10 else 3.0
            t = T0 + m * MIN + i * 1000 + off
            out.append(SensorEvent(t, f"wl-{gw[-1]}{i}", "water_level", value, src=gw))
    for k in range(minutes * 4):
        for v in range(2):
            t = T0 + k * 15_000 + v * 700 + off
            if v == 1 and t >= T0 + STOP_MIN[gw] * MIN:
                continue
            lon = 121.0 + v * 0.01 + k * 2e-3  # driving, not parked
            out.append(GpsEvent(t, f"hz-{gw[-1]}{v}", lon, 32.0, "hazmat_truck", src=gw))
    return out


def arrival_order() -> list[Event]:
    """Both gateways merged in the order they reach the flow: gw-b 20 s late."""
    both = itertools.chain(gateway("gw-a"), gateway("gw-b"))
    return sorted(both, key=arrival_ms)


def arrival_ms(ev: Event) -> int:
    """The wall-clock time ``ev`` reaches the flow (kept with it, as a live run or a
    recording with envelopes knows it)."""
    return ev.ts_ms + (SLOW_MS if ev.src == "gw-b" else 0) + 50


def gw_of(a: Alert) -> str:
    return f"gw-{a.subject.split('-')[1][0]}"


def run(
    events: list[Event],
    batch: int = 1,
    lanes: dict[str, tuple[int, int]] | None = None,
    per_source: bool = True,
    slack_ms: int = 500,
) -> list[Alert]:
    """The watermark step and one shard over ``events`` in batches of ``batch``;
    ``lanes`` gets, per alert id, its gateway's newest accepted event time before and
    after the batch that raised it. ``per_source=False`` keeps the shard on the front
    of event time alone (no per-source clocks)."""
    flow = FlowSettings(shards=1, source_slack_ms=slack_ms)
    stamp = watermark_step(flow, RunStats())
    split = shard_step(1)
    suite = DetectorSuite(
        [
            OfflineDetector({"water_level": OfflineParams(silent_s=300)}),
            GapDetector(GapParams(max_silence_s={"hazmat_truck": 180})),
            WindowDetector({"water_level": [WindowParams(size_s=600, limit=5.0)]}),
        ],
        front_ms=front_lead_ms(flow.max_out_of_order_s * 1000),
    )
    wm: Watermarker | None = None
    out: list[Alert] = []
    for i in range(0, len(events), batch):
        before = {} if wm is None else {gw: wm.clocks[gw].max_ts_ms for gw in wm.clocks}
        part = events[i : i + batch]
        arrivals = [arrival_ms(ev) for ev in part]
        wm, stamped = stamp(wm, EventBatch("rec", part, [], 0, arrival_ms=arrivals))
        start = len(out)
        for _shard, sb in split(stamped):
            clocks = sb.clocks if per_source else None
            suite.process(sb.events, sb.wm_ms, out, heard=sb.heard, clocks=clocks, partition="rec")
        if lanes is not None:
            for a in out[start:]:
                gw = gw_of(a)
                lanes[a.id] = (before.get(gw, NO_WATERMARK), wm.clocks[gw].max_ts_ms)
    return out


def test_each_kind_is_decided_on_its_own_sources_clock() -> None:
    lanes: dict[str, tuple[int, int]] = {}
    alerts = run(arrival_order(), lanes=lanes)
    got = sorted((a.kind, a.subject) for a in alerts)
    assert got == [
        ("sensor.offline", "wl-a1"),
        ("sensor.offline", "wl-b1"),
        ("sensor.window", "wl-a0"),
        ("sensor.window", "wl-b0"),
        ("track.gap", "hz-a1"),
        ("track.gap", "hz-b1"),
    ]
    slack = 500
    for a in alerts:
        before, after = lanes[a.id]
        # Raised in the batch in which its own gateway's clock passed the alert's ts
        # (offline timers are filed in tenths of a second after the deadline).
        late = TIMER_MS if a.kind == "sensor.offline" else 0
        assert before - slack <= a.ts_ms + late, (a.kind, a.subject, before - a.ts_ms)
        assert after - slack >= a.ts_ms, (a.kind, a.subject, after - a.ts_ms)


def test_without_per_source_clocks_the_slow_source_holds_the_fast_one_back() -> None:
    # The contrast: on the front of event time alone (the newest time every source has
    # reached, less 2 s) the fast gateway's alerts wait for the slow one (14-29 s here).
    lanes: dict[str, tuple[int, int]] = {}
    alerts = run(arrival_order(), lanes=lanes, per_source=False)
    assert sorted(a.id for a in alerts) == sorted(a.id for a in run(arrival_order()))
    fast = [a for a in alerts if gw_of(a) == "gw-a"]
    assert sorted(a.kind for a in fast) == KINDS
    for a in fast:
        assert lanes[a.id][0] - a.ts_ms >= SLOW_MS // 2, (a.kind, a.subject)


def test_a_fast_source_does_not_make_a_slow_ones_keys_absent() -> None:
    # gw-b runs 20 s behind gw-a all along: none of its keys but the two that really
    # stop is reported, and those not before gw-b's own clock passed their deadline
    # (checked above); the fast gateway was then 20 s further on.
    lanes: dict[str, tuple[int, int]] = {}
    alerts = run(arrival_order(), lanes=lanes)
    slow = [a for a in alerts if gw_of(a) == "gw-b"]
    assert sorted(a.subject for a in slow if a.kind != "sensor.window") == ["hz-b1", "wl-b1"]


@pytest.mark.parametrize("batch", [1, 7, 1000])
@pytest.mark.parametrize("slack_ms", [0, 500, 5_000])
def test_the_decisions_do_not_depend_on_batching(batch: int, slack_ms: int) -> None:
    # Every event of gw-b is also shuffled within 3 s of its neighbours (more than the
    # slack): the late ones come behind their lane's clock and count from when they came.
    events = arrival_order()
    for i in range(0, len(events) - 1, 3):
        events[i], events[i + 1] = events[i + 1], events[i]
    base = sorted((a.id, a.ts_ms) for a in run(events, batch=50, slack_ms=slack_ms))
    assert base, "the scenario must raise alerts to compare"
    assert sorted((a.id, a.ts_ms) for a in run(events, batch=batch, slack_ms=slack_ms)) == base


def test_lane_timers_pop_only_what_is_due() -> None:
    t = LaneTimers()
    for k in range(1_000):
        t.add(f"k{k}", T0 + k * 1_000, f"rec|gw-{k % 10}")
    # One lane's clock moves on: only its due keys pop, whatever the other lanes hold.
    got = t.pop_due(T0 - 1, {"rec|gw-3": T0 + 50_000})
    assert [key for _, key, _ in got] == [f"k{k}" for k in range(3, 51, 10)]
    assert len(t) == 1_000 - 5
    # The shard's clock pops every lane's due keys, each once.
    rest = t.pop_due(T0 + 100_000)
    assert sorted(key for _, key, _ in rest) == sorted(
        f"k{k}" for k in range(101) if not (k % 10 == 3 and k <= 50)
    )
    assert t.pop_due(T0 + 100_000) == []
    # A snapshot restores the same pending timers.
    again = LaneTimers()
    again.restore(decode(encode(t.state())))
    assert again.pop_due(T0 + 10**9) == t.pop_due(T0 + 10**9)


def test_lane_timers_restore_the_timers_of_before_lanes() -> None:
    old = DueTimers()
    old.add("wl-1", T0 + 5_000)
    t = LaneTimers()
    t.restore(decode(encode(old.state())))
    assert t.pop_due(T0 + 4_999) == []
    assert t.pop_due(T0 + 5_000) == [(T0 + 5_000, "wl-1", "")]


def test_lane_queue_gives_items_back_in_time_order_per_lane() -> None:
    q: LaneQueue[str] = LaneQueue()
    for ts, item, lane in [(30, "c", "x"), (10, "a", "x"), (20, "b", "y"), (10, "a2", "x")]:
        q.add(ts, item, lane)
    assert q.pop_due(0, {"x": 15}) == [("a", "x"), ("a2", "x")]
    assert q.pop_due(25) == [("b", "y")]
    restored: LaneQueue[str] = LaneQueue()
    restored.restore(decode(encode(q.state())))
    assert restored.pop_due(100) == [("c", "x")]
    assert len(restored) == 0


def test_offline_state_before_lanes_keeps_its_held_readings() -> None:
    # A version-2 snapshot (readings held in a FIFO and a heap, one timer heap) restores
    # into one lane judged on the shard's clock: the same alert as before.
    det = OfflineDetector({"water_level": OfflineParams(silent_s=300)})
    out: list[Alert] = []
    first = SensorEvent(T0, "wl-1", "water_level", 3.0)
    det.on_event(first, out)
    det.on_watermark(T0 + 1, out)
    held = SensorEvent(T0 + 60_000, "wl-1", "water_level", 3.0)
    data = {k: v for k, v in state_v3(det).items() if k != "_held"}
    data.update(_fifo=[held], _pending=[], _seq=0, _timers=det._timers._lanes[""].state())
    fresh = OfflineDetector({"water_level": OfflineParams(silent_s=300)})
    fresh.restore(decode(encode(Snapshot("OfflineDetector", 2, data))))
    fresh.on_watermark(T0 + 360_000 + 2_000, out)
    assert [(a.kind, a.first_ts_ms) for a in out] == [("sensor.offline", T0 + 60_000)]


def test_a_live_shard_wakes_every_tick_ms() -> None:
    now = datetime(2026, 12, 7, tzinfo=UTC)
    flow = FlowSettings(timers="wall")
    build = shard_builder(
        lambda: DetectorSuite([]),
        dict,
        timers=flow.timers,
        now=lambda: now,
        tick_s=flow.tick_ms / 1000,
    )
    logic = build(None)
    assert (
        logic.notify_at()
        == now + timedelta(milliseconds=flow.tick_ms)
        == now + timedelta(milliseconds=100)
    )
    assert shard_builder(lambda: DetectorSuite([]), dict, now=lambda: now)(None).notify_at() is None


def test_a_held_fix_holds_back_its_own_lane_only() -> None:
    """A far fix of truck hz-a0 (gw-a) waits up to ``hold_s`` for the fixes after it
    (look-ahead), and gw-a then falls quiet: gw-a's lane may not pass that fix, but gw-b's
    truck hz-b0, silent for its 180 s, is still decided on gw-b's clock, which moves on
    (it was held back with every lane of the shard until the fix was decided)."""
    from citywatch.detectors.tracks_jump import JumpFilter, JumpParams

    suite = DetectorSuite(
        [GapDetector(GapParams(max_silence_s={"hazmat_truck": 180}))],
        gate=JumpFilter(JumpParams()),
        front_ms=front_lead_ms(30_000),
    )
    events: list[Event] = []
    for k in range(40):  # 10 minutes of fixes every 15 s
        t = T0 + k * 15_000
        if k <= 2:
            events.append(GpsEvent(t, "hz-b0", 121.1 + k * 2e-3, 32.0, "hazmat_truck", src="gw-b"))
        events.append(
            GpsEvent(t + 300, "hz-b1", 121.2 + k * 2e-3, 32.0, "hazmat_truck", src="gw-b")
        )
        if k <= 12:
            lon = 121.0 + k * 2e-3 + (0.5 if k == 12 else 0.0)  # the last one 50 km off: held
            events.append(GpsEvent(t + 600, "hz-a0", lon, 32.0, "hazmat_truck", src="gw-a"))
    out: list[Alert] = []
    fired: dict[str, int] = {}
    floor_then: dict[str, int] = {}
    newest: dict[str, int] = {}
    assert suite.gate is not None
    for ev in events:
        assert ev.src is not None
        newest[ev.src] = max(newest.get(ev.src, NO_WATERMARK), ev.ts_ms)
        clocks = {src: ts - 500 for src, ts in newest.items()}
        suite.process([ev], max(newest.values()) - 30_000, out, clocks=clocks, partition="p")
        for a in out:
            if a.subject not in fired:
                fired[a.subject], floor_then[a.subject] = ev.ts_ms, suite.gate.floor()
    deadline = T0 + 2 * 15_000 + 180_000
    # hz-b0 at the first gw-b fix past its deadline (+ slack), with hz-a0's fix still held
    assert deadline < fired["hz-b0"] <= deadline + 15_000 + 500
    assert floor_then["hz-b0"] < deadline  # hz-a0's far fix was held then
    assert fired.get("hz-a0", 2**62) > T0 + 12 * 15_000 + 600 + 60_000  # not before decided
