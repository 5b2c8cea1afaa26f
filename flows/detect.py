"""The detection step: one set of detectors per shard, as a Bytewax stateful shim.

Events are spread over a fixed number of shards by a stable hash of their key
(entity, sensor or camera). Each shard keeps its own detectors, whose per-key
state lives inside them, so Bytewax sees only a handful of keys however many
vehicles and sensors there are, and moves whole batches between workers.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax.operators import StatefulBatchLogic

from citywatch.detectors.alerts import Alert
from citywatch.detectors.anomaly.sensor import SensorAnomalyDetector
from citywatch.detectors.base import Detector, KeyedState, ZoneMeta, keyed_states
from citywatch.detectors.events import DeadLetter, Event, GpsEvent
from citywatch.detectors.geofence import GeofenceDetector
from citywatch.detectors.geofence_video import VideoGeofenceDetector
from citywatch.detectors.lanes import LaneClocks
from citywatch.detectors.sensor import ThresholdDetector
from citywatch.detectors.sensor_health import OfflineDetector, StuckDetector
from citywatch.detectors.sensor_rate import RateDetector
from citywatch.detectors.sensor_window import WindowDetector
from citywatch.detectors.state import Snapshot, Stateful, migrate
from citywatch.detectors.track import StopDetector
from citywatch.detectors.tracks_gap import GapDetector
from citywatch.detectors.tracks_jump import JumpFilter
from citywatch.detectors.tracks_rendezvous import SpanReporter, StopSpan
from citywatch.detectors.tracks_speeding import SpeedingDetector
from citywatch.detectors.video import VideoRuleDetector
from citywatch.detectors.watermark import NO_WATERMARK, front_lead_ms
from citywatch.flows.config import Config
from citywatch.flows.records import NOT_CAUGHT_UP, AlertBatch, ShardBatch, ShardOutput
from citywatch.flows.recovery import restore, snapshot
from citywatch.flows.watermarks import SourceWatermarks


def shard_of(key: str, shards: int) -> int:
    """Stable across processes and runs (unlike ``hash``)."""
    return zlib.crc32(key.encode()) % shards


class DetectorSuite(Stateful):
    """All stream detectors of one shard, routed by event type.

    ``gate`` (the teleport filter) sees GPS fixes first and keeps implausible
    jumps from every detector; ``reporter`` turns stops into rendezvous spans.
    """

    STATE_VERSION = 2  # 2: the per-source clocks ("lanes"); version 1 restores without
    MIGRATIONS = {1: lambda data: data}

    def __init__(
        self,
        detectors: Iterable[Detector],
        *,
        gate: JumpFilter | None = None,
        reporter: SpanReporter | None = None,
        front_ms: int = 0,
        by: str = "gateway",
    ) -> None:
        self.detectors = list(detectors)
        # How far ahead of the watermark detectors with ``on_front`` decide: near the
        # front of event time (``front_lead_ms`` of the flow's max_out_of_order_s).
        self.front_ms = front_ms
        self.gate = gate
        self.reporter = reporter
        # Sources (Kafka partitions) feed a shard interleaved: act on their minimum.
        self.watermarks = SourceWatermarks()
        self._keyed: list[KeyedState[Any]] | None = None  # found on first use
        # Each partition's sources' own clocks (``[flow] watermark_source`` names them):
        # a key's absence is judged on its own source's clock when that is further on.
        self.lanes = LaneClocks(by)
        self._by_type: dict[str, list[Detector]] = {}
        for det in self.detectors:
            self._by_type.setdefault(det.event_type, []).append(det)
            if det.on_front:
                det.lanes = self.lanes

    @classmethod
    def from_config(cls, cfg: Config, zones: Mapping[str, ZoneMeta]) -> DetectorSuite:
        return cls(
            [
                GeofenceDetector(
                    {"enter": cfg.geofence_enter, **cfg.geofence_rules},
                    zones,
                    timezone=cfg.flow.timezone,
                ),
                VideoGeofenceDetector(cfg.geofence_rules, zones, timezone=cfg.flow.timezone),
                StopDetector(cfg.track_stop, zones),
                GapDetector(cfg.track_gap),
                SpeedingDetector(cfg.track_speeding, zones),
                ThresholdDetector(cfg.sensor_threshold),
                RateDetector(cfg.sensor_rate),
                WindowDetector(cfg.sensor_window),
                OfflineDetector(cfg.sensor_offline),
                StuckDetector(cfg.sensor_stuck),
                VideoRuleDetector(cfg.video_rules, zones, timezone=cfg.flow.timezone),
                SensorAnomalyDetector(cfg.anomaly.sensor, timezone=cfg.flow.timezone),
            ],
            gate=JumpFilter(cfg.track_jump),
            reporter=SpanReporter(cfg.track_rendezvous, zones),
            front_ms=front_lead_ms(cfg.flow.max_out_of_order_s * 1000),
            by=cfg.flow.watermark_source,
        )

    def set_zones(self, zones: Mapping[str, ZoneMeta]) -> None:
        for det in self.detectors:
            setter = getattr(det, "set_zones", None)
            if setter is not None:
                setter(zones)
        if self.reporter is not None:
            self.reporter.set_zones(zones)

    def process(
        self,
        events: Iterable[Event],
        wm_ms: int,
        out: list[Alert],
        dead: list[DeadLetter] | None = None,
        spans: list[StopSpan] | None = None,
        heard: Iterable[tuple[Event, int]] = (),
        clocks: Mapping[str, int] | None = None,
        partition: str = "",
        shifts: Sequence[int] | None = None,
        transits: Mapping[str, int] | None = None,
        settle: bool = True,
    ) -> int:
        """Run ``events`` (of input partition ``partition``) through the detectors, tell
        them which keys were ``heard`` from (events set aside, or stamped off the clock
        they came at; see :meth:`Detector.on_heard` and :meth:`Detector.on_arrival`),
        then advance them to ``wm_ms`` (windowed and absence detectors to ``wm_ms +
        front_ms``, near the front of event time, and each key to its own source's
        clock in ``clocks`` when that is further on: they fire a tick after their
        condition holds); dead letters and stop spans go to ``dead`` and ``spans``
        (dropped when None). Returns the watermark the detectors got: held back before
        fixes the gate still holds for look-ahead (a source's clock only before its own
        held fixes). ``shifts`` (live runs), aligned with ``events``: how far ahead of
        its lane each event's key is judged from then on (``LaneClocks.shift_ms``),
        against its source's transit in ``transits`` (live runs; every source's is also in
        ``clocks`` when that is a :class:`~citywatch.detectors.lanes.RunOn`). With
        ``settle`` False, detectors that ``settles_on_tick`` are not advanced (a live
        shard's batch between two ticks); the next call with it True does."""
        self.lanes.partition = partition
        if transits:
            self.lanes.set_transits(partition, transits)
        dead = dead if dead is not None else []
        spans = spans if spans is not None else []
        events = events if isinstance(events, list) else list(events)
        shift_of: dict[int, int] = {}
        if shifts is not None:
            shift_of = {id(ev): s for ev, s in zip(events, shifts, strict=True) if s}
        front_ms = wm_ms + self.front_ms
        dropped: list[tuple[int, GpsEvent]] = []
        floor = -NO_WATERMARK
        if self.gate is not None:
            events = self.gate.admit(events, dead)
            dropped = self.gate.take_dropped()
            released = self.gate.release(wm_ms, dead)
            dropped += [(len(events) + i, ev) for i, ev in self.gate.take_dropped()]
            events += released
            self.gate.on_watermark(wm_ms)
            floor = self.gate.floor()
            wm_ms, front_ms = min(wm_ms, floor), min(front_ms, floor)
        by_type = self._by_type
        aside = heard if isinstance(heard, list) else list(heard)
        told: dict[int, int] = {}
        if aside:  # an event stamped off its arrival is among ``events``: told right before it
            inside = {id(ev) for ev in events}
            told = {id(ev): at_ms for ev, at_ms in aside if id(ev) in inside}
            aside = [h for h in aside if id(h[0]) not in inside]
        gps = by_type.get("gps", ())
        for i, ev in enumerate(events):
            while dropped and dropped[0][0] <= i:  # a jump's fix: a bad place, but heard
                _i, bad = dropped.pop(0)
                for det in gps:
                    det.on_heard(bad, bad.ts_ms, out)
            dets = by_type.get(ev.type, ())
            if told and id(ev) in told:
                for det in dets:
                    det.on_arrival(ev, told[id(ev)], out)
            if shift_of:
                self.lanes.shift_ms = shift_of.get(id(ev), 0)
            for det in dets:
                det.on_event(ev, out)
        self.lanes.shift_ms = 0
        for _i, bad in dropped:
            for det in gps:
                det.on_heard(bad, bad.ts_ms, out)
        for ev, at_ms in aside:  # set aside: after the batch's events (their keys known)
            for det in by_type.get(ev.type, ()):
                det.on_heard(ev, at_ms, out)
        if self.reporter is not None:
            reporter = self.reporter
            for ev in events:
                if ev.type == "gps":
                    reporter.on_event(ev, spans)
            reporter.on_watermark(wm_ms)
        moved: Mapping[str, int] = {}
        if clocks:
            # A held fix holds back its own source's lane (where its vehicle's absence is
            # judged), not every lane of the shard: the others' keys are decided on.
            caps = self.gate.held_sources(self.lanes.by) if self.gate is not None else {}
            moved = self.lanes.update(partition, clocks, caps)
        for det in self.detectors:
            if det.on_front:
                det.on_clocks(front_ms, moved, out)
            elif settle or not det.settles_on_tick:
                det.on_watermark(wm_ms, out)
        return wm_ms

    def live_keys(self) -> int:
        return sum(det.live_keys() for det in self.detectors)

    def precode(self, max_keys: int) -> int:
        """Encode up to ``max_keys`` per-key records changed since they were last
        encoded, ahead of the next snapshot (see :meth:`KeyedState.precode`); returns
        how many it encoded."""
        if self._keyed is None:
            parts: list[Stateful] = [*self.detectors, self.watermarks]
            parts += [p for p in (self.gate, self.reporter) if p is not None]
            self._keyed = [ks for part in parts for ks in keyed_states(part)]
        left = max_keys
        for ks in self._keyed:
            if left <= 0:
                break
            left -= ks.precode(left)
        return max_keys - left

    def state(self) -> Snapshot:
        """Each detector's learned state by class name, the gate's, the reporter's and
        the per-source watermarks (parameters are never in it)."""
        data = {
            "detectors": {type(d).__name__: d.state() for d in self.detectors},
            "gate": self.gate.state() if self.gate is not None else None,
            "reporter": self.reporter.state() if self.reporter is not None else None,
            "watermarks": self.watermarks.state(),
            "lanes": self.lanes.state(),
        }
        return Snapshot("DetectorSuite", self.STATE_VERSION, data)

    def restore(self, snap: Snapshot) -> None:
        data = migrate(DetectorSuite, snap)
        saved = data["detectors"]
        for det in self.detectors:  # a detector new in this version starts empty
            if type(det).__name__ in saved:
                det.restore(saved[type(det).__name__])
        for part in (self.gate, self.reporter):
            name = "gate" if part is self.gate else "reporter"
            if part is not None and data[name] is not None:
                part.restore(data[name])
        self.watermarks.restore(data["watermarks"])
        self._keyed = None
        if "lanes" in data:  # before per-source clocks: each lane starts unheard of
            self.lanes.restore(data["lanes"])


def _utc_now() -> datetime:
    return datetime.now(UTC)


# A shard that keeps recovery snapshots encodes, once a wall second (on the first wall
# tick after it), up to this many per-key records changed since they were last encoded
# (about 30-60 ms of work): the snapshot, which stops the worker, then has only the rest
# to encode. Once a second, not once a ``[flow] tick_ms``: at 100 ms ticks that was ten
# times the work, 13 % of the flow's CPU at 10,000 ev/s.
# Not after every batch: at 10,000 ev/s most keys change again before the snapshot,
# and encoding each change made the flow fall behind its input. A ``KeyedState`` most
# of whose keys changed between its last two snapshots encodes nothing ahead (its
# next snapshot is a full one, as columns: see ``KeyedState.precode``).
PRECODE_TICK_KEYS = 8_192
PRECODE_EVERY = timedelta(seconds=1)


class ShardLogic(StatefulBatchLogic[ShardBatch, ShardOutput, bytes]):
    """Bytewax state for one shard: the suite's plain state is the recovery snapshot
    (see ``citywatch.flows.recovery``); on resume the suite is built from the current
    config and that state restored into it.

    With ``timers="wall"`` (live runs) the shard also wakes every ``tick_s`` of
    wall-clock time (``[flow] tick_ms``) and advances its detectors to ``now - lag_ms``
    when that is ahead of event time, so timeouts (``track.gap``) fire while input is
    quiet. A wake-up costs only the timers due (per-lane heaps), not a walk over keys.
    Alert times still come from the events, so ids do not depend on when it fired.
    Live Kafka partitions say how far they were read to their end (``caught_ms``):
    ``now`` is then never past the oldest of those, so a backlog waiting in Kafka is
    not taken for silence (each partition's lanes run on with its own, see
    ``citywatch.flows.stage_watermark``).
    """

    def __init__(
        self,
        factory: Callable[[], DetectorSuite],
        zones: Callable[[], Mapping[str, ZoneMeta]],
        resume: bytes | None,
        *,
        timers: str = "event",
        lag_ms: int = 0,
        tick_s: float = 1.0,
        now: Callable[[], datetime] = _utc_now,
        snapshots: bool = True,
        on_stamped: Callable[[str, int], None] | None = None,
    ) -> None:
        self._wall = timers == "wall"
        # Told each numbered batch's (source, number) as it gets here: the readers of a
        # shared recording keep within a bound of it (see flows/sources_split.py).
        self._on_stamped = on_stamped
        self._snapshots = snapshots
        self._lag_ms = lag_ms
        self._tick = timedelta(seconds=tick_s)
        self._precoded_at: datetime | None = None  # the last wall tick that encoded ahead
        self._settled_at: datetime | None = None  # the last wall time every detector was advanced
        self._now = now
        self._event_wm = -(2**62)
        # Live Kafka partitions: the wall time each was last read to its end (not state).
        self._caught: dict[str, int] = {}
        self.suite: DetectorSuite = restore("detect", factory(), resume)
        self._zones = zones
        self._zones_seen = zones()

    def on_batch(self, values: list[ShardBatch]) -> tuple[Iterable[ShardOutput], bool]:
        current = self._zones()
        if current is not self._zones_seen:  # zones were reloaded
            self.suite.set_zones(current)
            self._zones_seen = current
        out: list[Alert] = []
        dead: list[DeadLetter] = []
        spans: list[StopSpan] = []
        top = NO_WATERMARK
        # A live shard advances detectors that settle on a tick (the anomaly bank) once a
        # tick, with its last batch then, not after every batch (see DetectorSuite.process).
        last = len(values) - 1 if self._wall and self._tick_due() else -1
        for i, batch in enumerate(values):
            start = len(out)
            if self._on_stamped is not None and batch.seq is not None:
                self._on_stamped(batch.source, batch.seq)
            wm_ms = self.suite.watermarks.update(batch.source, batch.wm_ms, batch.idle, batch.peers)
            if self._wall and batch.caught_ms is not None:
                self._note_caught(batch)
            if self._wall:
                self._event_wm = max(self._event_wm, wm_ms)
                wm_ms = max(wm_ms, self._wall_wm())
            wm_ms = self.suite.process(
                batch.events,
                wm_ms,
                out,
                dead,
                spans,
                batch.heard,
                batch.clocks,
                batch.source,
                batch.shifts,
                batch.transits,
                settle=not self._wall or i == last,
            )
            top = max(top, wm_ms)
            for alert in out[start:]:
                alert.ingest_ns = batch.ingest_ns
                alert.wm_ms = wm_ms
        return [ShardOutput(out, dead, spans, top)], StatefulBatchLogic.RETAIN

    def _tick_due(self) -> bool:
        now = self._now()
        if self._settled_at is not None and now - self._settled_at < self._tick:
            return False
        self._settled_at = now
        return True

    def _note_caught(self, batch: ShardBatch) -> None:
        caught = self._caught
        for peer in batch.peers:  # partitions not heard from yet: nothing known read
            caught.setdefault(peer, NOT_CAUGHT_UP)
        at = batch.caught_ms
        if at is not None and at > caught.get(batch.source, NOT_CAUGHT_UP):
            caught[batch.source] = at

    def _wall_wm(self) -> int:
        now_ms = int(self._now().timestamp() * 1000)
        if self._caught:  # never past what every live partition was read to
            now_ms = min(now_ms, min(self._caught.values()))
        return now_ms - self._lag_ms

    def notify_at(self) -> datetime | None:
        # A tick after the last call: while batches keep coming, each advances the
        # detectors (the first one after a tick settles those that wait for it), so
        # waking the shard as well would only repeat that work. Readings left for the
        # tick wait for the next batch after it, or a tick of quiet.
        return self._now() + self._tick if self._wall else None

    def on_notify(self) -> tuple[Iterable[ShardOutput], bool]:
        self._settled_at = self._now()
        return self._settle()

    def on_eof(self) -> tuple[Iterable[ShardOutput], bool]:
        # A live shard's last batches may have left readings for the next tick.
        if not self._wall:
            return [], StatefulBatchLogic.RETAIN
        return self._settle()

    def _settle(self) -> tuple[Iterable[ShardOutput], bool]:
        res = ShardOutput([], [], [])
        wm_ms = self.suite.process(
            [], max(self._event_wm, self._wall_wm()), res.alerts, res.dead, res.spans
        )
        if self._snapshots:
            now = self._now()
            if self._precoded_at is None or now - self._precoded_at >= PRECODE_EVERY:
                self._precoded_at = now
                self.suite.precode(PRECODE_TICK_KEYS)
        return [ShardOutput(res.alerts, res.dead, res.spans, wm_ms)], StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes:
        # A replay keeps no recovery store: Bytewax still asks at the end of the
        # epoch, and pickling ~100 k keys' state for nobody costs seconds.
        return snapshot(self.suite) if self._snapshots else b""


def shard_alerts(always: bool) -> Callable[[tuple[str, ShardOutput]], AlertBatch | None]:
    """The alerts of a shard's output with the watermark they were raised at; with
    ``always`` also without alerts (the incident stage's clock in a replay)."""

    def alerts_of(item: tuple[str, ShardOutput]) -> AlertBatch | None:
        shard, res = item
        return AlertBatch(res.alerts, res.wm_ms, shard) if res.alerts or always else None

    return alerts_of


def shard_builder(
    factory: Callable[[], DetectorSuite],
    zones: Callable[[], Mapping[str, ZoneMeta]],
    *,
    timers: str = "event",
    lag_ms: int = 0,
    now: Callable[[], datetime] = _utc_now,
    snapshots: bool = True,
    tick_s: float = 1.0,
    on_stamped: Callable[[str, int], None] | None = None,
) -> Callable[[Any], ShardLogic]:
    """``snapshots=False`` when the run keeps no recovery store (replays); ``on_stamped``
    see :class:`ShardLogic`."""

    def build(resume: Any) -> ShardLogic:
        return ShardLogic(
            factory,
            zones,
            resume,
            timers=timers,
            lag_ms=lag_ms,
            tick_s=tick_s,
            now=now,
            snapshots=snapshots,
            on_stamped=on_stamped,
        )

    return build
