"""Geofence rules over video detections: ``inside`` and ``dwell`` with ``labels``.

The GPS rules and their shared stay record live in :mod:`citywatch.detectors.geofence`;
a camera's detections in a zone form one stay here the way a vehicle's fixes do there.
"""

from __future__ import annotations

import random

from citywatch.detectors.alerts import Alert
from citywatch.detectors.base import (
    ContractCase,
    KeyedDetector,
    KeyedState,
    LocalClock,
    ZoneCatalog,
    ZoneMeta,
)
from citywatch.detectors.events import Event, VideoEvent
from citywatch.detectors.geofence import T_CASE, _State, _WindowMixin
from citywatch.detectors.geofence_rules import (
    VIDEO_RULES,
    DwellRule,
    InsideRule,
    RulesByKind,
    ZoneRule,
    rules_for_zones,
)

__all__ = ["VideoGeofenceDetector"]


class VideoGeofenceDetector(_WindowMixin, KeyedDetector):
    """``inside`` and ``dwell`` rules with ``labels`` over video detections.

    A camera's detections of a listed label (at ``min_confidence`` or more) in a
    zone are one stay while they come at most ``max_gap_s`` apart (``every_s``
    for inside rules): ``inside`` alerts at the first and then once per
    ``every_s``; ``dwell`` once the stay lasts ``dwell_s``.

    >>> rule = DwellRule(labels=("excavator",), dwell_s=120, min_confidence=0.6)
    >>> det = VideoGeofenceDetector({"dwell": {"levee": rule}}, {"lv": ZoneMeta("lv", "levee")})
    >>> out = []
    >>> for t in range(0, 181_000, 30_000):
    ...     det.on_event(VideoEvent(t, "cam-1", "excavator", 0.8, zones=("lv",)), out)
    >>> [(a.kind, a.subject, a.zone, a.evidence["dwell_s"]) for a in out]
    [('geofence.dwell', 'cam-1', 'lv', 120)]
    """

    kinds = ("geofence.inside", "geofence.dwell")
    event_type = "video"

    STATE = ("_state",)

    def __init__(
        self,
        rules_by_kind: RulesByKind,
        zones: ZoneCatalog,
        *,
        timezone: str = "Asia/Shanghai",
        idle_evict_s: int = 6 * 3600,
    ) -> None:
        self.rules_by_kind = {k: dict(v) for k, v in rules_by_kind.items()}
        self.timezone = timezone
        self._clock = LocalClock(timezone)
        self._state: KeyedState[_State] = KeyedState(idle_evict_s * 1000)
        self.set_zones(zones)

    def set_zones(self, zones: ZoneCatalog) -> None:
        per_zone = rules_for_zones(self.rules_by_kind, zones)
        self._zone_kind = {zid: meta.kind for zid, meta in zones.items()}
        self._rules: dict[str, list[tuple[str, ZoneRule]]] = {}
        for zid, mine in per_zone.items():
            chosen = [(k, r) for k, r in mine.items() if k in VIDEO_RULES and r.labels]
            if chosen:
                self._rules[zid] = chosen

    def on_event(self, ev: Event, out: list[Alert]) -> None:
        if not isinstance(ev, VideoEvent) or not ev.zones:
            return
        for zid in ev.zones:
            for rule_kind, rule in self._rules.get(zid, ()):
                if ev.label in rule.labels and ev.confidence >= rule.min_confidence:
                    self._step(ev, zid, rule_kind, rule, out)

    def _step(
        self, ev: VideoEvent, zid: str, rule_kind: str, rule: ZoneRule, out: list[Alert]
    ) -> None:
        key = f"{ev.camera}|{zid}|{rule_kind}"
        gap_s = rule.every_s if isinstance(rule, InsideRule) else getattr(rule, "max_gap_s", 300)
        st = self._state.get(key, ev.ts_ms)
        if st is None or ev.ts_ms - st.last_ts > gap_s * 1000:
            st = _State(inside=True, since_ts=ev.ts_ms)
            self._state.put(key, st, ev.ts_ms)
        if ev.ts_ms < st.since_ts:
            return
        st.last_ts = max(st.last_ts, ev.ts_ms)
        stay_s = (ev.ts_ms - st.since_ts) // 1000
        if isinstance(rule, InsideRule):
            due = st.last_alert_ts < 0 or ev.ts_ms - st.last_alert_ts >= rule.every_s * 1000
        else:
            due = st.last_alert_ts < 0 and stay_s >= getattr(rule, "dwell_s", 0)
        if not due or not self._in_window(rule, ev.ts_ms):
            return
        first = st.since_ts if st.last_alert_ts < 0 else ev.ts_ms
        st.last_alert_ts = ev.ts_ms
        out.append(
            Alert.make(
                f"geofence.{rule_kind}",
                rule.severity,
                ev.camera,
                "video",
                zid,
                ev.lon,
                ev.lat,
                ts_ms=ev.ts_ms,
                first_ts_ms=first,
                evidence={
                    "label": ev.label,
                    "confidence": ev.confidence,
                    "zone_kind": self._zone_kind.get(zid),
                    ("dwell_s" if rule_kind == "dwell" else "inside_s"): stay_s,
                    "snapshot": ev.snapshot,
                    "event_id": ev.id,
                },
            )
        )

    @classmethod
    def contract_case(cls, seed: int) -> ContractCase:
        """Short, scattered detections; then an excavator seen for 10 minutes on a levee."""
        rng = random.Random(seed)
        rule = DwellRule(labels=("excavator",), dwell_s=300, min_confidence=0.6)
        det = cls({"dwell": {"levee": rule}}, {"lv": ZoneMeta("lv", "levee")})
        events: list[Event] = []
        t = T_CASE
        for i in range(150):
            t += rng.randrange(20_000, 60_000)
            label = rng.choice(("bird", "person", "excavator"))
            conf = rng.uniform(0.3, 0.59) if label == "excavator" else rng.uniform(0.5, 1.0)
            events.append(VideoEvent(t, f"cam-{i % 5}", label, round(conf, 3), zones=("lv",)))
        anomaly_from = len(events)
        for k in range(25):
            t += 30_000
            events.append(VideoEvent(t, "cam-x", "excavator", 0.9, zones=("lv",), id=f"v{k}"))
        return ContractCase(det, events, frozenset({"geofence.dwell"}), anomaly_from)
