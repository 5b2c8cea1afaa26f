"""Absence is judged against the clock of the source that carries a key.

Small hand-made streams through the watermark step and one detector shard, as the
flow wires them (``watermark_step`` -> ``shard_step`` -> ``DetectorSuite.process``)::

    gw-a, gw-c, gw-d: 4 gauges (60 s), 2 trucks (15 s) each ────────────────►
    gw-b  wl-b0..b3, hz-b0..b1 ───────┐ clock steps (back 20 min / ahead 1 h / ahead 200 s)
                                      └── still sending, stamps wrong ──►
    → no sensor.offline for wl-b*; the same gateway really silent → offline for wl-b*
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from citywatch.detectors.alerts import Alert
from citywatch.detectors.base import keyed_v1
from citywatch.detectors.events import Event, GpsEvent, SensorEvent
from citywatch.detectors.sensor_health import OfflineDetector, OfflineParams
from citywatch.detectors.sensor_offline_rows import state_v3
from citywatch.detectors.sensor_window import WindowDetector, WindowParams
from citywatch.detectors.state import Snapshot, decode, encode
from citywatch.detectors.tracks_gap import GapDetector, GapParams
from citywatch.detectors.watermark import FRONT_SLACK_MS, NO_WATERMARK, Watermarker, front_lead_ms
from citywatch.flows.config_sections import FlowSettings
from citywatch.flows.detect import DetectorSuite
from citywatch.flows.pipeline import shard_step
from citywatch.flows.records import EventBatch
from citywatch.flows.stage_watermark import watermark_step
from citywatch.flows.stats import RunStats

T0 = 1_767_225_600_000
MIN = 60_000
SILENT_S = 300
GATEWAYS = ("gw-a", "gw-b", "gw-c", "gw-d")
OFFSET_MS = {gw: 250 * i for i, gw in enumerate(GATEWAYS)}


def readings(gw: str, minutes: int, step: Callable[[int], int] = lambda t: 0) -> list[Event]:
    """Four gauges behind ``gw`` reading every minute; ``step(t)`` is its clock error."""
    out: list[Event] = []
    for m in range(minutes):
        for i in range(4):
            t = T0 + m * MIN + i * 1000 + OFFSET_MS[gw]
            ev = SensorEvent(t + step(t), f"wl-{gw[-1]}{i}", "water_level", 3.0, src=gw)
            out.append(ev)
    return out


def trucks(gw: str, minutes: int, step: Callable[[int], int] = lambda t: 0) -> list[Event]:
    """Two hazmat trucks behind ``gw`` (its own clock) with a fix every 15 s."""
    out: list[Event] = []
    for k in range(minutes * 4):
        for v in range(2):
            t = T0 + k * 15_000 + v * 700 + OFFSET_MS[gw] // 2
            lon = 121.0 + v * 0.01 + k * 2e-3  # 45 km/h: driving, not parked
            ent = f"hz-{gw[-1]}{v}"
            out.append(GpsEvent(t + step(t), ent, lon, 32.0, "hazmat_truck", src=gw))
    return out


def by_arrival(*streams: list[Event], true_ts: dict[int, int]) -> list[Event]:
    """Merged in the order the network delivers them: true time, not stamped time."""
    merged = list(itertools.chain(*streams))
    return sorted(merged, key=lambda ev: true_ts.get(id(ev), ev.ts_ms))


def run(
    events: list[Event],
    batch: int = 50,
    fronts: dict[str, tuple[int, int]] | None = None,
    lead_ms: int | None = None,
    per_source: bool = True,
) -> list[Alert]:
    """The watermark step and one shard over ``events`` in batches of ``batch``, as the
    flow builds them; ``fronts`` gets, per alert id, the front of event time (watermark
    + max_out_of_order_s) before and after the batch that raised it. ``per_source=False``
    leaves out the sources' own clocks (``tests/flows/test_source_lanes.py``)."""
    flow = FlowSettings(shards=1)
    stamp = watermark_step(flow, RunStats())
    split = shard_step(1)
    suite = DetectorSuite(
        [
            OfflineDetector({"water_level": OfflineParams(silent_s=SILENT_S)}),
            GapDetector(GapParams(max_silence_s={"hazmat_truck": 180})),
            WindowDetector({"water_level": [WindowParams(size_s=600, limit=5.0)]}),
        ],
        front_ms=front_lead_ms(flow.max_out_of_order_s * 1000) if lead_ms is None else lead_ms,
    )
    ooo_ms = flow.max_out_of_order_s * 1000
    wm: Watermarker | None = None
    out: list[Alert] = []
    front = NO_WATERMARK
    for i in range(0, len(events), batch):
        wm, stamped = stamp(wm, EventBatch("rec", events[i : i + batch], [], 0))
        start = len(out)
        for _shard, sb in split(stamped):
            clocks = sb.clocks if per_source else None
            suite.process(
                sb.events, sb.wm_ms, out, heard=sb.heard, clocks=clocks, partition=sb.source
            )
        if fronts is not None:
            fronts.update((a.id, (front, stamped.wm_ms + ooo_ms)) for a in out[start:])
        front = stamped.wm_ms + ooo_ms
    return out


