"""A calibration step in the level distance's warm-up: one episode, one alert."""

from __future__ import annotations

import random

from citywatch.detectors.alerts import Alert
from citywatch.detectors.anomaly.params import BaselineParams
from citywatch.detectors.anomaly.sensor import SensorAnomalyDetector
from citywatch.detectors.events import SensorEvent

T0 = 1_781_528_400_000
MINUTE = 60_000
NOISE = BaselineParams(warmup_readings=30, min_scale=0.5, unit="dB")


def _step_alerts(seed: int, step_at: int) -> list[Alert]:
    rng = random.Random(seed)
    level = rng.uniform(45, 65)
    det = SensorAnomalyDetector({"noise": NOISE})
    out: list[Alert] = []
    for i in range(step_at + 120):
        value = level + rng.gauss(0, 2) + (14.0 if i >= step_at else 0.0)
        det.on_event(SensorEvent(T0 + i * MINUTE, "ns-1", "noise", round(value, 2)), out)
        det.on_watermark(T0 + i * MINUTE, out)
    return out


def test_a_step_between_the_warm_ups_alerts_once_at_the_step() -> None:
    # reading  0 ... 30 (residual scored) ... 44 step +7 sd ... 60 (level scored) ... 164
    # alert                                   ^ residual; the level keeps the episode on,
    #                                           no second alert when it is scored at 60
    for seed, step_at in ((1, 44), (2, 50), (5, 48), (7, 45)):
        out = _step_alerts(seed, step_at)
        assert [(a.first_ts_ms - T0) // MINUTE for a in out] == [step_at], (seed, step_at)


def test_a_step_after_both_warm_ups_still_alerts_once_and_the_episode_ends_on_return() -> None:
    rng = random.Random(9)
    det = SensorAnomalyDetector({"noise": NOISE})
    out: list[Alert] = []
    for i in range(400):
        step = 14.0 if 150 <= i < 200 or 300 <= i < 330 else 0.0
        value = 55 + rng.gauss(0, 2) + step
        det.on_event(SensorEvent(T0 + i * MINUTE, "ns-1", "noise", round(value, 2)), out)
        det.on_watermark(T0 + i * MINUTE, out)
    # two separate steps, two episodes: the first ended once the value came back
    assert [(a.first_ts_ms - T0) // MINUTE for a in out] == [150, 300]
