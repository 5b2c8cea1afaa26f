"""Live runs count a key's silence on the ingest clock, from when its last event came.

A quiet source's lane runs on behind the wall clock by the transit its events usually
take (a quarter of its recent ones, ``Watermarker.quiet_transit_ms``) plus
``source_slack_ms``. One vehicle's last fix may have come faster or slower than that:
its key is judged that much ahead of (or behind) its lane (``ingest_shift``), so its
``track.gap`` comes ``source_slack_ms`` and a tick after its allowance has passed since
its last fix *came*, whatever its gateway's other traffic took. Replays (no arrival
times) are unchanged.

The watermark step, the shard split and one detection shard, as a live run wires them,
fed batches by hand: each event with its arrival time, then the partition's empty
"caught up" batches, one per tick of a clock of the test's own.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from citywatch.detectors.alerts import Alert
from citywatch.detectors.base import ZoneMeta
from citywatch.detectors.events import Event, GpsEvent, SensorEvent
from citywatch.detectors.lanes import ingest_shift
from citywatch.detectors.sensor_health import OfflineDetector, OfflineParams
from citywatch.detectors.tracks_gap import GapDetector, GapParams
from citywatch.detectors.watermark import Watermarker, front_lead_ms
from citywatch.flows.config_sections import FlowSettings
from citywatch.flows.detect import DetectorSuite, ShardLogic, shard_builder
from citywatch.flows.pipeline import shard_step
from citywatch.flows.records import EventBatch
from citywatch.flows.stage_watermark import watermark_step
from citywatch.flows.stats import RunStats

PART = "citywatch.gps#0"
SLACK_MS = 500
TICK_MS = 50
SILENCE_S = 60
T0 = 1_780_000_000_000  # stamps (and, at transit 0, the wall clock) start here


def _fix(entity: str, ts_ms: int, k: int) -> GpsEvent:
    # ~95 m a fix, reporting 40 km/h: under way, never parked
    return GpsEvent(ts_ms, entity, 121.0 + k * 1e-3, 32.0, cls="hazmat_truck", speed_kmh=40.0,
                    src="gw-1")  # fmt: skip


def _reading(sensor: str, ts_ms: int, _step: int = 0) -> SensorEvent:
    return SensorEvent(ts_ms, sensor, "water_level", 1.0, src="gw-1")


class Live:
    """The watermark step and one shard of a live run, on a wall clock of the test's."""

    def __init__(self, detector: GapDetector | OfflineDetector, *, live: bool = True) -> None:
        flow = FlowSettings(
            timers="wall" if live else "event", max_out_of_order_s=30, tick_ms=TICK_MS,
            source_slack_ms=SLACK_MS,
        )  # fmt: skip
        self.stamp = watermark_step(flow, RunStats())
        self.split = shard_step(1)
        frozen = datetime(2000, 1, 1, tzinfo=UTC)  # the shard's own wall clock: stopped
        no_zones: dict[str, ZoneMeta] = {}
        front_ms = front_lead_ms(flow.max_out_of_order_s * 1000)
        self.shard: ShardLogic = shard_builder(
            lambda: DetectorSuite([detector], front_ms=front_ms),
            lambda: no_zones,
            timers="wall" if live else "event",
            lag_ms=flow.max_out_of_order_s * 1000,
            now=lambda: frozen,
            snapshots=False,
            tick_s=TICK_MS / 1000,
        )(None)
        self.live = live
        self.wm: Watermarker | None = None
        self.alerts: list[tuple[int, Alert]] = []  # (wall ms of the batch, alert)
        self.shifts: list[int] = []  # every shift the watermark step sent

    def send(self, wall_ms: int, events: list[Event], arrivals: list[int] | None) -> None:
        batch = EventBatch(
            PART, events, [], wall_ms * 1_000_000, arrival_ms=arrivals,
            wall_clock=self.live, caught_ms=wall_ms if self.live else None,
        )  # fmt: skip
        self.wm, stamped = self.stamp(self.wm, batch)
        self.shifts += stamped.shifts or []
        for _shard, part in self.split(stamped):
            for out in self.shard.on_batch([part])[0]:
                self.alerts += [(wall_ms, a) for a in out.alerts]

    def feed(self, timed: list[tuple[int, Event]]) -> None:
        """Each event alone, read off Kafka at its arrival (wall ms): a live Kafka batch
        carries its read time, not one per line."""
        for arrival, ev in timed:
            self.send(arrival, [ev], None)

    def quiet(self, start_ms: int, end_ms: int) -> None:
        """The partition read to its end and nothing new, once a tick."""
        for wall in range(start_ms, end_ms, TICK_MS):
            self.send(wall, [], None)

    def first(self, kind: str, subject: str) -> int | None:
        return next((w for w, a in self.alerts if a.kind == kind and a.subject == subject), None)


