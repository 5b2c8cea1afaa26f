"""``fusion.corroborated``: alerts from different sources agreeing on one zone in time.

A muck truck entering the airport site (a ``gps`` alert) and, minutes later, a
camera seeing an excavator there (a ``video`` alert) are stronger together than
apart. For every alert of a listed kind in a zone of a listed kind, the
*partners* are the alerts of the same zone from a different source
(``subject_type``: gps, sensor, video) at most ``window_s`` earlier in event time
(ties broken by id, so of two alerts exactly one is the later). An alert with at
least one partner is an *anchor* and gets one fusion alert: severity raised by
``raise_levels`` above the highest of the anchor and its partners, the anchor's
subject, position and ``ts``, and every alert involved as evidence.

Alerts reach this stage from many shards and workers in no fixed order, so the
outcome must not depend on arrival order. A replay *holds* each alert
(:meth:`Corroborator.hold`) and decides it as an anchor once the stage's clock
(the lowest watermark of the detection shards) has passed its ``ts`` plus
``lag_ms`` (:meth:`Corroborator.advance`): every partner, being earlier, has
arrived by then, so the fusion alert's evidence, severity and ``first_ts`` are
the same whatever the batching, shard count or worker count. That is one
processing tick after the condition is known (``lag_ms`` covers the windowed
kinds that are raised after their ``ts``: the longest ``allowed_lateness_s``
of ``sensor.window``). An alert that still comes after the clock passed it is
decided at once, and an alert arriving after a later alert it corroborates
makes that later alert an anchor then (as a live run, which decides every
alert on arrival with :meth:`Corroborator.on_alerts`, always does). The fusion
alert's id is derived from its anchor's id alone. Alerts are kept per zone for
``retain_s`` of event time behind the newest alert seen there (bounded also by
``max_alerts_per_zone``), then forgotten.

Timeline (window 20 min, zone airport-site)::

    t(min)   0 ........ 5 ........ 12 ........ 40
    gps           enter (muck truck)
    video                    excavator (cam-3)          person (cam-1, 35 min after)
    fusion                   ^ anchor cam-3: severity +1, evidence: both alerts

>>> from citywatch.detectors.alerts import Alert
>>> zones = {"ap": ZoneMeta("ap", "airport_site")}
>>> fuse = Corroborator(FusionParams(), zones)
>>> enter = Alert.make("geofence.enter", "orange", "muck-1", "gps", "ap", 121.2, 31.9,
...                    ts_ms=300_000, first_ts_ms=300_000, evidence={})
>>> dig = Alert.make("video.construction", "orange", "cam-3", "video", "ap", 121.2, 31.9,
...                  ts_ms=720_000, first_ts_ms=720_000, evidence={})
>>> out = []
>>> fuse.on_alerts([dig, enter], out)   # arrival order does not matter
>>> [(a.kind, a.subject, a.severity, [e["kind"] for e in a.evidence["alerts"]]) for a in out]
[('fusion.corroborated', 'cam-3', 'red', ['geofence.enter', 'video.construction'])]
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from citywatch.detectors import params
from citywatch.detectors.alerts import SEVERITIES, SEVERITY_RANK, Alert, alert_id
from citywatch.detectors.base import KeyedState, ZoneCatalog, ZoneMeta
from citywatch.detectors.events import format_ts
from citywatch.detectors.state import Stateful

__all__ = ["FUSION_KIND", "Corroborator", "FusionParams", "ZoneMeta"]

FUSION_KIND = "fusion.corroborated"
SOURCES = ("gps", "sensor", "video")
NO_CLOCK = -(2**62)


@dataclass(frozen=True, slots=True, kw_only=True)
class FusionParams:
    """``[fusion]``: which alerts corroborate each other, where, and within what time."""

    window_s: int = 1200
    kinds: tuple[str, ...] = (
        "geofence.enter",
        "sensor.threshold",
        "sensor.rate",
        "sensor.window",
        "video.intrusion",
        "video.construction",
        "video.fishing",
        "video.dumping",
    )
    zone_kinds: tuple[str, ...] = ("airport_site", "airport_protection", "levee", "no_fishing")
    raise_levels: int = 1
    retain_s: int = 7200
    max_alerts_per_zone: int = 256

    def __post_init__(self) -> None:
        owner = "fusion"
        params.positive(owner, "window_s", self.window_s)
        if not self.kinds or not self.zone_kinds:
            msg = f'{owner}: "kinds" and "zone_kinds" must each list at least one name'
            raise ValueError(msg)
        if FUSION_KIND in self.kinds:
            msg = f'{owner}: "kinds" must not include {FUSION_KIND} (it would fuse its own output)'
            raise ValueError(msg)
        params.non_negative(owner, "raise_levels", self.raise_levels)
        if self.retain_s < self.window_s:
            msg = f'{owner}: "retain_s" ({self.retain_s}) must be >= "window_s" ({self.window_s})'
            raise ValueError(msg)
        params.positive(owner, "max_alerts_per_zone", self.max_alerts_per_zone)


@dataclass(slots=True)
class _Zone:
    """Recent alerts of one zone, in (ts, id) order, which of them were fused, and up to
    which time they were decided as anchors (held alerts after it are not yet)."""

    alerts: list[Alert] = field(default_factory=list)
    fused: set[str] = field(default_factory=set)
    newest_ts: int = 0
    decided_ms: int = NO_CLOCK


def _decided_all(data: dict[str, Any]) -> dict[str, Any]:
    """State version 1 -> 2: zones learn ``decided_ms`` (version 1 decided on arrival)."""
    for _zid, zone in data["_zones"].data["items"]:
        if not hasattr(zone, "decided_ms") or zone.decided_ms is None:
            zone.decided_ms = zone.newest_ts
    data.setdefault("marks_", {})
    return data


def _ts(a: Alert) -> int:
    return a.ts_ms


def _before(a: Alert, b: Alert) -> bool:
    return (a.ts_ms, a.id) < (b.ts_ms, b.id)


class Corroborator(Stateful):
    """Fusion of one or more zones' alerts (a plain class; the flow keeps one for all
    zones). ``lag_ms``: how far behind the clock an alert may still be raised."""

    STATE = ("_zones", "marks_")
    STATE_VERSION = 2
    MIGRATIONS = {1: _decided_all}

    def __init__(self, p: FusionParams, zones: ZoneCatalog, *, lag_ms: int = 0) -> None:
        self.p = p
        self.lag_ms = lag_ms
        self._zone_kind: dict[str, str] = {}
        self.set_zones(zones)
        self._zones: KeyedState[_Zone] = KeyedState(p.retain_s * 1000)
        # The watermark each producer (detection shard) last reported, for the clock.
        self.marks_: dict[str, int] = {}

    def set_zones(self, zones: ZoneCatalog) -> None:
        self._zone_kind = {zid: meta.kind for zid, meta in zones.items()}

    def wants(self, alert: Alert) -> bool:
        return (
            alert.zone is not None
            and alert.kind in self.p.kinds
            and alert.subject_type in SOURCES
            and self._zone_kind.get(alert.zone) in self.p.zone_kinds
        )

    def on_alerts(self, alerts: Iterable[Alert], out: list[Alert]) -> None:
        """Take a batch of alerts (any order); append the fusion alerts they complete."""
        for alert in alerts:
            if self.wants(alert):
                self._take(alert, out)

    def hold(self, alerts: Iterable[Alert], out: list[Alert]) -> None:
        """Take a batch of alerts (any order) to decide once the clock passes them
        (:meth:`advance`); one the clock already passed is decided at once."""
        for alert in alerts:
            if self.wants(alert):
                self._take(alert, out, held=True)

    def mark(self, producer: str, wm_ms: int) -> None:
        """A producer's watermark: it raises no alert of its kinds before it any more."""
        self.marks_[producer] = max(self.marks_.get(producer, wm_ms), wm_ms)

    def clock(self, producers: int) -> int | None:
        """The lowest producer watermark, once ``producers`` of them reported."""
        return min(self.marks_.values()) if len(self.marks_) >= producers else None

    def advance(self, clock_ms: int, out: list[Alert]) -> None:
        """Decide, in (ts, id) order, the held alerts before ``clock_ms - lag_ms``."""
        until = clock_ms - self.lag_ms
        for _zid, z in self._zones.items():
            if until <= z.decided_ms:
                continue
            alerts = z.alerts
            for i in range(bisect_right(alerts, z.decided_ms, key=_ts), len(alerts)):
                if alerts[i].ts_ms >= until:
                    break
                self._decide(z, alerts[i], out)
            z.decided_ms = until - 1

    def flush(self, out: list[Alert]) -> None:
        """Decide everything held (the end of the input)."""
        self.advance(2**62, out)

    def _take(self, x: Alert, out: list[Alert], *, held: bool = False) -> None:
        zid = x.zone
        assert zid is not None
        z = self._zones.get(zid, x.ts_ms)
        if z is None:
            z = _Zone()
            self._zones.put(zid, z, x.ts_ms)
        if any(a.id == x.id for a in z.alerts):  # delivered twice (a replayed batch)
            return
        z.alerts.append(x)
        z.alerts.sort(key=lambda a: (a.ts_ms, a.id))
        if not (held and x.ts_ms > z.decided_ms):  # else ``advance`` decides it
            window = self.p.window_s * 1000
            # x as an anchor, then every later alert that x now corroborates (not those
            # still held: they are decided with x among their partners).
            later = [y for y in z.alerts if _before(x, y) and y.ts_ms - x.ts_ms <= window]
            for y in [x] + later:
                if y is x or (
                    y.subject_type != x.subject_type and not (held and y.ts_ms > z.decided_ms)
                ):
                    self._decide(z, y, out)
        self._forget(z, x.ts_ms)

    def _decide(self, z: _Zone, y: Alert, out: list[Alert]) -> None:
        """Fuse ``y`` as an anchor if it has partners and was not fused yet."""
        if y.id in z.fused:
            return
        window = self.p.window_s * 1000
        partners = [
            a
            for a in z.alerts
            if a.subject_type != y.subject_type and _before(a, y) and y.ts_ms - a.ts_ms <= window
        ]
        if partners:
            z.fused.add(y.id)
            out.append(self._fusion(y, partners))

    def _forget(self, z: _Zone, ts_ms: int) -> None:
        z.newest_ts = max(z.newest_ts, ts_ms)
        horizon = z.newest_ts - self.p.retain_s * 1000
        keep = [a for a in z.alerts if a.ts_ms >= horizon]
        if len(keep) > self.p.max_alerts_per_zone:
            keep = keep[-self.p.max_alerts_per_zone :]
        if len(keep) != len(z.alerts):
            z.alerts = keep
            ids = {a.id for a in keep}
            z.fused &= ids

    def _fusion(self, anchor: Alert, partners: list[Alert]) -> Alert:
        involved = sorted([*partners, anchor], key=lambda a: (a.ts_ms, a.id))
        top = max(SEVERITY_RANK[a.severity] for a in involved)
        severity = SEVERITIES[min(len(SEVERITIES) - 1, top + self.p.raise_levels)]
        evidence: dict[str, Any] = {
            "anchor": anchor.id,
            "sources": sorted({a.subject_type for a in involved}),
            "window_s": self.p.window_s,
            "alerts": [
                {
                    "id": a.id,
                    "kind": a.kind,
                    "severity": a.severity,
                    "subject": a.subject,
                    "subject_type": a.subject_type,
                    "ts": format_ts(a.ts_ms),
                }
                for a in involved
            ],
        }
        return Alert(
            alert_id(FUSION_KIND, anchor.id, anchor.zone, anchor.first_ts_ms),
            FUSION_KIND,
            severity,
            anchor.subject,
            anchor.subject_type,
            anchor.zone,
            anchor.lon,
            anchor.lat,
            anchor.ts_ms,
            min(a.first_ts_ms for a in involved),
            evidence,
            ingest_ns=anchor.ingest_ns,
            wm_ms=max((a.wm_ms for a in involved if a.wm_ms is not None), default=None),
        )

    def evict_idle(self, now_ms: int) -> None:
        self._zones.evict_idle(now_ms)

    def live_keys(self) -> int:
        return len(self._zones)
