"""Teleports: implausible GPS jumps are dead letters with a reason, never detector state."""

from __future__ import annotations

import pickle

import orjson
import pytest

from citywatch.detectors.events import DeadLetter, Event, GpsEvent, SensorEvent
from citywatch.detectors.tracks_jump import JumpFilter, JumpParams
from citywatch.geo.distance import offset_deg

T0 = 1_767_225_600_000
LON, LAT = 121.0, 32.0


def fix(
    sec: float, east_km: float = 0.0, *, entity: str = "hz-1", cls: str | None = "hazmat_truck"
) -> GpsEvent:
    dlon, _ = offset_deg(LAT, east_km * 1000, 0.0)
    return GpsEvent(T0 + int(sec * 1000), entity, LON + dlon, LAT, cls, id=f"{entity}@{sec}")


def admit(f: JumpFilter, events: list[Event]) -> tuple[list[float], list[DeadLetter]]:
    dead: list[DeadLetter] = []
    kept = f.admit(events, dead)
    return [(e.ts_ms - T0) / 1000 for e in kept], dead


def test_teleport_goes_to_dead_letters_with_raw_bytes_and_a_reason() -> None:
    # t(s)    0    15    30    45
    # fix     A    T     A     A        T = 48 km east
    # kept    A          A     A        (30 is compared with 0, not with T)
    kept, dead = admit(JumpFilter(JumpParams()), [fix(0), fix(15, 48), fix(30, 0.2), fix(45, 0.4)])
    assert kept == [0, 30, 45]
    assert [d.reason for d in dead] == [
        "gps.jump: entity 'hz-1' jumped 48.0 km in 15 s (11,520 km/h > 250 km/h max)"
    ]
    assert dead[0].category == "gps.jump"
    raw = orjson.loads(dead[0].raw)
    assert (raw["type"], raw["entity"], raw["id"], raw["ts"]) == (
        "gps",
        "hz-1",
        "hz-1@15",
        "2026-01-01T00:00:15.000Z",
    )


def test_fast_but_plausible_driving_and_short_jitter_are_kept() -> None:
    # 1 km in 15 s = 240 km/h (< 250); 600 m in 1 s is jitter-sized (< min_jump_m)
    kept, dead = admit(JumpFilter(JumpParams()), [fix(0), fix(15, 1.0), fix(16, 1.6)])
    assert kept == [0, 15, 16] and dead == []


def test_class_limits_apply() -> None:
    f = JumpFilter(JumpParams(max_speed_kmh={"vessel": 60}))
    # 5 km in 4 min = 75 km/h: too fast for a vessel, fine for a truck
    kept, dead = admit(
        f,
        [
            fix(0, cls="vessel", entity="v"),
            fix(240, 5, cls="vessel", entity="v"),
            fix(0),
            fix(240, 5),
        ],
    )
    assert kept == [0, 0, 240] and len(dead) == 1
    assert "60 km/h max" in dead[0].reason


def test_after_reanchor_after_rejects_the_new_position_is_accepted() -> None:
    # The first fix was the bad one: the truck is really 50 km east.
    events: list[Event] = [fix(0)] + [fix(15 * k, 50) for k in range(1, 7)]
    kept, dead = admit(JumpFilter(JumpParams(reanchor_after=3)), events)
    assert kept == [0, 60, 75, 90] and len(dead) == 3


def test_other_event_types_pass_untouched_and_state_pickles() -> None:
    f = JumpFilter(JumpParams(idle_evict_s=60))
    sensor = SensorEvent(T0, "wl-1", "water_level", 3.0)
    kept, dead = admit(f, [sensor, fix(0)])
    assert dead == [] and len(kept) == 2
    clone = pickle.loads(pickle.dumps(f))
    assert len(admit(clone, [fix(15, 48)])[1]) == 1
    f.on_watermark(T0 + 120_000)
    assert f.live_keys() == 0


@pytest.mark.parametrize(
    ("setting", "value"),
    [("default_max_speed_kmh", 0), ("min_jump_m", -1), ("reanchor_after", 0)],
    ids=["max-speed-zero", "min-jump-negative", "reanchor-zero"],
)
def test_jump_params_reject_bad_values(setting: str, value: float) -> None:
    with pytest.raises(ValueError, match=rf"^track\.jump: .*{setting}"):
        JumpParams(**{setting: value})
