"""The detection step: one set of detectors per shard, as a Bytewax stateful shim.

Events are spread over a fixed number of shards by a stable hash of their key
(entity, sensor or camera). Each shard keeps its own detectors, whose per-key
state lives inside them, so Bytewax sees only a handful of keys however many
vehicles and sensors there are, and moves whole batches between workers.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax.operators import StatefulBatchLogic

from citywatch.detectors.alerts import Alert
from citywatch.detectors.anomaly.sensor import SensorAnomalyDetector
from citywatch.detectors.base import Detector, ZoneMeta
from citywatch.detectors.events import DeadLetter, Event
from citywatch.detectors.geofence import GeofenceDetector
from citywatch.detectors.geofence_video import VideoGeofenceDetector
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
from citywatch.flows.config import Config
from citywatch.flows.model import ShardBatch
from citywatch.flows.recovery import restore, snapshot
from citywatch.flows.watermarks import SourceWatermarks


def shard_of(key: str, shards: int) -> int:
    """Stable across processes and runs (unlike ``hash``)."""
    return zlib.crc32(key.encode()) % shards


@dataclass(slots=True)
class ShardOutput:
    """What a shard emits per activation: alerts, teleported fixes (dead letters) and
    stop spans for the cross-key rendezvous stage (flows/stage_rendezvous.py)."""

    alerts: list[Alert] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    spans: list[StopSpan] = field(default_factory=list)
    # The watermark the shard acted on; emitted on every activation, alerts or not,
    # so the incident stage knows how far every shard has got (see wm_mark).
    wm_ms: int | None = None


class DetectorSuite(Stateful):
    """All stream detectors of one shard, routed by event type.

    ``gate`` (the teleport filter) sees GPS fixes first and keeps implausible
    jumps from every detector; ``reporter`` turns stops into rendezvous spans.
    """

    def __init__(
        self,
        detectors: Iterable[Detector],
        *,
        gate: JumpFilter | None = None,
        reporter: SpanReporter | None = None,
    ) -> None:
        self.detectors = list(detectors)
        self.gate = gate
        self.reporter = reporter
        # Sources (Kafka partitions) feed a shard interleaved: act on their minimum.
        self.watermarks = SourceWatermarks()
        self._by_type: dict[str, list[Detector]] = {}
        for det in self.detectors:
            self._by_type.setdefault(det.event_type, []).append(det)

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
        side: ShardOutput | None = None,
    ) -> int:
        """Run ``events`` through the detectors, then advance them to ``wm_ms``; dead
        letters and spans go to ``side`` (dropped when it is None). Returns the watermark
        the detectors got: held back before fixes the gate still holds for look-ahead."""
        side = side if side is not None else ShardOutput()
        events = events if isinstance(events, list) else list(events)
        if self.gate is not None:
            events = self.gate.admit(events, side.dead)
            events += self.gate.release(wm_ms, side.dead)
            self.gate.on_watermark(wm_ms)
            wm_ms = min(wm_ms, self.gate.floor())
        by_type = self._by_type
        for ev in events:
            for det in by_type.get(ev.type, ()):
                det.on_event(ev, out)
        if self.reporter is not None:
            reporter, spans = self.reporter, side.spans
            for ev in events:
                if ev.type == "gps":
                    reporter.on_event(ev, spans)
            reporter.on_watermark(wm_ms)
        for det in self.detectors:
            det.on_watermark(wm_ms, out)
        return wm_ms

    def live_keys(self) -> int:
        return sum(det.live_keys() for det in self.detectors)

    def state(self) -> Snapshot:
        """Each detector's learned state by class name, the gate's, the reporter's and
        the per-source watermarks (parameters are never in it)."""
        data = {
            "detectors": {type(d).__name__: d.state() for d in self.detectors},
            "gate": self.gate.state() if self.gate is not None else None,
            "reporter": self.reporter.state() if self.reporter is not None else None,
            "watermarks": self.watermarks.state(),
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


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ShardLogic(StatefulBatchLogic[ShardBatch, ShardOutput, bytes]):
    """Bytewax state for one shard: the suite's plain state is the recovery snapshot
    (see ``citywatch.flows.recovery``); on resume the suite is built from the current
    config and that state restored into it.

    With ``timers="wall"`` (live runs) the shard also wakes every ``tick_s`` of
    wall-clock time and advances its detectors to ``now - lag_ms`` when that is
    ahead of event time, so timeouts (``track.gap``) fire while input is quiet.
    Alert times still come from the events, so ids do not depend on when it fired.
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
    ) -> None:
        self._wall = timers == "wall"
        self._lag_ms = lag_ms
        self._tick = timedelta(seconds=tick_s)
        self._now = now
        self._event_wm = -(2**62)
        self.suite: DetectorSuite = restore("detect", factory(), resume)
        self._zones = zones
        self._zones_seen = zones()

    def on_batch(self, values: list[ShardBatch]) -> tuple[Iterable[ShardOutput], bool]:
        current = self._zones()
        if current is not self._zones_seen:  # zones were reloaded
            self.suite.set_zones(current)
            self._zones_seen = current
        res = ShardOutput()
        out = res.alerts
        for batch in values:
            start = len(out)
            wm_ms = self.suite.watermarks.update(batch.source, batch.wm_ms, batch.idle, batch.peers)
            if self._wall:
                self._event_wm = max(self._event_wm, wm_ms)
                wm_ms = max(wm_ms, self._wall_wm())
            wm_ms = self.suite.process(batch.events, wm_ms, out, res)
            res.wm_ms = wm_ms if res.wm_ms is None else max(res.wm_ms, wm_ms)
            for alert in out[start:]:
                alert.ingest_ns = batch.ingest_ns
                alert.wm_ms = wm_ms
        return _emit(res), StatefulBatchLogic.RETAIN

    def _wall_wm(self) -> int:
        return int(self._now().timestamp() * 1000) - self._lag_ms

    def notify_at(self) -> datetime | None:
        return self._now() + self._tick if self._wall else None

    def on_notify(self) -> tuple[Iterable[ShardOutput], bool]:
        res = ShardOutput()
        res.wm_ms = self.suite.process([], max(self._event_wm, self._wall_wm()), res.alerts, res)
        return _emit(res), StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes:
        return snapshot(self.suite)


def _emit(res: ShardOutput) -> list[ShardOutput]:
    return [res] if res.alerts or res.dead or res.spans or res.wm_ms is not None else []


class WatermarkMark(list[Alert]):
    """An empty alert list that tells the incident stage how far one shard has got."""

    def __init__(self, shard: str, wm_ms: int) -> None:
        super().__init__()
        self.shard = shard
        self.wm_ms = wm_ms

    def __reduce__(self) -> tuple[object, ...]:  # keep the fields across worker exchanges
        return (WatermarkMark, (self.shard, self.wm_ms))


def wm_mark(item: tuple[str, ShardOutput]) -> WatermarkMark | None:
    shard, res = item
    return WatermarkMark(shard, res.wm_ms) if res.wm_ms is not None else None


def shard_alerts(res: ShardOutput) -> list[Alert] | None:
    """The alerts of a shard's output (None when it has none), for the alert stream."""
    return res.alerts or None


def shard_builder(
    factory: Callable[[], DetectorSuite],
    zones: Callable[[], Mapping[str, ZoneMeta]],
    *,
    timers: str = "event",
    lag_ms: int = 0,
    now: Callable[[], datetime] = _utc_now,
) -> Callable[[Any], ShardLogic]:
    def build(resume: Any) -> ShardLogic:
        return ShardLogic(factory, zones, resume, timers=timers, lag_ms=lag_ms, now=now)

    return build
