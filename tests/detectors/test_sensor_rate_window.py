"""sensor.rate (least-squares slope per hour) and sensor.window (event-time windows)."""

from __future__ import annotations

import pytest

from citywatch.detectors.alerts import Alert
from citywatch.detectors.events import SensorEvent
from citywatch.detectors.sensor_rate import RateDetector, RateParams
from citywatch.detectors.sensor_window import WindowDetector, WindowParams

T0 = 1_781_524_800_000  # 2026-06-15T12:00:00Z, on the hour
MIN = 60_000


def reading(minute: float, value: float, sensor: str = "s1", kind: str = "pm10") -> SensorEvent:
    return SensorEvent(
        T0 + int(minute * MIN), sensor, kind, value, 121.0, 31.9, id=f"{sensor}@{minute}"
    )


# -- sensor.rate ---------------------------------------------------------------------


def rate(**kw: object) -> RateDetector:
    settings: dict = {"window_s": 1200, "rise_per_h": 0.6, "min_readings": 5, "min_span_s": 600}
    settings.update(kw)
    return RateDetector({"water_level": RateParams(**settings)})


def run(
    det: RateDetector | WindowDetector, events: list[SensorEvent], wm_lag_min: float | None = None
) -> list[Alert]:
    out: list[Alert] = []
    for ev in events:
        det.on_event(ev, out)
        if wm_lag_min is not None:
            det.on_watermark(ev.ts_ms - int(wm_lag_min * MIN), out)
    return out


def test_rate_rise_alerts_once_per_episode_and_again_after_it_clears() -> None:
    # t(min)   0 ... 20  ...  40 ....... 60  ...  80 ... 100
    # level    flat  | +2 m/h |  flat     | +2 m/h | flat
    # alert          ^1                   ^2      (episode 1 cleared while flat)
    def level(m: int) -> float:
        up = min(max(m - 20, 0), 20) + min(max(m - 60, 0), 20)
        return round(3.0 + 2.0 * up / 60, 3)

    out = run(rate(), [reading(m, level(m), kind="water_level") for m in range(0, 100, 2)])
    assert len(out) == 2
    first, second = out
    assert 20 * MIN < first.ts_ms - T0 < 30 * MIN and 60 * MIN < second.ts_ms - T0 < 70 * MIN
    assert first.evidence["direction"] == "rise" and first.evidence["rate_per_h"] > 0.6
    assert first.first_ts_ms == first.ts_ms - 20 * MIN  # the window's first reading
    assert first.id != second.id


def test_rate_fall_limit_and_rise_only_rules() -> None:
    falling = [reading(m, round(4.0 - m / 30, 3), kind="water_level") for m in range(0, 40, 2)]
    assert run(rate(), falling) == []  # rise only
    out = run(rate(rise_per_h=None, fall_per_h=1.0), falling)
    assert [a.evidence["direction"] for a in out] == ["fall"]
    assert out[0].evidence["rate_per_h"] == pytest.approx(-2.0, abs=0.01)


def test_rate_waits_for_min_span_and_ignores_out_of_order_readings() -> None:
    # t(min)  0  1  2  3  4  (3.5 late)    steep, but only 4 minutes: min_span 10 minutes
    steep = [reading(m, 3.0 + m, kind="water_level") for m in range(5)]
    late = reading(3.5, 99.0, kind="water_level")
    det = rate()
    assert run(det, [*steep, late]) == []
    out = run(det, [reading(m, 3.0 + m, kind="water_level") for m in range(5, 11)])
    assert len(out) == 1 and out[0].ts_ms == T0 + 10 * MIN
    assert out[0].evidence["readings"] == 11  # the late 99.0 never counted


def test_rate_noise_and_tide_stay_quiet() -> None:
    import math
    import random

    rng = random.Random(3)
    tide = [
        reading(
            m,
            round(3.0 + 0.35 * math.sin(2 * math.pi * m / 745) + rng.gauss(0, 0.02), 3),
            kind="water_level",
        )
        for m in range(0, 24 * 60)
    ]
    assert run(rate(window_s=1800, min_readings=15, min_span_s=1200), tide) == []


def test_rate_params_validate() -> None:
    with pytest.raises(ValueError, match='set "rise_per_h" or "fall_per_h"'):
        RateParams()
    with pytest.raises(ValueError, match='"min_span_s" 4000 must not exceed "window_s" 1800'):
        RateParams(rise_per_h=1.0, min_span_s=4000)


# -- sensor.window -------------------------------------------------------------------


