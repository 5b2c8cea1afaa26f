"""Do the quality benchmark's sensors share a component their peers would see?

A peer-relative residual (a sensor's residual less its peers') has less noise than
its own only when part of the noise is common to the group (weather, traffic). This
measures that share on the streams of :mod:`citywatch.benchmarks.anomaly_quality`:
each clean sensor's readings less its own hour-of-day profile (its mean per 5-minute
slot of the day over the whole run, which removes its daily cycle), then

- the mean and largest pairwise correlation of those residuals;
- the share of their total variance carried by the first principal component
  (for independent residuals, the sampling edge ``(1 + sqrt(n / T))^2 / n`` of n
  sensors over T readings, Marchenko-Pastur);
- the variance of each residual less the mean of the others', against its own
  (below 1 only when a common part is removed; 1 + 1 / peers when none is).

Run: ``python -m citywatch.benchmarks.drift_peers [--seed 1 --sensors 200 --days 10]``.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from citywatch.replay.anomaly_streams import DAY_S, labelled_streams


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sensors", type=int, default=200)
    ap.add_argument("--days", type=float, default=10.0)
    ap.add_argument("--seed", type=int, nargs="*", default=[1, 101, 102])
    args = ap.parse_args(argv)
    print(
        "| seed | clean sensors | mean pairwise corr | largest | first component share "
        "(independent: sampling edge) | var(residual - peers' mean) / var(residual) |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for seed in args.seed:
        s = labelled_streams(sensors=args.sensors, days=args.days, seed=seed)
        n = len(s.names)
        vals = s.values.reshape(-1, n)  # time-major: readings x sensors
        bad = {s.names.index(lb.sensor) for lb in s.labels}
        clean = [j for j in range(n) if j not in bad]
        v = vals[:, clean]
        per_day = DAY_S // s.period_s
        slot = np.arange(v.shape[0]) % per_day
        prof = np.stack([v[slot == k].mean(axis=0) for k in range(per_day)])
        r = v - prof[slot]
        r = (r - r.mean(axis=0)) / r.std(axis=0)
        c = np.corrcoef(r, rowvar=False)
        off = c[~np.eye(c.shape[0], dtype=bool)]
        eig = np.linalg.eigvalsh(c)
        m, t = r.shape[1], r.shape[0]
        edge = (1 + np.sqrt(m / t)) ** 2 / m
        peers = (r.sum(axis=1, keepdims=True) - r) / (m - 1)
        ratio = float(np.mean((r - peers).var(axis=0) / r.var(axis=0)))
        print(
            f"| {seed} | {m} | {off.mean():.4f} | {np.abs(off).max():.3f} | "
            f"{eig[-1] / eig.sum():.4f} ({edge:.4f}) | {ratio:.3f} ({1 + 1 / (m - 1):.3f}) |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
