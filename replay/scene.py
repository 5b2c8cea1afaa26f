"""What the incident injectors see of a generator run, below both of them.

The generator (:mod:`citywatch.replay.generator`) runs the injectors of
:mod:`citywatch.replay.incidents`; the injectors only read and add to the run's
fleet, sensors, cameras and truth. They are typed against :class:`Scene`, a
protocol defined here with the run's parameters and truth records, so imports
go one way: generator -> incidents -> scene.

>>> is_night(1_781_528_400_000)  # 2026-06-15T21:00+08:00
True
>>> truth_entry(3, "geofence.enter", "MT-00001", "ap", 0, 60_000, "a muck truck")["id"]
'inj-003'
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from citywatch.detectors.events import format_ts, parse_ts
from citywatch.geo.reference import Reference
from citywatch.replay.noise_options import default as noise_default
from citywatch.replay.world import Vehicle, World

SCALES: dict[str, dict[str, int]] = {
    # vehicles per class, sensor copies per registry sensor, camera copies
    "small": {
        "hazmat_truck": 24,
        "tanker": 6,
        "muck_truck": 16,
        "vessel": 6,
        "patrol": 8,
        "sensor_copies": 1,
        "camera_copies": 1,
    },
    "medium": {
        "hazmat_truck": 240,
        "tanker": 60,
        "muck_truck": 160,
        "vessel": 40,
        "patrol": 60,
        "sensor_copies": 10,
        "camera_copies": 4,
    },
    # The seeds' proportions, about 100,000 live keys and 1,150 events/s: 6,600
    # vehicles reporting every 15-30 s, 42,000 sensors every minute, 50,400
    # household meters (water, power, gas) every 15 minutes, 3,000 cameras.
    "city": {
        "hazmat_truck": 3000,
        "tanker": 600,
        "muck_truck": 2000,
        "vessel": 600,
        "patrol": 400,
        "sensor_copies": 1000,
        "meter_copies": 2800,
        "camera_copies": 120,
    },
}


@dataclass(frozen=True, slots=True, kw_only=True)
class GenParams:
    minutes: int = 40
    seed: int = 7
    start: str = "2026-06-15T21:00:00+08:00"
    scale: str = "small"
    bad_per_mille: float = 2.0
    late_per_mille: float = 0.5
    inject: bool = True
    # Field noise (citywatch.replay.noise): None = on for scale "city" only.
    noise: bool | None = None
    gps_jitter_m: float = noise_default("gps_jitter_m")
    multipath_per_mille: float = noise_default("multipath_per_mille")
    dropout_per_mille: float = noise_default("dropout_per_mille")
    duplicate_per_mille: float = noise_default("duplicate_per_mille")
    reorder_per_mille: float = noise_default("reorder_per_mille")
    skewed_gateways_pct: float = noise_default("skewed_gateways_pct")
    max_skew_s: float = noise_default("max_skew_s")
    clock_steps_pct: float = noise_default("clock_steps_pct")
    max_step_s: float = noise_default("max_step_s")
    sensor_faults: bool = True
    overlapping_incidents: bool = True

    def __post_init__(self) -> None:
        if self.minutes <= 0:
            msg = f'generate: "minutes" must be > 0, got {self.minutes}'
            raise ValueError(msg)
        if self.scale not in SCALES:
            msg = f'generate: "scale" must be one of {", ".join(SCALES)}, got {self.scale!r}'
            raise ValueError(msg)
        parse_ts(self.start)
        from citywatch.replay.noise import validate

        validate(self)


@dataclass(slots=True)
class Truth:
    incidents: list[dict[str, Any]] = field(default_factory=list)
    events: int = 0
    dead_letters: int = 0
    late_events: int = 0
    # What the noise stage did, by kind (empty for a run without noise).
    noise: dict[str, int] = field(default_factory=dict)


def truth_entry(
    n: int, kind: str, subject: str, zone: str | None, t0: int, t1: int, note: str
) -> dict[str, Any]:
    """The truth file's record of the n-th injected incident."""
    return {
        "id": f"inj-{n:03d}",
        "kind": kind,
        "subject": subject,
        "zone": zone,
        "start": format_ts(t0),
        "end": format_ts(t1),
        "note": note,
    }


class Scene(Protocol):
    """The parts of a generator run that an injector reads and adds to."""

    ref: Reference
    p: GenParams
    rng: random.Random
    world: World
    t0: int
    t_end: int
    truth: Truth
    clean_subjects: set[str]
    vehicles: list[Vehicle]
    # sensor id -> (kind, lon, lat, base, in_registry); overrides: id -> list of (t0, t1, fn)
    sensors: list[tuple[str, str, float, float, float, bool]]
    sensor_override: dict[str, list[tuple[int, int, Callable[[int], float]]]]
    sensor_silence: dict[str, list[tuple[int, int]]]
    cameras: list[tuple[str, str | None, float, float, bool]]
    video_injections: list[tuple[int, dict[str, Any]]]

    def expect(
        self, kind: str, subject: str, zone: str | None, t0: int, t1: int, note: str
    ) -> None:
        """Record an injected incident the run should alert on."""


Injector = Callable[[Scene, int, int, int], None]


def zone_of_sensor(ref: Reference, sid: str) -> str | None:
    dev = ref.sensors[sid]
    zones = ref.zones.zones_of(np.array([dev.lon]), np.array([dev.lat]))[0]
    return zones[0] if zones else None


def is_night(ts_ms: int) -> bool:
    hour = ((ts_ms // 3_600_000) + 8) % 24  # Asia/Shanghai, no daylight saving
    return hour >= 20 or hour < 6