def _traffic() -> tuple[list[tuple[int, Event]], dict[str, int]]:
    """Ten trucks of gateway gw-1, a fix every 5 s for a minute, each arriving 1.0-1.9 s
    after its stamp (a quarter of them within ~1.2 s); then trucks ``fast`` and
    ``slow`` send their last fix, arriving 100 ms and 2.9 s after its stamp, and the
    gateway falls silent. Returns the events by arrival and each last fix's arrival."""
    timed: list[tuple[int, Event]] = []
    for step in range(12):
        for i in range(10):
            ts = T0 + step * 5_000 + i * 10
            timed.append((ts + 1_000 + 100 * i, _fix(f"hz-{i}", ts, step)))
    last_ts = T0 + 60_000
    timed.append((last_ts + 100, _fix("fast", last_ts, 0)))
    timed.append((last_ts + 2_900, _fix("slow", last_ts, 0)))
    # stamped a second before ``fast``'s fix and arriving 3.5 s later: behind its lane
    # (the gateway's newest stamp less the slack) when it comes
    timed.append((last_ts + 2_500, _fix("behind", last_ts - 1_000, 0)))
    timed.sort(key=lambda item: item[0])
    return timed, {"fast": last_ts + 100, "slow": last_ts + 2_900, "behind": last_ts + 2_500}


def test_the_shift_is_the_source_transit_less_the_event_s_own_within_the_bound() -> None:
    assert ingest_shift(100, 750, 300_000) == 650
    assert ingest_shift(2_900, 750, 300_000) == -2_150
    assert ingest_shift(-900_000, 0, 300_000) == 300_000  # a device far ahead: bounded
    assert ingest_shift(900_000, 0, 300_000) == -300_000


def test_a_vehicle_s_gap_comes_on_its_own_ingest_clock() -> None:
    flow = Live(GapDetector(GapParams(max_silence_s={"hazmat_truck": SILENCE_S})))
    timed, came = _traffic()
    flow.feed(timed)
    flow.quiet(timed[-1][0] + TICK_MS, came["slow"] + SILENCE_S * 1000 + 5_000)
    # Each comes the slack and at most a tick after its allowance has passed since its
    # last fix came; judged on the gateway's quarter transit (~1.2 s), ``fast`` would
    # come ~1.1 s later, ``slow`` ~1.7 s sooner and ``behind`` ~2.3 s sooner.
    for subject in ("fast", "slow", "behind"):
        at = flow.first("track.gap", subject)
        due = came[subject] + SILENCE_S * 1000 + SLACK_MS
        assert at is not None and due <= at <= due + 2 * TICK_MS, (subject, at, due)


def test_the_same_gaps_in_a_replay_without_arrival_times() -> None:
    """No arrival times, no shift: the alerts are those of event time alone."""
    live = Live(GapDetector(GapParams(max_silence_s={"hazmat_truck": SILENCE_S})))
    replay = Live(GapDetector(GapParams(max_silence_s={"hazmat_truck": SILENCE_S})), live=False)
    timed, came = _traffic()
    live.feed(timed)
    replay.feed(timed)
    assert replay.shifts == [] and any(live.shifts)
    live.quiet(timed[-1][0] + TICK_MS, came["slow"] + SILENCE_S * 1000 + 5_000)
    # a replay's clock is its events' own: another gateway's truck carries it on (gw-1
    # goes idle after a while)
    others = [_fix("other", came["slow"] + k * 5_000, k) for k in range(400)]
    for ev in others:
        ev.src = "gw-2"
    replay.feed([(ev.ts_ms, ev) for ev in others])
    ours = ("fast", "slow", "behind")
    ids = sorted(a.id for _, a in live.alerts if a.subject in ours)
    assert ids == sorted(a.id for _, a in replay.alerts if a.subject in ours)
    assert len(ids) == 3


def test_a_sensor_goes_offline_on_its_own_ingest_clock_once_its_reading_is_settled() -> None:
    flow = Live(OfflineDetector({"water_level": OfflineParams(silent_s=SILENCE_S)}))
    timed: list[tuple[int, Event]] = []
    for step in range(12):
        for i in range(10):
            ts = T0 + step * 5_000 + i * 10
            timed.append((ts + 1_000 + 100 * i, _reading(f"wl-{i}", ts)))
    last_ts = T0 + 60_000
    timed.append((last_ts + 100, _reading("fast", last_ts)))
    timed.sort(key=lambda item: item[0])
    flow.feed(timed)
    flow.quiet(timed[-1][0] + TICK_MS, last_ts + SILENCE_S * 1000 + 5_000)
    at = flow.first("sensor.offline", "fast")
    due = last_ts + 100 + SILENCE_S * 1000 + SLACK_MS
    # (+ 100 ms: the offline timers' rounding)
    assert at is not None and due <= at <= due + 2 * TICK_MS + 100, at - due