def hourly(**kw: object) -> WindowDetector:
    settings: dict = {
        "size_s": 3600,
        "slide_s": 600,
        "limit": 115.0,
        "clear_at": 100.0,
        "min_readings": 30,
        "allowed_lateness_s": 120,
    }
    settings.update(kw)
    return WindowDetector({"pm10": [WindowParams(**settings)]})


def test_window_boundary_tumbling_windows_judge_each_clock_hour() -> None:
    # t(min)    0 ............ 60 ............ 120
    # value     100 (30 min) then 140 (30 min) | 140 (60 min)
    # hourly    mean 120 -> alert (ts 60, first_ts 0) | mean 140: same episode, no alert
    # a reading at exactly 60 belongs to the second hour
    det = hourly(slide_s=None, allowed_lateness_s=0)
    values = [100.0] * 30 + [140.0] * 90
    out = run(det, [reading(m, v) for m, v in enumerate(values)], wm_lag_min=0.5)
    det.on_watermark(T0 + 121 * MIN, out)
    assert [
        (a.first_ts_ms - T0, a.ts_ms - T0, a.evidence["value"], a.evidence["readings"]) for a in out
    ] == [(0, 60 * MIN, 120.0, 60)]


def test_window_sliding_out_of_order_and_late_readings() -> None:
    # Sliding hourly means every 10 minutes, allowed lateness 2 minutes.
    # t(min)   0 ........ 40 ....... 70
    # value    60 ........| 200 .....|          mean of [10, 70) = (30*60 + 30*200)/60 = 130
    # arrivals: the reading of minute 65 arrives at 71 (out of order, still in time);
    #           the reading of minute 20 arrives at 80 (its window closed at 32): late
    det = hourly()
    events = [reading(m, 60.0 if m < 40 else 200.0) for m in range(70) if m not in (20, 65)]
    out = run(det, events, wm_lag_min=0.5)
    out += run(det, [reading(71, 60.0), reading(65, 200.0)], wm_lag_min=-0.1)
    assert det.late_events_ == 0
    out += run(det, [reading(80, 60.0), reading(20, 60.0)], wm_lag_min=-0.1)
    assert det.late_events_ == 1
    assert len(out) == 1
    alert = out[0]
    assert alert.evidence["value"] > 115.0 and alert.ts_ms - T0 <= 70 * MIN
    assert (alert.ts_ms - alert.first_ts_ms) == 60 * MIN and (alert.ts_ms - T0) % (10 * MIN) == 0
    det.on_watermark(T0 + 200 * MIN, out)
    det.on_event(reading(201, 300.0), out)
    det.on_watermark(T0 + 300 * MIN, out)
    assert det.live_keys() <= 1


def test_window_late_count_is_surfaced_in_the_next_alert() -> None:
    det = hourly(slide_s=None, allowed_lateness_s=0, min_readings=1, clear_at=None)
    out = run(det, [reading(0, 50.0), reading(61, 50.0)], wm_lag_min=0)
    out += run(det, [reading(30, 500.0)], wm_lag_min=None)  # hour 0 is closed: late
    out += run(det, [reading(62, 500.0), reading(125, 50.0)], wm_lag_min=0)
    assert det.late_events_ == 1
    assert [(a.evidence["late_readings"], a.evidence["value"]) for a in out] == [(1, 275.0)]


@pytest.mark.parametrize(
    ("aggregate", "extra", "values", "expect"),
    [
        ("max", {}, [10.0, 400.0, 10.0], 400.0),
        ("count", {"count_above": 150.0}, [160.0, 170.0, 10.0, 180.0], 3.0),
    ],
    ids=["max", "count-above"],
)
def test_window_aggregates(aggregate: str, extra: dict, values: list[float], expect: float) -> None:
    det = hourly(
        slide_s=None,
        allowed_lateness_s=0,
        min_readings=1,
        aggregate=aggregate,
        limit=2.0,
        clear_at=None,
        **extra,
    )
    out = run(det, [reading(m, v) for m, v in enumerate(values)], wm_lag_min=0)
    det.on_watermark(T0 + 61 * MIN, out)
    assert [a.evidence["value"] for a in out] == [expect]


def test_window_params_validate() -> None:
    with pytest.raises(ValueError, match='"size_s" \\(3600\\) must be a multiple of "slide_s"'):
        WindowParams(limit=1.0, slide_s=700)
    with pytest.raises(ValueError, match='"count_above" is required with aggregate "count"'):
        WindowParams(limit=1.0, aggregate="count")
    with pytest.raises(ValueError, match='"aggregate" must be one of mean, max, count'):
        WindowParams(limit=1.0, aggregate="median")
