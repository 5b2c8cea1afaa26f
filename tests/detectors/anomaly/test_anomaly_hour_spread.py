"""The residual's spread by hour of day: learned, used only where it forecasts better."""

from __future__ import annotations

import numpy as np

from citywatch.detectors.anomaly.bank import HOUR_GAIN_MIN, BaselineBank
from citywatch.detectors.anomaly.params import BaselineParams
from citywatch.detectors.anomaly.sensor import AnomalyScorer
from citywatch.detectors.state import Snapshot

T0 = 1_780_272_000_000  # a UTC midnight
STEP_MS = 15 * 60_000
DAYS = 21
LOUD_HOURS = (18, 19, 20, 21)


def _series(seed: int, loud_sd: float) -> tuple[np.ndarray, np.ndarray]:
    """15-minute readings with a daily cycle; noise sd 1, or ``loud_sd`` in the loud hours."""
    rng = np.random.default_rng(seed)
    ts = T0 + np.arange(DAYS * 96, dtype=np.int64) * STEP_MS
    hour = (ts // 3_600_000) % 24
    cycle = 20 * np.sin(2 * np.pi * hour / 24)
    sd = np.where(np.isin(hour, LOUD_HOURS), loud_sd, 1.0)
    return ts, 100 + cycle + rng.normal(0, 1, ts.size) * sd


def _learned(ts: np.ndarray, x: np.ndarray) -> tuple[AnomalyScorer, int]:
    """The scorer after the series, and its alerts after the first week."""
    sc = AnomalyScorer(BaselineParams(), timezone="UTC")
    alerts = 0
    for i, (t, v) in enumerate(zip(ts.tolist(), x.tolist(), strict=True)):
        sc.learn_one(t, v)
        alerts += sc.alerted and i >= 7 * 96
    return sc, alerts


def test_a_quiet_hours_anomaly_is_read_against_the_quiet_hours_spread() -> None:
    ts, x = _series(1, loud_sd=4.0)
    k = (DAYS - 1) * 96 + 12  # 03:00 of the last day
    sc, alerts = _learned(ts[:k], x[:k])
    bank = sc.detector.bank("value")
    row = bank.slot("series")
    assert bank.field("hgain")[row] > HOUR_GAIN_MIN  # the hourly spread is in use
    hvar = bank.field("hvar")[row]
    assert hvar[LOUD_HOURS[1]] > 4 * hvar[3]
    assert alerts == 0  # two more weeks of loud evenings raised nothing
    # 6 quiet-hour spreads away: about 3 of the day's overall spread, well inside
    # what the loud evenings do
    t = int(ts[k])
    expected = 100 + 20 * np.sin(2 * np.pi * 3 / 24)
    assert sc.score_one(t, expected + 0.3) < 0.5
    sc.learn_one(t, expected + 6.0)
    assert sc.alerted


def test_a_sensor_whose_noise_does_not_depend_on_the_hour_keeps_one_spread() -> None:
    for seed in (2, 5):
        ts, x = _series(seed, loud_sd=1.0)
        sc = AnomalyScorer(BaselineParams(), timezone="UTC")
        bank = sc.detector.bank("value")
        row = bank.slot("series")
        gains = []
        for t, v in zip(ts.tolist(), x.tolist(), strict=True):
            sc.learn_one(t, v)
            gains.append(float(bank.field("hgain")[row]))
        assert max(gains) <= HOUR_GAIN_MIN, seed


def test_state_of_version_3_restores_with_the_hourly_spread_unlearned() -> None:
    p = BaselineParams(warmup_readings=10, min_scale=0.01)
    bank = BaselineBank(p)
    ts, x = _series(3, loud_sd=3.0)
    for t, v in zip(ts[:400].tolist(), x[:400].tolist(), strict=True):
        bank.score_learn_one("s", t, v)
    snap = bank.state()
    rows = snap.data["_rows"]
    new = ("hvar", "hvar_n", "hgain")
    cols = {k: v for k, v in rows.data["cols"].items() if k not in new}
    layout = {k: v for k, v in rows.data["layout"].items() if k not in new}
    v3_rows = Snapshot(rows.kind, rows.version, {**rows.data, "cols": cols, "layout": layout})
    v3 = Snapshot(snap.kind, 3, {**snap.data, "_rows": v3_rows})
    restored = BaselineBank.from_state(p, state=v3)
    row = restored.slot("s")
    assert restored.field("hvar_n")[row].tolist() == [0] * 24
    assert float(restored.field("hgain")[row]) == 0.0
    for name in ("level", "base", "mse", "tail", "cusum", "day_prof", "week_prof"):
        np.testing.assert_array_equal(restored.field(name)[row], bank.field(name)[row])
    assert restored.score_learn_one("s", int(ts[400]), float(x[400]) + 40.0) > 0.9
