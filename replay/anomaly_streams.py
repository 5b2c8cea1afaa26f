"""Labelled synthetic sensor streams for the anomaly models' quality benchmark and tests.

Every sensor reads ``level + daily cycle + noise`` at a fixed period; some
sensors get one injected anomaly of a known type, after ``quiet_days`` of clean
history (enough for the per-sensor warm-up and the hour-of-day profile):

======================  ===========================================================
``spike``               one reading 10 noise standard deviations off
``level_shift``         +6 sd for 6 hours
``drift``               a ramp to +6 sd over 12 hours (then back)
``variance``            noise four times as large for 6 hours
``broken_cycle``        the daily cycle (amplitude 6 sd) flat for a day
======================  ===========================================================

Same arguments, same arrays (numpy ``default_rng(seed)``).

>>> s = labelled_streams(sensors=10, days=4, period_s=600, seed=1)
>>> s.values.shape, len(s.labels), sorted({lb.type for lb in s.labels})[:2]
((5760,), 4, ['drift', 'level_shift'])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ANOMALY_TYPES = ("spike", "level_shift", "drift", "variance", "broken_cycle")
DAY_S = 86_400
START_MS = 1_781_481_600_000  # 2026-06-15T00:00:00Z


@dataclass(frozen=True, slots=True)
class Label:
    sensor: str
    type: str
    start_ms: int
    end_ms: int


@dataclass(slots=True)
class LabelledStreams:
    """Readings in time order (``ts_ms``, ``sensor`` index, ``values``) and the labels."""

    names: list[str]
    ts_ms: np.ndarray
    sensor: np.ndarray
    values: np.ndarray
    labels: list[Label]
    period_s: int
    days: float

    @property
    def clean(self) -> list[str]:
        bad = {lb.sensor for lb in self.labels}
        return [n for n in self.names if n not in bad]


def labelled_streams(
    *,
    sensors: int,
    days: float,
    period_s: int = 300,
    seed: int = 0,
    anomalous_share: float = 0.5,
    quiet_days: float = 3.0,
    types: tuple[str, ...] = ANOMALY_TYPES,
) -> LabelledStreams:
    rng = np.random.default_rng(seed)
    steps = int(days * DAY_S // period_s)
    t_s = np.arange(steps) * period_s
    names = [f"sim-{i:06d}" for i in range(sensors)]
    level = rng.uniform(20, 80, sensors)
    sd = rng.uniform(0.5, 2.0, sensors)
    amp = sd * rng.uniform(0, 6, sensors)
    phase = rng.uniform(0, 2 * np.pi, sensors)
    hours = t_s / 3600
    cycle = np.sin(2 * np.pi * hours[None, :] / 24 + phase[:, None]) * amp[:, None]
    noise = rng.normal(0, 1, (sensors, steps)) * sd[:, None]
    extra = np.zeros((sensors, steps))
    labels: list[Label] = []
    n_bad = int(sensors * anomalous_share)
    first = int(quiet_days * DAY_S // period_s)
    for i in range(n_bad):
        kind = types[i % len(types)]
        if kind == "broken_cycle":
            amp[i] = max(amp[i], 6 * sd[i])
            cycle[i] = np.sin(2 * np.pi * hours / 24 + phase[i]) * amp[i]
        span = {
            "spike": 1,
            "level_shift": 6 * 3600,
            "drift": 12 * 3600,
            "variance": 6 * 3600,
            "broken_cycle": DAY_S,
        }[kind] // period_s
        span = max(1, span)
        if first + span + 1 >= steps:
            continue
        k0 = int(rng.integers(first, steps - span - 1))
        k1 = k0 + span
        if kind == "spike":
            extra[i, k0] = 10 * sd[i] * rng.choice([-1, 1])
        elif kind == "level_shift":
            extra[i, k0:k1] = 6 * sd[i]
        elif kind == "drift":
            extra[i, k0:k1] = np.linspace(0, 6 * sd[i], k1 - k0)
        elif kind == "variance":
            extra[i, k0:k1] = noise[i, k0:k1] * 3
        elif kind == "broken_cycle":
            extra[i, k0:k1] = -cycle[i, k0:k1]
        labels.append(
            Label(names[i], kind, START_MS + k0 * period_s * 1000, START_MS + k1 * period_s * 1000)
        )
    values = level[:, None] + cycle + noise + extra
    # time-major order: all sensors' readings of step 0, then step 1, ...
    ts = np.repeat(START_MS + t_s.astype(np.int64) * 1000, sensors)
    who = np.tile(np.arange(sensors), steps)
    return LabelledStreams(names, ts, who, values.T.reshape(-1), labels, period_s, days)


@dataclass(slots=True)
class TypeScore:
    labels: int = 0
    found: int = 0
    delays_s: list[float] | None = None

    @property
    def recall(self) -> float:
        return self.found / self.labels if self.labels else 1.0


@dataclass(slots=True)
class Evaluation:
    per_type: dict[str, TypeScore]
    true_alerts: int
    false_alerts: int
    clean_false_alerts: int
    clean_sensor_days: float

    @property
    def precision(self) -> float:
        total = self.true_alerts + self.false_alerts
        return self.true_alerts / total if total else 1.0

    @property
    def false_per_sensor_day(self) -> float:
        return self.clean_false_alerts / self.clean_sensor_days if self.clean_sensor_days else 0.0


def evaluate(
    streams: LabelledStreams, alerts: list[tuple[str, int]], grace_s: int = 3600
) -> Evaluation:
    """Match ``(sensor, first_ts_ms)`` alerts to labels: an alert is true when it starts in
    a label's window on that sensor (plus ``grace_s`` after its end)."""
    by_sensor: dict[str, list[Label]] = {}
    for lb in streams.labels:
        by_sensor.setdefault(lb.sensor, []).append(lb)
    per_type = {t: TypeScore(delays_s=[]) for t in sorted({lb.type for lb in streams.labels})}
    for lb in streams.labels:
        per_type[lb.type].labels += 1
    found: set[Label] = set()
    true = false = clean_false = 0
    clean = set(streams.clean)
    for sensor, ts in sorted(alerts, key=lambda a: a[1]):
        hit = [
            lb
            for lb in by_sensor.get(sensor, ())
            if lb.start_ms <= ts <= lb.end_ms + grace_s * 1000
        ]
        if hit:
            true += 1
            for lb in hit:
                if lb not in found:
                    found.add(lb)
                    ts_score = per_type[lb.type]
                    ts_score.found += 1
                    assert ts_score.delays_s is not None
                    ts_score.delays_s.append((ts - lb.start_ms) / 1000)
        else:
            false += 1
            clean_false += sensor in clean
    return Evaluation(per_type, true, false, clean_false, len(clean) * streams.days)