def stepped(gw: str, at_min: int, by_ms: int, minutes: int = 40, until: int = 40) -> list[Event]:
    """Four gateways, ``gw`` stepping its clock by ``by_ms`` at ``at_min`` and sending
    until minute ``until`` (true time); arrival order follows true time, as the
    network's."""
    true_ts: dict[int, int] = {}

    def clock(t: int) -> int:
        return by_ms if t >= T0 + at_min * MIN else 0

    streams = []
    for name in GATEWAYS:
        step = clock if name == gw else (lambda t: 0)
        length = until if name == gw else minutes
        for make in (readings, trucks):
            clean = make(name, length)
            noisy = make(name, length, step)
            for c, n in zip(clean, noisy, strict=True):
                true_ts[id(n)] = c.ts_ms
            streams.append(noisy)
    return by_arrival(*streams, true_ts=true_ts)


def kinds_of(alerts: list[Alert], gw: str) -> list[tuple[str, str]]:
    """The alerts on the keys behind gateway ``gw``."""
    return sorted((a.kind, a.subject) for a in alerts if a.subject.split("-")[1][0] == gw[-1])


@pytest.mark.parametrize(
    "by_ms",
    [-20 * MIN, 3_600_000, 200_000],
    ids=["back-20min-late", "ahead-1h-future", "ahead-200s-accepted"],
)
def test_a_stepped_gateways_keys_are_not_declared_absent(by_ms: int) -> None:
    alerts = run(stepped("gw-b", 10, by_ms))
    assert kinds_of(alerts, "gw-b") == []
    assert [kinds_of(alerts, gw) for gw in ("gw-a", "gw-c", "gw-d")] == [[], [], []]


def test_the_same_gateway_really_silent_is_declared_absent() -> None:
    # The control: gw-b stops at minute 10 (no event at all), gw-a goes on.
    alerts = run(stepped("gw-b", 10, 0, until=10))
    got = kinds_of(alerts, "gw-b")
    assert got == sorted(
        [("sensor.offline", f"wl-b{i}") for i in range(4)]
        + [("track.gap", f"hz-b{v}") for v in range(2)]
    )
    offline = [a for a in alerts if a.kind == "sensor.offline"]
    # The silence runs from each gauge's last reading before minute 10.
    assert {a.first_ts_ms for a in offline} == {T0 + 9 * MIN + i * 1000 + 250 for i in range(4)}
    assert [kinds_of(alerts, gw) for gw in ("gw-a", "gw-c", "gw-d")] == [[], [], []]


def test_a_gateway_heard_then_silent_is_absent_from_when_it_was_last_heard() -> None:
    # gw-b steps back 20 min at minute 10 (every event late from then on) and dies at
    # minute 25: its gauges are offline from when they were last heard (minute ~25),
    # not from their last accepted reading (minute 9).
    alerts = run(stepped("gw-b", 10, -20 * MIN, until=25))
    offline = {a.subject: a for a in alerts if a.kind == "sensor.offline"}
    assert sorted(offline) == [f"wl-b{i}" for i in range(4)]
    for a in offline.values():
        assert a.first_ts_ms >= T0 + 23 * MIN
        assert a.evidence["last_reading_ts"] < a.evidence["last_heard_ts"]
    gaps = {a.subject: a for a in alerts if a.kind == "track.gap"}
    assert sorted(gaps) == ["hz-b0", "hz-b1"]
    assert all(a.first_ts_ms >= T0 + 23 * MIN for a in gaps.values())
    assert [kinds_of(alerts, gw) for gw in ("gw-a", "gw-c", "gw-d")] == [[], [], []]


