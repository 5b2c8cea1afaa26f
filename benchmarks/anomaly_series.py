"""Labelled univariate series for the anomaly scorer's real-data benchmark.

Sources (none of them the project's generator; all shipped or installed offline):

- ``ucr-135``: ``135_UCR_Anomaly_InternalBleeding16`` of the UCR Time Series
  Anomaly Archive (the KDD Cup 2021 multi-dataset anomaly competition, Wu &
  Keogh), as redistributed in aeon 1.6.0 (BSD-3-Clause); the archive's own label
  (one anomaly). Index timestamps, one reading a second.
- ``water-flow``: ``river.datasets.WaterFlow`` (river, BSD-3-Clause; donated by
  Tecnojest s.r.l.): hourly water flow through a pipeline branch, March-May
  2022, with two silences (irregular intervals). Its documentation names four
  anomalous segments, three low-flow moments and one pumping peak; the labels are
  those segments, located as the readings below 90 l/s and the one reading above
  108 l/s.
- ``taylor-*``: half-hourly electricity demand of England and Wales, 5 June to
  27 August 2000 (Taylor 2003; via pmdarima 2.1.1, MIT), a real series with daily
  and weekly cycles, with one injected labelled anomaly per seed (spike, level
  shift, drift, variance change, stuck reading, a weekday that runs like a
  Sunday). Each seed also rescales the series (1e-3 to 1e3), adds white noise,
  and may resample it hourly or drop a tenth of its readings at random.

Tuning uses the ``TUNING_SEEDS`` of ``taylor``; the evaluation uses
``EVALUATION_SEEDS``, ``ucr-135`` and ``water-flow``, none of which was looked
at while tuning.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path

import numpy as np

from citywatch.data import data_dir

TUNING_SEEDS = tuple(range(1, 13))
EVALUATION_SEEDS = tuple(range(101, 137))
INJECTED = ("spike", "level_shift", "drift", "variance", "stuck", "holiday")
DATA = data_dir() / "anomaly_series"
HOUR_MS = 3_600_000


@dataclass(slots=True)
class Series:
    """One labelled series: times (epoch ms), values, label windows as index ranges
    ``[start, end]`` (inclusive), the label's type and the source."""

    name: str
    ts_ms: np.ndarray
    values: np.ndarray
    windows: list[tuple[int, int]]
    kind: str
    source: str


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def ucr_135() -> Series:
    rows = _read_csv(DATA / "ucr_135_internal_bleeding16.csv")
    v = np.array([float(r["value"]) for r in rows])
    lab = np.array([int(r["is_anomaly"]) for r in rows])
    idx = np.flatnonzero(lab)
    ts = 1_600_000_000_000 + np.arange(v.size, dtype=np.int64) * 1000
    return Series("ucr-135", ts, v, [(int(idx[0]), int(idx[-1]))], "archive", "UCR/KDD-2021")


def water_flow() -> Series:
    path = resources.files("river.datasets").joinpath("water-flow.csv")
    with path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    ts = np.array(
        [int(datetime.fromisoformat(r["Time"]).timestamp() * 1000) for r in rows], np.int64
    )
    v = np.array([float(r["Water flow [l/s]"]) for r in rows])
    odd = (v < 90) | (v > 108)
    edges = np.diff(np.r_[0, odd.astype(int), 0])
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    windows = [(int(a), int(b)) for a, b in zip(starts, ends, strict=True)]
    return Series("water-flow", ts, v, windows, "documented", "river WaterFlow")


def _taylor_raw() -> tuple[np.ndarray, np.ndarray]:
    rows = _read_csv(DATA / "taylor_demand.csv")
    ts = np.array(
        [int(datetime.fromisoformat(r["timestamp"]).timestamp() * 1000) for r in rows], np.int64
    )
    return ts, np.array([float(r["value"]) for r in rows])


def taylor(seed: int) -> Series:
    """The demand series with one injected anomaly and this seed's scale, noise,
    sampling (see the module docstring)."""
    rng = np.random.default_rng(seed)
    ts, v = _taylor_raw()
    kind = INJECTED[seed % len(INJECTED)]
    v = v.copy()
    step_sd = float(np.median(np.abs(np.diff(v)))) * 1.4826
    per_h = 2
    n = v.size
    first = 21 * 24 * per_h  # three weeks of history before the anomaly
    span = {"spike": 1, "level_shift": 12, "drift": 24, "variance": 12, "stuck": 12}.get(kind, 48)
    k0 = int(rng.integers(first, n - span - 48))
    sign = rng.choice([-1.0, 1.0])
    if kind == "spike":
        v[k0] += sign * rng.uniform(6, 10) * step_sd
    elif kind == "level_shift":
        v[k0 : k0 + span] += sign * rng.uniform(0.08, 0.15) * v[k0 : k0 + span].mean()
    elif kind == "drift":
        ramp = np.linspace(0, 1, span) * rng.uniform(0.1, 0.2) * v[k0]
        v[k0 : k0 + span] += sign * ramp
    elif kind == "variance":
        v[k0 : k0 + span] += rng.normal(0, rng.uniform(4, 6) * step_sd, span)
    elif kind == "stuck":
        v[k0 : k0 + span] = v[k0]
    else:  # holiday: a weekday runs like the Sunday before it
        day = 48
        k0 = (k0 // (7 * day)) * 7 * day + int(rng.integers(0, 5)) * day  # Mon..Fri 00:00
        k0 = max(k0, first)
        k0 -= k0 % day
        v[k0 : k0 + day] = v[k0 - ((k0 // day) % 7 + 1) * day : k0 - ((k0 // day) % 7) * day]
    windows = [(k0, k0 + span - 1)]
    # this seed's scale, offset and extra noise
    scale = 10.0 ** rng.uniform(-3, 3)
    v = (v + rng.normal(0, rng.uniform(0, 1.0) * step_sd, n)) * scale + rng.uniform(-1, 1) * scale
    keep = np.ones(n, dtype=bool)
    variant = (seed // len(INJECTED)) % 3
    if variant == 1:  # hourly averages
        v = v.reshape(-1, 2).mean(1)
        ts = ts[::2]
        windows = [(a // 2, b // 2) for a, b in windows]
        keep = np.ones(v.size, dtype=bool)
    elif variant == 2:  # irregular: a tenth of the readings lost
        keep = rng.random(n) > 0.1
        a, b = windows[0]
        keep[a] = True
    idx = np.flatnonzero(keep)
    pos = np.searchsorted(idx, [w for pair in windows for w in pair])
    windows = [(int(pos[0]), int(np.searchsorted(idx, windows[0][1], side="right") - 1))]
    del pos
    return Series(f"taylor-{seed}", ts[idx], v[idx], windows, kind, "Taylor 2003 + injected")


def evaluation_series() -> list[Series]:
    return [ucr_135(), water_flow(), *(taylor(s) for s in EVALUATION_SEEDS)]


def tuning_series() -> list[Series]:
    return [taylor(s) for s in TUNING_SEEDS]


def license_note() -> str:
    return (DATA / "README.md").read_text(encoding="utf-8")
