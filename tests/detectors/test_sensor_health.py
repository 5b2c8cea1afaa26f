"""sensor.offline (event-time silence) and sensor.stuck (one value too long)."""

from __future__ import annotations

import pickle

import pytest

from citywatch.detectors.alerts import Alert
from citywatch.detectors.events import SensorEvent
from citywatch.detectors.sensor_health import (
    OfflineDetector,
    OfflineParams,
    StuckDetector,
    StuckParams,
)

T0 = 1_781_528_400_000
MIN = 60_000


def reading(
    minute: float, value: float = 3.0, sensor: str = "wl-1", kind: str = "water_level"
) -> SensorEvent:
    return SensorEvent(
        T0 + int(minute * MIN),
        sensor,
        kind,
        value,
        121.0,
        31.9,
        id=f"{sensor}@{minute}",
        zones=("lv",),
    )


def offline(silent_s: int = 300) -> OfflineDetector:
    return OfflineDetector({"water_level": OfflineParams(silent_s=silent_s)})


def feed(
    det: OfflineDetector | StuckDetector, arrivals: list[tuple[SensorEvent, int | None]]
) -> list[Alert]:
    """(event, watermark in minutes after it or None) in arrival order."""
    out: list[Alert] = []
    for ev, wm_min in arrivals:
        det.on_event(ev, out)
        if wm_min is not None:
            det.on_watermark(T0 + wm_min * MIN, out)
    return out


def test_offline_fires_once_from_the_last_reading_and_recovers() -> None:
    # t(min)   0  1  2  3  .  .  .  .  .  .  10  11       silent_s 300
    # reading  r  r  r  r                     r   r        (recovers at 10)
    # wm       after each reading; a bare watermark at 9 fires the silence
    # alert                   ts = 3 + 5 = 8, first_ts = 3; none after recovery
    det = offline()
    out = feed(det, [(reading(m), m) for m in (0, 1, 2, 3)])
    assert out == []
    det.on_watermark(T0 + 8 * MIN, out)
    assert out == [], "at exactly last + silent_s a reading may still come"
    det.on_watermark(T0 + 9 * MIN, out)
    assert [(a.kind, a.ts_ms, a.first_ts_ms, a.zone) for a in out] == [
        ("sensor.offline", T0 + 8 * MIN, T0 + 3 * MIN, "lv")
    ]
    assert out[0].evidence["last_value"] == 3.0 and out[0].evidence["silent_s"] == 300
    det.on_watermark(T0 + 9 * MIN + 1, out)
    out += feed(det, [(reading(10), 10), (reading(11), 11)])
    assert len(out) == 1


def test_offline_alert_is_the_same_whether_a_watermark_or_the_next_reading_reveals_it() -> None:
    # Two deliveries of one recording:
    #   A: readings 0, 1, then a watermark at 9 (fires), then the reading at 10
    #   B: readings 0, 1, 10 in one batch, one watermark at 10 afterwards
    # Both see a gap 1 -> 10 longer than 5 minutes: one alert, same id and times.
    a = feed(offline(), [(reading(0), 0), (reading(1), 1), (reading(10), None)])
    det_a = offline()
    out_a = feed(det_a, [(reading(0), 0), (reading(1), 1)])
    det_a.on_watermark(T0 + 9 * MIN, out_a)
    out_a += feed(det_a, [(reading(10), 10)])
    det_b = offline()
    out_b = feed(det_b, [(reading(0), None), (reading(1), None), (reading(10), 10)])
    assert a == []  # no watermark yet: nothing decided
    assert [x.to_json() for x in out_a] == [x.to_json() for x in out_b]
    assert len(out_b) == 1 and out_b[0].first_ts_ms == T0 + 1 * MIN


def test_offline_out_of_order_reading_closes_the_gap_before_the_watermark() -> None:
    # arrival  r0  r1  r8  r5  | wm 8.5      silent_s 300
    # settled in event time: 0 1 5 8 -> gaps 4 and 3 minutes: no silence
    det = offline()
    out = feed(det, [(reading(0), None), (reading(1), None), (reading(8), None), (reading(5), 8)])
    det.on_watermark(T0 + int(8.5 * MIN), out)
    assert out == []


