"""The detection step: one set of detectors per shard, as a Bytewax stateful shim.

Events are spread over a fixed number of shards by a stable hash of their key
(entity, sensor or camera). Each shard keeps its own detectors, whose per-key
state lives inside them, so Bytewax sees only a handful of keys however many
vehicles and sensors there are, and moves whole batches between workers.
"""

from __future__ import annotations

import pickle
import zlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from bytewax.operators import StatefulBatchLogic

from detectors.alerts import Alert
from detectors.base import Detector, ZoneMeta
from detectors.events import Event
from detectors.geofence import EnterDetector
from detectors.sensor import ThresholdDetector
from detectors.track import StopDetector
from detectors.video import VideoRuleDetector
from flows.config import Config
from flows.model import ShardBatch


def shard_of(key: str, shards: int) -> int:
    """Stable across processes and runs (unlike ``hash``)."""
    return zlib.crc32(key.encode()) % shards


class DetectorSuite:
    """All stream detectors of one shard, routed by event type."""

    def __init__(self, detectors: Iterable[Detector]) -> None:
        self.detectors = list(detectors)
        self._by_type: dict[str, list[Detector]] = {}
        for det in self.detectors:
            self._by_type.setdefault(det.event_type, []).append(det)

    @classmethod
    def from_config(cls, cfg: Config, zones: Mapping[str, ZoneMeta]) -> DetectorSuite:
        return cls(
            [
                EnterDetector(cfg.geofence_enter, zones),
                StopDetector(cfg.track_stop, zones),
                ThresholdDetector(cfg.sensor_threshold),
                VideoRuleDetector(cfg.video_rules, zones, timezone=cfg.flow.timezone),
            ]
        )

    def set_zones(self, zones: Mapping[str, ZoneMeta]) -> None:
        for det in self.detectors:
            setter = getattr(det, "set_zones", None)
            if setter is not None:
                setter(zones)

    def process(self, events: Iterable[Event], wm_ms: int, out: list[Alert]) -> None:
        by_type = self._by_type
        for ev in events:
            for det in by_type.get(ev.type, ()):
                det.on_event(ev, out)
        for det in self.detectors:
            det.on_watermark(wm_ms, out)

    def live_keys(self) -> int:
        return sum(det.live_keys() for det in self.detectors)


class ShardLogic(StatefulBatchLogic[ShardBatch, list[Alert], bytes]):
    """Bytewax state for one shard: the pickled suite is the recovery snapshot."""

    def __init__(
        self,
        factory: Callable[[], DetectorSuite],
        zones: Callable[[], Mapping[str, ZoneMeta]],
        resume: bytes | None,
    ) -> None:
        if resume is not None:
            self.suite: DetectorSuite = pickle.loads(resume)  # noqa: S301 - our own snapshot
            self.suite.set_zones(zones())
        else:
            self.suite = factory()
        self._zones = zones
        self._zones_seen = zones()

    def on_batch(self, values: list[ShardBatch]) -> tuple[Iterable[list[Alert]], bool]:
        current = self._zones()
        if current is not self._zones_seen:  # zones were reloaded
            self.suite.set_zones(current)
            self._zones_seen = current
        out: list[Alert] = []
        for batch in values:
            start = len(out)
            self.suite.process(batch.events, batch.wm_ms, out)
            for alert in out[start:]:
                alert.ingest_ns = batch.ingest_ns
        return ([out] if out else []), StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes:
        return pickle.dumps(self.suite, protocol=pickle.HIGHEST_PROTOCOL)


def shard_builder(
    factory: Callable[[], DetectorSuite], zones: Callable[[], Mapping[str, ZoneMeta]]
) -> Callable[[Any], ShardLogic]:
    def build(resume: Any) -> ShardLogic:
        return ShardLogic(factory, zones, resume)

    return build
