"""``sensor.anomaly`` in a model's first hour: lone false alerts and steps found.

Simulated noise monitors (level 45-65 dB, Gaussian noise sd 2 dB, a reading a
minute, ``warmup_readings`` 30, as the generator's noise monitors), all through
:class:`citywatch.detectors.anomaly.SensorAnomalyDetector` in one batch a minute:

- clean: the monitors with an alert in readings 30-59 (their residual spread is
  an estimate from 30-59 readings);
- step: each monitor steps up ``--step-sd`` noise sd (7: the generator's 14 dB
  calibration step) at a reading drawn from 31-59; the share found on the step's
  first reading, on the next, within 5 readings, and before it (false).

Run: ``python -m citywatch.benchmarks.anomaly_young [--sensors 20000 --seed 1]``
(under a minute on one core).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from citywatch.detectors.alerts import Alert
from citywatch.detectors.anomaly.params import BaselineParams
from citywatch.detectors.anomaly.sensor import SensorAnomalyDetector
from citywatch.detectors.events import SensorEvent

T0 = 1_781_528_400_000
MINUTE = 60_000


def first_alerts(
    sensors: int, readings: int, seed: int, step_sd: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Each monitor's first alert (reading index, -1: none) and its step's reading."""
    rng = np.random.default_rng(seed)
    det = SensorAnomalyDetector({"noise": BaselineParams(warmup_readings=30, min_scale=0.5)})
    level = rng.uniform(45, 65, sensors)
    at = rng.integers(31, 60, sensors)
    names = [f"m{i}" for i in range(sensors)]
    first = np.full(sensors, -1)
    for i in range(readings):
        x = level + rng.normal(0, 2, sensors)
        if step_sd is not None:
            x = x + np.where(i >= at, 2 * step_sd, 0.0)
        out: list[Alert] = []
        ts = T0 + i * MINUTE
        det.process(
            "noise",
            [
                SensorEvent(ts, n, "noise", round(float(v), 2))
                for n, v in zip(names, x.tolist(), strict=True)
            ],
            out,
        )
        for a in out:
            j = int(a.subject[1:])
            if first[j] < 0:
                first[j] = (a.first_ts_ms - T0) // MINUTE
    return first, at


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sensors", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--step-sd", type=float, default=7.0)
    args = ap.parse_args(argv)
    f, _ = first_alerts(args.sensors, 60, args.seed, None)
    print(f"clean: {int((f >= 0).sum())} of {args.sensors} monitors alerted in readings 30-59")
    f, at = first_alerts(args.sensors, 66, args.seed + 1, args.step_sd)
    print(
        f"step of {args.step_sd:g} sd at reading 31-59: on its first reading "
        f"{np.mean(f == at):.3f}, on the next {np.mean(f == at + 1):.3f}, within 5 readings "
        f"{np.mean((f >= at) & (f <= at + 5)):.3f}, before it {np.mean((f >= 0) & (f < at)):.5f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
