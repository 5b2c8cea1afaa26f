"""Pieces shared by the sensor detectors: the alert they raise, synthetic readings.

>>> from citywatch.detectors.events import Event, SensorEvent
>>> ev = SensorEvent(60_000, "wl-1", "water_level", 3.1, 121.0, 32.0, zones=("lv",))
>>> a = sensor_alert("sensor.stuck", "blue", ev, ts_ms=60_000, first_ts_ms=0, evidence={})
>>> (a.kind, a.subject, a.subject_type, a.zone, a.first_ts_ms)
('sensor.stuck', 'wl-1', 'sensor', 'lv', 0)
>>> [round(r.value, 2) for r in background_readings(1, "wl", "water_level", 3.0, 0, 3, 60)]
[2.98, 3.02, 3.02]
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Generic, TypeVar

from citywatch.detectors.alerts import Alert
from citywatch.detectors.base import Detector, plain_state
from citywatch.detectors.events import Event, SensorEvent
from citywatch.detectors.slot_keys import Col, Column, SlotKeys, slots_from_rows
from citywatch.detectors.state import Snapshot

P = TypeVar("P")

T_CASE = 1_781_528_400_000  # 2026-06-15T13:00:00Z, the contract cases' start


def sensor_alert(
    kind: str,
    severity: str,
    ev: SensorEvent,
    *,
    ts_ms: int,
    first_ts_ms: int,
    evidence: dict[str, Any],
) -> Alert:
    """An alert on the sensor of ``ev``, placed where ``ev`` was (first zone)."""
    return Alert.make(
        kind,
        severity,
        ev.sensor,
        "sensor",
        ev.zones[0] if ev.zones else None,
        ev.lon,
        ev.lat,
        ts_ms=ts_ms,
        first_ts_ms=first_ts_ms,
        evidence=evidence,
    )


def background_readings(
    seed: int, sensor: str, kind: str, level: float, t0_ms: int, n: int, period_s: int
) -> list[SensorEvent]:
    """``n`` noisy readings around ``level`` with a slow tide-like swing, one per period."""
    rng = random.Random(f"{seed}|{sensor}")
    out: list[SensorEvent] = []
    for i in range(n):
        t = t0_ms + i * period_s * 1000
        swing = 0.05 * level * math.sin(2 * math.pi * t / 44_712_000)
        value = round(level + swing + rng.gauss(0, 0.01 * level), 3)
        out.append(SensorEvent(t, sensor, kind, value, 121.0, 31.9, id=f"{sensor}#{i}"))
    return out


def merge_by_time(*streams: list[SensorEvent]) -> list[Event]:
    """Interleave streams by event time (stable: ties keep stream order)."""
    merged: list[Event] = [ev for stream in streams for ev in stream]
    merged.sort(key=lambda ev: ev.ts_ms)
    return merged


class PerSensorDetector(Detector, Generic[P]):
    """Base of the sensor detectors configured per sensor kind, with per-sensor state as
    rows of the columns ``COLUMNS`` (:class:`~citywatch.detectors.slot_keys.SlotKeys`),
    evicted after ``idle_evict_s`` of event time without a reading."""

    event_type = "sensor"

    STATE: ClassVar[tuple[str, ...] | None] = ("_state",)
    COLUMNS: ClassVar[dict[str, Column]] = {}

    def __init__(self, by_kind: Mapping[str, P], *, idle_evict_s: int = 24 * 3600) -> None:
        self.by_kind = dict(by_kind)
        self.idle_evict_s = idle_evict_s
        self._state = SlotKeys(idle_evict_s * 1000, self.COLUMNS)

    def reading(self, ev: Event) -> tuple[SensorEvent, P] | None:
        """The event as a reading of a configured sensor kind, with that kind's
        parameters; None for any other event."""
        if isinstance(ev, SensorEvent):
            p = self.by_kind.get(ev.kind)
            if p is not None:
                return ev, p
        return None

    def on_watermark(self, wm_ms: int, out: list[Alert]) -> None:
        self._state.evict_idle(wm_ms)

    def live_keys(self) -> int:
        return len(self._state)


def keyed_to_slots(
    columns: Mapping[str, Column], fill: Callable[[dict[str, Col], int, Any], None]
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A state migration turning the detector's ``_state``, a ``KeyedState`` snapshot of
    records (any of its layouts), into :class:`SlotKeys` rows, each record poured into
    its row by ``fill(columns, slot, record)``."""

    def step(data: dict[str, Any]) -> dict[str, Any]:
        old = data["_state"]
        if isinstance(old, Snapshot) and old.kind == "KeyedState":
            _kind, rows = plain_state(old)
            data = {**data, "_state": slots_from_rows(rows, columns, fill)}
        return data

    return step
