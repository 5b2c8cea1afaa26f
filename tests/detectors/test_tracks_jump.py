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


def admit(
    f: JumpFilter, events: list[Event], *, then_s: float | None = None
) -> tuple[list[float], list[DeadLetter]]:
    """Admit ``events``; with ``then_s``, also release what the watermark at ``then_s``
    (seconds after T0) decides."""
    dead: list[DeadLetter] = []
    kept = f.admit(events, dead)
    if then_s is not None:
        kept += f.release(T0 + int(then_s * 1000), dead)
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
        then_s=400,
    )
    assert kept == [0, 0, 240] and len(dead) == 1
    assert "60 km/h max" in dead[0].reason


def test_when_the_next_fixes_agree_with_the_jump_the_earlier_position_was_wrong() -> None:
    # The first fix was the bad one: the truck is really 50 km east. Nothing is lost.
    events: list[Event] = [fix(0)] + [fix(15 * k, 50 + 0.2 * k) for k in range(1, 7)]
    kept, dead = admit(JumpFilter(JumpParams()), events)
    assert kept == [0, 15, 30, 45, 60, 75, 90] and dead == []


def test_after_a_silence_the_outlier_is_dropped_not_the_good_fixes_after_it() -> None:
    # t(s)   0 ... 60   (silent 10 min)   660   667   674   681
    # fix    A ...  A                      X     B1    B2    B3     X = 1.45 km off
    # B1 ... are plausible from A (long silence), not from X (1.5 km in 7 s)
    events: list[Event] = [fix(s, s / 100) for s in range(0, 61, 15)]
    events += [fix(660, 2.45)] + [fix(660 + 7 * k, 1.0 + 0.05 * k) for k in (1, 2, 3)]
    kept, dead = admit(JumpFilter(JumpParams()), events)
    assert kept == [0, 15, 30, 45, 60, 667, 674, 681]
    assert [orjson.loads(d.raw)["ts"] for d in dead] == ["2026-01-01T00:11:00.000Z"]
    assert "1.8 km off its track" in dead[0].reason and "agrees with the track" in dead[0].reason


def test_a_jump_after_a_silence_with_no_next_fix_stands_after_hold_s() -> None:
    f = JumpFilter(JumpParams(hold_s=60))
    kept, dead = admit(f, [fix(0), fix(600, 5)])
    assert kept == [0] and f.floor() == T0 + 600_000 - 1
    kept, dead = admit(f, [], then_s=660)
    assert kept == [] and dead == []  # the watermark must pass 600 + 60 s
    kept, dead = admit(f, [], then_s=660.001)
    assert kept == [600] and dead == [] and f.floor() > T0 + 10**9


def test_a_held_fix_is_decided_by_event_time_alone() -> None:
    # the same fixes in one batch, or with a watermark between, give the same result
    events: list[Event] = [fix(0), fix(15, 48), fix(100, 0.5), fix(115, 0.6)]
    one = admit(JumpFilter(JumpParams()), events)
    f = JumpFilter(JumpParams())
    first = admit(f, events[:2], then_s=90)
    rest = admit(f, events[2:])
    assert one[0] == first[0] + rest[0] == [0, 100, 115]
    assert [d.reason for d in one[1]] == [d.reason for d in first[1] + rest[1]]


def test_other_event_types_pass_untouched_and_state_pickles() -> None:
    f = JumpFilter(JumpParams(idle_evict_s=60, hold_s=10))
    sensor = SensorEvent(T0, "wl-1", "water_level", 3.0)
    kept, dead = admit(f, [sensor, fix(0)])
    assert dead == [] and len(kept) == 2
    clone = pickle.loads(pickle.dumps(f))
    assert len(admit(clone, [fix(15, 48), fix(30, 0.1)])[1]) == 1
    f.on_watermark(T0 + 120_000)
    assert f.live_keys() == 0


@pytest.mark.parametrize(
    ("setting", "value"),
    [("default_max_speed_kmh", 0), ("min_jump_m", -1), ("lookahead_fixes", 0), ("hold_s", 0)],
    ids=["max-speed-zero", "min-jump-negative", "lookahead-zero", "hold-zero"],
)
def test_jump_params_reject_bad_values(setting: str, value: float) -> None:
    with pytest.raises(ValueError, match=rf"^track\.jump: .*{setting}"):
        JumpParams(**{setting: value})


def test_detectors_never_get_a_watermark_past_a_held_fix() -> None:
    # t(s)   0          170 (2 km on: held, after 170 s of silence)
    # A 180 s gap after 0 must not fire while 170 is held, whatever the watermarks.
    from citywatch.detectors.alerts import Alert
    from citywatch.detectors.tracks_gap import GapDetector, GapParams
    from citywatch.flows.detect import DetectorSuite

    def suite() -> DetectorSuite:
        gap = GapDetector(GapParams(max_silence_s={"hazmat_truck": 180}))
        return DetectorSuite([gap], gate=JumpFilter(JumpParams()))

    events: list[Event] = [fix(0), fix(170, 2)]
    split, out = suite(), list[Alert]()
    assert split.process(events, T0 + 200_000, out) == T0 + 170_000 - 1
    split.process([], T0 + 240_000, out)
    whole, out2 = suite(), list[Alert]()
    whole.process(events, T0 + 240_000, out2)
    assert out == out2 == []


def test_a_fix_dropped_as_a_jump_still_proves_the_device_was_heard() -> None:
    # t(min)  0 .. 10     12            16
    # fix     A  ..  A    X (48 km off)  A'     every minute, then X, then A' near A
    # X is a wrong position (dropped), not a dead device: the silences are 2 and 4
    # minutes, no gap; without X the 6 minutes from 10 to 16 would be one.
    from citywatch.detectors.alerts import Alert
    from citywatch.detectors.tracks_gap import GapDetector, GapParams
    from citywatch.flows.detect import DetectorSuite

    def replay(events: list[Event]) -> tuple[list[Alert], list[DeadLetter]]:
        suite = DetectorSuite([GapDetector(GapParams())], gate=JumpFilter(JumpParams()))
        out: list[Alert] = []
        dead: list[DeadLetter] = []
        for ev in events:  # one fix a batch, the watermark 30 s behind
            suite.process([ev], ev.ts_ms - 30_000, out, dead)
        suite.process([], events[-1].ts_ms + 60_000, out, dead)
        return out, dead

    track = [fix(60 * k, 0.3 * k) for k in range(11)]
    back = fix(16 * 60, 4.8)  # where driving on brought it
    out, dead = replay([*track, fix(12 * 60, 48), back])
    assert [d.category for d in dead] == ["gps.jump"]
    assert out == []
    silent, _ = replay([*track, back])
    assert [(a.kind, a.first_ts_ms) for a in silent] == [("track.gap", T0 + 600_000)]
    # The filter says which fix it dropped and where it came among those it passed on.
    f = JumpFilter(JumpParams())
    f.admit([*track, fix(12 * 60, 48)], [])
    assert f.take_dropped() == []
    kept = f.admit([back, fix(17 * 60, 5.1)], [])
    assert [(i, e.ts_ms) for i, e in f.take_dropped()] == [(0, T0 + 720_000)]
    assert [e.ts_ms for e in kept] == [back.ts_ms, T0 + 17 * 60_000]
