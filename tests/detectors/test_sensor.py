"""sensor.threshold: persistence, hysteresis, one alert per episode."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest

from citywatch.detectors.alerts import Alert
from citywatch.detectors.events import SensorEvent
from citywatch.detectors.sensor import ThresholdDetector, ThresholdParams

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
MIN = 60_000


def readings(
    values: list[float], *, sensor: str = "wl-01", kind: str = "water_level", step_ms: int = MIN
) -> list[SensorEvent]:
    return [
        SensorEvent(T0 + i * step_ms, sensor, kind, v, 120.9, 32.0, id=f"r{i}")
        for i, v in enumerate(values)
    ]


def water(**overrides: Any) -> ThresholdDetector:
    settings: dict[str, Any] = {"limit": 4.5, "clear_at": 4.3, "severity": "red", "unit": "m"}
    settings.update(overrides)
    return ThresholdDetector({"water_level": ThresholdParams(**settings)})


def run(det: ThresholdDetector, events: list[SensorEvent]) -> list[tuple[int, Alert]]:
    """Feed readings; return (index of the triggering reading, alert) pairs."""
    fired: list[tuple[int, Alert]] = []
    for i, ev in enumerate(events):
        out: list[Alert] = []
        det.on_event(ev, out)
        fired.extend((i, a) for a in out)
    return fired


def test_hysteresis_keeps_the_episode_until_clear_at_and_a_new_episode_alerts_again() -> None:
    # i       0    1    2    3    4     5    6    7
    # value  4.2  4.6  4.4  4.8  4.35  4.3  4.6  4.7      limit 4.5, clear at 4.3
    # state   .   OV   OV   OV   OV     .   OV   OV
    # alert       ^1   (4.4 and 4.35 keep it)   ^2 new episode, new id
    events = readings([4.2, 4.6, 4.4, 4.8, 4.35, 4.3, 4.6, 4.7])
    fired = run(water(), events)
    assert [i for i, _ in fired] == [1, 6]
    first, second = fired[0][1], fired[1][1]
    assert first.first_ts_ms == events[1].ts_ms
    assert second.first_ts_ms == events[6].ts_ms
    assert first.id != second.id
    assert first.kind == "sensor.threshold"
    assert (first.severity, first.subject, first.subject_type) == ("red", "wl-01", "sensor")
    assert first.evidence == {
        "sensor_kind": "water_level",
        "value": 4.6,
        "peak": 4.6,
        "limit": 4.5,
        "direction": "above",
        "unit": "m",
        "readings_beyond": 1,
        "duration_s": 0,
        "event_id": "r1",
    }


def test_min_readings_counts_readings_beyond_the_limit() -> None:
    # i       0    1    2    3    4
    # value  4.6  4.4  4.7  4.9  4.8      min_readings 3; 4.4 neither counts nor resets
    # alert                 ^ first_ts = reading 0, peak 4.9
    events = readings([4.6, 4.4, 4.7, 4.9, 4.8])
    fired = run(water(min_readings=3), events)
    assert [i for i, _ in fired] == [3]
    alert = fired[0][1]
    assert alert.first_ts_ms == events[0].ts_ms
    assert alert.evidence["readings_beyond"] == 3
    assert alert.evidence["peak"] == 4.9
    assert alert.evidence["duration_s"] == 180


def test_min_readings_not_reached_when_the_episode_clears_first() -> None:
    events = readings([4.6, 4.7, 4.2, 4.6, 4.7, 4.1])
    assert run(water(min_readings=3), events) == []


def test_min_over_s_needs_the_episode_to_last() -> None:
    # t(min)  0    1    2    3    4    5    6
    # value  4.6  4.7  4.6  4.8  4.6  4.6  4.7    min_over_s 300
    # alert                           ^ at 5 min, duration 300 s
    events = readings([4.6, 4.7, 4.6, 4.8, 4.6, 4.6, 4.7])
    fired = run(water(min_over_s=300), events)
    assert [i for i, _ in fired] == [5]
    assert fired[0][1].evidence["duration_s"] == 300


def test_min_over_s_and_min_readings_together() -> None:
    # Both must hold: 5 minutes pass at reading 1 (10-minute steps), 4 readings at reading 3.
    events = readings([4.6, 4.6, 4.6, 4.6, 4.6], step_ms=10 * MIN)
    fired = run(water(min_over_s=300, min_readings=4), events)
    assert [i for i, _ in fired] == [3]


def test_direction_below() -> None:
    # i        0    1     2    3    4    5    6     limit 0.5 (gas pressure), clear at 0.8
    # value   1.0  0.4  0.45  0.2  0.9  0.3  0.1    two readings needed
    # state    .   ov    OV   OV    .   ov   OV
    # alert              ^1                  ^2     peak: the lowest value so far
    det = ThresholdDetector(
        {"gas": ThresholdParams(limit=0.5, clear_at=0.8, direction="below", min_readings=2)}
    )
    events = readings([1.0, 0.4, 0.45, 0.2, 0.9, 0.3, 0.1], kind="gas")
    fired = run(det, events)
    assert [i for i, _ in fired] == [2, 6]
    assert fired[0][1].evidence["peak"] == 0.4
    assert fired[0][1].evidence["direction"] == "below"
    assert fired[1][1].evidence["peak"] == 0.1


def test_without_clear_at_the_limit_itself_clears() -> None:
    # limit 4.5, no clear_at: 4.5 is not beyond and clears; 4.51 starts a new episode
    events = readings([4.6, 4.5, 4.51])
    fired = run(water(clear_at=None), events)
    assert [i for i, _ in fired] == [0, 2]


def test_unknown_sensor_kind_is_ignored() -> None:
    det = water()
    assert run(det, readings([99.0, 99.0], kind="noise")) == []
    assert det.live_keys() == 0


def test_out_of_order_reading_is_ignored() -> None:
    # arrival: 4.6 @1min, 4.1 @0min (late: would have cleared), 4.7 @2min -> one episode
    ev_a, ev_b, ev_c = readings([4.1, 4.6, 4.7])
    fired = run(water(min_readings=2), [ev_b, ev_a, ev_c])
    assert [a.evidence["event_id"] for _, a in fired] == ["r2"]
    assert fired[0][1].first_ts_ms == ev_b.ts_ms


def test_sensors_are_independent() -> None:
    a = readings([4.6, 4.7], sensor="a")
    b = readings([4.2, 4.6], sensor="b")
    fired = run(water(min_readings=2), [a[0], b[0], b[1], a[1]])
    assert [x.subject for _, x in fired] == ["a"]


def test_unit_falls_back_to_the_event_unit() -> None:
    det = ThresholdDetector({"pm10": ThresholdParams(limit=150)})
    ev = SensorEvent(T0, "pm", "pm10", 200.0, unit="ug/m3")
    out: list[Alert] = []
    det.on_event(ev, out)
    assert out[0].evidence["unit"] == "ug/m3"


def test_idle_sensors_are_evicted_and_the_detector_pickles() -> None:
    det = ThresholdDetector(
        {"water_level": ThresholdParams(limit=4.5, min_readings=3)}, idle_evict_s=600
    )
    run(det, readings([4.6, 4.7]))
    clone = pickle.loads(pickle.dumps(det))
    assert [i for i, _ in run(clone, readings([4.6, 4.7, 4.8])[2:])] == [0]
    det.on_watermark(T0 + 20 * MIN, [])
    assert det.live_keys() == 0


def test_input_events_are_not_mutated() -> None:
    events = readings([4.2, 4.6, 4.4, 4.8, 4.3, 4.6])
    before = copy.deepcopy(events)
    run(water(), events)
    assert events == before


@pytest.mark.parametrize(
    ("settings", "names"),
    [
        ({"limit": 4.5, "direction": "sideways"}, '"direction"'),
        ({"limit": 4.5, "min_readings": 0}, '"min_readings" must be > 0'),
        ({"limit": 4.5, "min_over_s": -1}, '"min_over_s" must be >= 0'),
        ({"limit": 4.5, "severity": "purple"}, "severity must be one of"),
        ({"limit": 4.5, "clear_at": 5.0}, '"clear_at" 5.0 must not be beyond "limit" 4.5'),
        (
            {"limit": 0.5, "clear_at": 0.2, "direction": "below"},
            '"clear_at" 0.2 must not be beyond "limit" 0.5',
        ),
    ],
    ids=[
        "direction",
        "min_readings-zero",
        "min_over_s-negative",
        "severity",
        "clear_at-above-limit",
        "clear_at-below-limit-for-below",
    ],
)
def test_threshold_params_reject_bad_values_naming_the_setting(
    settings: dict[str, Any], names: str
) -> None:
    with pytest.raises(ValueError, match="^sensor.threshold: ") as info:
        ThresholdParams(**settings)
    assert names in str(info.value)