def test_offline_ignores_unconfigured_kinds_and_pickles_mid_silence() -> None:
    det = offline()
    feed(det, [(reading(0, kind="noise"), 0)])
    assert det.live_keys() == 0
    feed(det, [(reading(0), 0), (reading(1), 1)])
    copy = pickle.loads(pickle.dumps(det))
    out_a: list[Alert] = []
    out_b: list[Alert] = []
    det.on_watermark(T0 + 20 * MIN, out_a)
    copy.on_watermark(T0 + 20 * MIN, out_b)
    assert [a.id for a in out_a] == [b.id for b in out_b] and len(out_a) == 1


def test_offline_evicts_idle_sensors() -> None:
    det = OfflineDetector({"water_level": OfflineParams(silent_s=60)}, idle_evict_s=3600)
    feed(det, [(reading(0, sensor=f"s{i}"), 0) for i in range(50)])
    assert det.live_keys() == 50
    det.on_watermark(T0 + 120 * MIN, [])
    assert det.live_keys() == 0


def test_offline_rejects_an_eviction_shorter_than_the_silence() -> None:
    with pytest.raises(ValueError, match="idle_evict_s.*must exceed the longest silent_s"):
        OfflineDetector({"water_level": OfflineParams(silent_s=7200)}, idle_evict_s=3600)


def stuck(**kw: float) -> StuckDetector:
    return StuckDetector({"water_level": StuckParams(**kw)})  # type: ignore[arg-type]


def test_stuck_then_moving() -> None:
    # t(min)   0    1    2    3    4    5    6    7    8
    # value   3.1  3.2  3.2  3.2  3.2  3.3  3.3  3.3  3.3     min_readings 4
    # run      a    b    b    b    b^   c    c    c    c^     one alert per run
    values = [3.1, 3.2, 3.2, 3.2, 3.2, 3.3, 3.3, 3.3, 3.3]
    out = feed(stuck(min_readings=4), [(reading(m, v), None) for m, v in enumerate(values)])
    assert [(a.first_ts_ms, a.ts_ms, a.evidence["value"]) for a in out] == [
        (T0 + 1 * MIN, T0 + 4 * MIN, 3.2),
        (T0 + 5 * MIN, T0 + 8 * MIN, 3.3),
    ]


def test_stuck_by_time_with_tolerance_and_late_readings_ignored() -> None:
    # t(min)   0     5     10    12(late: arrives after 15)  15       min_stuck_s 900
    # value   2.50  2.51  2.49   9.9                         2.50      tolerance 0.02
    # alert                                                  ^ 15 min, 4 readings
    arrivals = [
        (reading(0, 2.5), None),
        (reading(5, 2.51), None),
        (reading(10, 2.49), None),
        (reading(15, 2.5), None),
        (reading(12, 9.9), None),
    ]
    out = feed(stuck(min_stuck_s=900, tolerance=0.02), arrivals)
    assert [(a.ts_ms, a.evidence["readings"], a.evidence["stuck_s"]) for a in out] == [
        (T0 + 15 * MIN, 4, 900)
    ]


def test_two_equal_readings_across_a_silence_are_not_a_stuck_run() -> None:
    # t(min)   0     1     (nothing: a gateway clock stepped 50 min ahead)   51    52 ... 66
    # value   2.918 2.917                                                  2.917 2.917 ... 2.917
    # run      a     b                                                      c^ restarts at 51
    # alert                                                   15 min after 51, not at 51
    arrivals = [(reading(0, 2.918), None), (reading(1, 2.917), None)]
    arrivals += [(reading(m, 2.917), None) for m in range(51, 67)]
    out = feed(stuck(min_stuck_s=900), arrivals)
    assert [(a.first_ts_ms, a.ts_ms, a.evidence["readings"]) for a in out] == [
        (T0 + 51 * MIN, T0 + 66 * MIN, 16)
    ]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, 'set "min_readings" \\(>= 2\\) or "min_stuck_s"'),
        ({"min_readings": 5, "tolerance": -1.0}, '"tolerance" must be >= 0'),
        ({"min_readings": 5, "severity": "purple"}, "severity must be one of"),
    ],
    ids=["nothing-set", "negative-tolerance", "bad-severity"],
)
def test_stuck_params_validate(settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StuckParams(**settings)