@pytest.mark.parametrize("by_ms", [-20 * MIN, 3_600_000, 200_000])
@pytest.mark.parametrize("batch", [1, 7, 1000])
def test_absence_after_heard_keys_does_not_depend_on_batching(batch: int, by_ms: int) -> None:
    events = stepped("gw-b", 10, by_ms, until=25)
    base = sorted((a.id, a.ts_ms, a.first_ts_ms) for a in run(events, batch=50))
    assert base, "the scenario must raise alerts to compare"
    assert sorted((a.id, a.ts_ms, a.first_ts_ms) for a in run(events, batch=batch)) == base


def test_offline_state_of_version_1_restores() -> None:
    det = OfflineDetector({"water_level": OfflineParams(silent_s=SILENT_S)})
    out: list[Alert] = []
    det.on_event(SensorEvent(T0, "wl-1", "water_level", 3.0), out)
    det.on_watermark(T0 + 1, out)
    # A version-1 snapshot: lines as _Line records of a KeyedState, without seen_ts.
    data = state_v3(det)
    data["_state"] = keyed_v1(data["_state"])
    for _key, line in data["_state"].data["items"]:
        object.__delattr__(line, "seen_ts")
    old = decode(encode(Snapshot("OfflineDetector", 1, data)))
    fresh = OfflineDetector({"water_level": OfflineParams(silent_s=SILENT_S)})
    fresh.restore(old)
    fresh.on_watermark(T0 + SILENT_S * 1000 + 2000, out)
    assert [(a.kind, a.first_ts_ms) for a in out] == [("sensor.offline", T0)]


def test_absence_and_windowed_kinds_fire_one_tick_after_the_condition() -> None:
    # gw-b stops at minute 10; gauge wl-a0 reads 9 (over the window limit 5) until
    # minute 20. An alert is raised in the batch in which the front of event time (the
    # newest time every active source reached) passes its ts (a gauge's last reading +
    # 300 s, a truck's last fix + 180 s, a window's end), give or take the offline
    # timers' tenth of a second and the 2 s the detectors stay behind the front. Deciding
    # on the watermark, as before, takes max_out_of_order_s (30 s) more. With the
    # sources' own clocks the same alerts come no later (gw-a's keys are then judged on
    # gw-a's clock, while the silent gw-b holds the front back until it goes idle).
    events = [
        SensorEvent(ev.ts_ms, ev.sensor, ev.kind, 9.0, src=ev.src)
        if isinstance(ev, SensorEvent) and ev.sensor == "wl-a0" and ev.ts_ms < T0 + 20 * MIN
        else ev
        for ev in stepped("gw-b", 10, 0, until=10)
    ]
    fronts: dict[str, tuple[int, int]] = {}
    alerts = run(events, batch=1, fronts=fronts, per_source=False)
    assert sorted({a.kind for a in alerts}) == ["sensor.offline", "sensor.window", "track.gap"]
    for a in alerts:
        before, after = fronts[a.id]
        # The clock the detectors decide on is FRONT_SLACK_MS (2 s) behind the front.
        assert before <= a.ts_ms + FRONT_SLACK_MS + 1_000 < after + 1_000, (a.kind, a.subject)
    by_source: dict[str, tuple[int, int]] = {}
    lanes = run(events, batch=1, fronts=by_source)
    assert sorted(a.id for a in lanes) == sorted(a.id for a in alerts)
    assert all(by_source[a.id][1] <= fronts[a.id][1] for a in lanes)
    on_watermark: dict[str, tuple[int, int]] = {}
    old = run(events, batch=1, fronts=on_watermark, lead_ms=0, per_source=False)
    assert sorted(a.id for a in old) == sorted(a.id for a in alerts)
    for a in old:
        assert on_watermark[a.id][1] - a.ts_ms >= 30_000, (a.kind, a.subject)
