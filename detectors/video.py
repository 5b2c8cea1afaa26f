"""Video detectors: label + zone + local-time rules over video-analytics detections.

A rule names the alert kind it raises (``video.intrusion``,
``video.construction``, ``video.fishing``, ``video.dumping``), the labels and
zone kinds it applies to, a minimum confidence and optional local hours.
Repeated detections by one camera of one rule in one zone are one episode, and
one alert, until the camera has seen nothing matching for ``cooldown_s``.

>>> from citywatch.detectors.events import VideoEvent
>>> rule = VideoRule(kind="video.intrusion", labels=("person",), zone_kinds=("levee",))
>>> det = VideoRuleDetector((rule,), {"lv": ZoneMeta("lv", "levee")})
>>> out = []
>>> for t in (0, 30_000, 60_000):
...     det.on_event(VideoEvent(t, "cam-1", "person", 0.9, zones=("lv",)), out)
>>> [(a.kind, a.subject, a.zone) for a in out]
[('video.intrusion', 'cam-1', 'lv')]
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from citywatch.detectors import params
from citywatch.detectors.alerts import Alert
from citywatch.detectors.base import (
    ContractCase,
    KeyedDetector,
    KeyedState,
    LocalClock,
    ZoneCatalog,
    ZoneMeta,
    in_hours,
)
from citywatch.detectors.events import Event, VideoEvent

__all__ = ["VideoRule", "VideoRuleDetector", "ZoneMeta"]
VIDEO_KINDS = ("video.intrusion", "video.construction", "video.fishing", "video.dumping")


@dataclass(frozen=True, slots=True, kw_only=True)
class VideoRule:
    kind: str = "video.intrusion"
    labels: tuple[str, ...]
    zone_kinds: tuple[str, ...]
    min_confidence: float = 0.6
    hours: tuple[int, int] | None = None
    cooldown_s: int = 600
    severity: str = "yellow"

    def __post_init__(self) -> None:
        owner = f"video rule {self.kind}"
        if self.kind not in VIDEO_KINDS:
            msg = f'{owner}: "kind" must be one of {", ".join(VIDEO_KINDS)}'
            raise ValueError(msg)
        if not self.labels or not self.zone_kinds:
            msg = f'{owner}: "labels" and "zone_kinds" must each list at least one name'
            raise ValueError(msg)
        if not 0.0 <= self.min_confidence <= 1.0:
            msg = f'{owner}: "min_confidence" must be within [0, 1], got {self.min_confidence}'
            raise ValueError(msg)
        object.__setattr__(self, "hours", params.hours_window(owner, self.hours))
        params.positive(owner, "cooldown_s", self.cooldown_s)
        params.severity(owner, self.severity)


@dataclass(slots=True)
class _Episode:
    first_ts: int
    last_ts: int
    detections: int = 1


class VideoRuleDetector(KeyedDetector):
    kinds = VIDEO_KINDS
    event_type = "video"

    STATE = ("_state",)

    def __init__(
        self,
        rules: Sequence[VideoRule],
        zones: ZoneCatalog,
        *,
        timezone: str = "Asia/Shanghai",
        idle_evict_s: int = 6 * 3600,
    ) -> None:
        self.rules = tuple(rules)
        self.timezone = timezone
        self._clock = LocalClock(timezone)
        self._zone_kind: dict[str, str] = {}
        self.set_zones(zones)
        self._state: KeyedState[_Episode] = KeyedState(idle_evict_s * 1000)

    def set_zones(self, zones: ZoneCatalog) -> None:
        self._zone_kind = {zid: meta.kind for zid, meta in zones.items()}

    def on_event(self, ev: Event, out: list[Alert]) -> None:
        if not isinstance(ev, VideoEvent) or not ev.zones:
            return
        hour = -1
        for zid in ev.zones:
            zkind = self._zone_kind.get(zid)
            for rule in self.rules:
                if (
                    zkind not in rule.zone_kinds
                    or ev.label not in rule.labels
                    or ev.confidence < rule.min_confidence
                ):
                    continue
                if rule.hours is not None:
                    if hour < 0:
                        hour = self._clock.hour(ev.ts_ms)
                    if not in_hours(hour, rule.hours):
                        continue
                self._episode(ev, rule, zid, out)

    def _episode(self, ev: VideoEvent, rule: VideoRule, zid: str, out: list[Alert]) -> None:
        key = f"{ev.camera}|{rule.kind}|{zid}"
        ep = self._state.get(key, ev.ts_ms)
        if ep is not None and ev.ts_ms - ep.last_ts <= rule.cooldown_s * 1000:
            ep.last_ts = max(ep.last_ts, ev.ts_ms)
            ep.detections += 1
            return
        self._state.put(key, _Episode(ev.ts_ms, ev.ts_ms), ev.ts_ms)
        out.append(
            Alert.make(
                rule.kind,
                rule.severity,
                ev.camera,
                "video",
                zid,
                ev.lon,
                ev.lat,
                ts_ms=ev.ts_ms,
                first_ts_ms=ev.ts_ms,
                evidence={
                    "label": ev.label,
                    "confidence": ev.confidence,
                    "snapshot": ev.snapshot,
                    "event_id": ev.id,
                },
            )
        )

    @classmethod
    def contract_case(cls, seed: int) -> ContractCase:
        """Cameras on a levee and a river reach seeing birds, boats and low-confidence
        shapes; from ``anomaly_from`` on one sees an excavator, another a rod."""
        rng = random.Random(seed)
        zones = {"lv": ZoneMeta("lv", "levee"), "nf": ZoneMeta("nf", "no_fishing")}
        rules = (
            VideoRule(kind="video.construction", labels=("excavator",), zone_kinds=("levee",)),
            VideoRule(kind="video.fishing", labels=("fishing",), zone_kinds=("no_fishing",)),
        )
        det = cls(rules, zones)
        events: list[Event] = []
        t = 1_781_528_400_000
        for i in range(300):
            t += rng.randrange(5_000, 40_000)
            label = rng.choice(("bird", "boat", "person", "excavator", "fishing"))
            low = label in ("excavator", "fishing")
            conf = rng.uniform(0.2, 0.55) if low else rng.uniform(0.5, 1.0)
            zone = rng.choice(("lv", "nf"))
            events.append(VideoEvent(t, f"cam-{i % 6}", label, round(conf, 3), zones=(zone,)))
        anomaly_from = len(events)
        for k in range(10):
            t += 20_000
            events.append(VideoEvent(t, "cam-x", "excavator", 0.8, zones=("lv",), id=f"x{k}"))
            events.append(VideoEvent(t + 1, "cam-y", "fishing", 0.9, zones=("nf",), id=f"y{k}"))
        return ContractCase(
            det, events, frozenset({"video.construction", "video.fishing"}), anomaly_from
        )