def _drifting(
    make: Callable[[str, int, int], Event], before: int, after: int
) -> tuple[list[tuple[int, Event]], int]:
    """Ten keys of gateway gw-1 (``make(key, stamp, step)``), an event every 5 s each for a
    minute arriving ``before`` ms after its stamp; then key ``early``'s last event (200 ms
    slower than that); then 50 s more of the ten at ``after`` ms, ``early`` silent. The
    events by arrival, and when ``early``'s came."""
    timed: list[tuple[int, Event]] = []
    for step in range(22):
        transit = before if step < 12 else after
        for i in range(10):
            ts = T0 + step * 5_000 + i * 10
            timed.append((ts + transit + 10 * i, make(f"k-{i}", ts, step)))
    last_ts = T0 + 60_000
    came = last_ts + before + 200
    timed.append((came, make("early", last_ts, 0)))
    timed.sort(key=lambda item: item[0])
    return timed, came


def test_a_gateway_s_transit_drifting_while_a_vehicle_is_silent_moves_nothing() -> None:
    """The gateway's usual transit rises from ~1 s to ~2.5 s (or falls back) after a truck's
    last fix: that truck's gap still comes on its own ingest clock. Its shift is anchored
    to the gateway's transit when it was taken and judged against the transit now
    (``LaneClocks.transit``): against the old transit it would come ~1.5 s late (or
    early, before its allowance had passed since its fix came)."""
    for rising in (True, False):
        flow = Live(GapDetector(GapParams(max_silence_s={"hazmat_truck": SILENCE_S})))
        timed, came = _drifting(_fix, *((1_000, 2_500) if rising else (2_500, 1_000)))
        flow.feed(timed)
        flow.quiet(timed[-1][0] + TICK_MS, came + SILENCE_S * 1000 + 5_000)
        at = flow.first("track.gap", "early")
        due = came + SILENCE_S * 1000 + SLACK_MS
        assert at is not None and due <= at <= due + 2 * TICK_MS, (rising, at - due if at else None)


def test_a_sensor_s_offline_too_whatever_its_gateway_s_transit_does_meanwhile() -> None:
    for rising in (True, False):
        flow = Live(OfflineDetector({"water_level": OfflineParams(silent_s=SILENCE_S)}))
        timed, came = _drifting(_reading, *((1_000, 2_500) if rising else (2_500, 1_000)))
        flow.feed(timed)
        flow.quiet(timed[-1][0] + TICK_MS, came + SILENCE_S * 1000 + 5_000)
        at = flow.first("sensor.offline", "early")
        due = came + SILENCE_S * 1000 + SLACK_MS
        # (+ 100 ms: the offline timers' rounding)
        assert at is not None and due <= at <= due + 2 * TICK_MS + 100, (rising, at and at - due)


def test_a_gateway_whose_clock_steps_behind_does_not_bring_its_keys_early() -> None:
    """A sensor reports every 20 s while its gateway's clock steps two minutes behind:
    the gateway's other events now come late, its transit rises to ~2 min, and its lane
    (which never goes back) cannot follow. Judged by the transit alone, the sensor's
    timer filed again after that would put it two minutes ahead of its lane: offline two
    minutes early (seen in the live benchmark). Here it comes late instead, by the step,
    never early; the bound that keeps a shifted key from being judged early
    (``LaneDetector.judged_clock``) is tested in ``tests/detectors/test_lane_run_on.py``."""
    flow = Live(OfflineDetector({"water_level": OfflineParams(silent_s=SILENCE_S)}))
    timed: list[tuple[int, Event]] = []
    for step in range(40):
        for i in range(10):
            wall = T0 + step * 5_000 + i * 10 + 1_000
            # the gateway's clock two minutes behind from 45 s on
            timed.append((wall, _reading(f"wl-{i}", wall - (1_000 if step < 9 else 121_000))))
    for k in range(4):
        timed.append((T0 + k * 20_000 + 1_200, _reading("early", T0 + k * 20_000)))
    came = T0 + 60_000 + 1_200
    timed.sort(key=lambda item: item[0])
    flow.feed(timed)
    flow.quiet(timed[-1][0] + TICK_MS, came + SILENCE_S * 1000 + 130_000)
    at = flow.first("sensor.offline", "early")
    due = came + SILENCE_S * 1000 + SLACK_MS
    assert at is not None and at >= due, at and at - due
