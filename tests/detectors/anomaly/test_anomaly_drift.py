"""The slow drift statistic of ``sensor.anomaly``: a ramp found on the ramp, and
recovery state of the previous layout restored."""

from __future__ import annotations

import numpy as np

from citywatch.detectors.alerts import Alert
from citywatch.detectors.anomaly.bank import TAIL_PRIOR, BaselineBank, _with_cusum_column
from citywatch.detectors.anomaly.params import BaselineParams
from citywatch.detectors.anomaly.sensor import SensorAnomalyDetector
from citywatch.detectors.events import SensorEvent
from citywatch.detectors.state import Snapshot

T0 = 1_781_481_600_000  # 2026-06-15T00:00:00Z
PERIOD_MS = 600_000  # one reading every 10 minutes
PER_DAY = 144


def _streams(seed: int, days: float, ramp_at_day: float, ramp_h: float, ramp_sd: float) -> list:
    """Two sensors with a daily cycle and white noise; ``drifting`` ramps up to
    ``ramp_sd`` noise sd over ``ramp_h`` hours from ``ramp_at_day``, ``clean`` does not."""
    rng = np.random.default_rng(seed)
    steps = int(days * PER_DAY)
    t = np.arange(steps)
    cycle = 3 * np.sin(2 * np.pi * t / PER_DAY)
    k0, k1 = int(ramp_at_day * PER_DAY), int(ramp_at_day * PER_DAY + ramp_h * 6)
    ramp = np.zeros(steps)
    ramp[k0:k1] = np.linspace(0, ramp_sd, k1 - k0)
    out = []
    for i in range(steps):
        ts = T0 + i * PERIOD_MS
        out.append(SensorEvent(ts, "drifting", "sim", 50 + cycle[i] + ramp[i] + rng.normal()))
        out.append(SensorEvent(ts, "clean", "sim", 50 + cycle[i] + rng.normal()))
    return out


def _run(det: SensorAnomalyDetector, events: list[SensorEvent]) -> list[Alert]:
    out: list[Alert] = []
    for j in range(0, len(events), 288):
        for ev in events[j : j + 288]:
            det.on_event(ev, out)
        det.on_watermark(events[min(j + 287, len(events) - 1)].ts_ms, out)
    return out


def test_a_slow_ramp_is_found_on_the_ramp_by_the_drift_statistic() -> None:
    # day     0 ........ 9     9.5 ............ 10 (ramp to +6 sd over 12 h)
    # alert                    ^ on the ramp, from "drift", well before its end
    events = _streams(seed=3, days=10.5, ramp_at_day=9.5, ramp_h=12, ramp_sd=6)
    det = SensorAnomalyDetector({"sim": BaselineParams(warmup_readings=PER_DAY, min_scale=0.01)})
    out = _run(det, events)
    assert [a.subject for a in out] == ["drifting"]
    start = T0 + int(9.5 * PER_DAY) * PERIOD_MS
    delay_h = (out[0].first_ts_ms - start) / 3_600_000
    assert 0 < delay_h < 9
    assert "drift" in out[0].evidence["contributing"]


def test_the_drift_cusum_finds_the_ramp_within_5_hours_and_the_clean_twin_never() -> None:
    # 10-minute readings, +6 sd over 12 h: after 5 h the ramp is 2.5 sd up. The EW mean
    # of the residual (state version 2) took 5.2-6.7 h on these seeds; the CUSUM sums
    # the ramp's readings as they come.
    start = T0 + int(9.5 * PER_DAY) * PERIOD_MS
    for seed in (3, 4, 5, 6):
        events = _streams(seed=seed, days=10.5, ramp_at_day=9.5, ramp_h=12, ramp_sd=6)
        p = BaselineParams(warmup_readings=PER_DAY, min_scale=0.01)
        out = _run(SensorAnomalyDetector({"sim": p}), events)
        assert [a.subject for a in out] == ["drifting"], seed
        assert 0 < (out[0].first_ts_ms - start) / 3_600_000 < 5, seed
        assert "drift" in out[0].evidence["contributing"]


def test_without_the_drift_statistic_the_ramp_is_found_later_or_not_at_all() -> None:
    events = _streams(seed=3, days=10.5, ramp_at_day=9.5, ramp_h=12, ramp_sd=6)
    with_drift = _run(
        SensorAnomalyDetector({"sim": BaselineParams(warmup_readings=PER_DAY, min_scale=0.01)}),
        events,
    )
    # drift_alpha 1.0: the "drift" statistic is the last residual alone (no memory)
    without = _run(
        SensorAnomalyDetector(
            {"sim": BaselineParams(warmup_readings=PER_DAY, min_scale=0.01, drift_alpha=1.0)}
        ),
        events,
    )
    assert with_drift
    assert not without or without[0].first_ts_ms > with_drift[0].first_ts_ms


def test_state_of_version_1_restores_with_the_drift_statistic_at_rest() -> None:
    p = BaselineParams(warmup_readings=10, min_scale=0.01)
    bank = BaselineBank(p)
    rng = np.random.default_rng(1)
    for i in range(40):
        bank.score_learn_one("s", T0 + i * PERIOD_MS, 5 + rng.normal(0, 0.1))
    snap = bank.state()
    rows = snap.data["_rows"]
    cols = {k: v for k, v in rows.data["cols"].items() if k not in ("drift", "dsvar")}
    cols["tail"] = cols["tail"][:, :3]
    layout = {k: v for k, v in rows.data["layout"].items() if k not in ("drift", "dsvar")}
    layout["tail"] = (layout["tail"][0], (3,))
    v1_rows = Snapshot(rows.kind, rows.version, {**rows.data, "cols": cols, "layout": layout})
    v1 = Snapshot(snap.kind, 1, {**snap.data, "_rows": v1_rows})
    restored = BaselineBank.from_state(p, state=v1)
    row = restored.slot("s")
    assert restored.field("tail")[row, 3] == np.float32(TAIL_PRIOR[3])
    assert restored.field("drift")[row].tolist() == [0.0, 0.0, 0.0]
    np.testing.assert_array_equal(restored.field("tail")[row, :3], bank.field("tail")[row, :3])
    assert restored.score_learn_one("s", T0 + 40 * PERIOD_MS, 9.0) > 0.9


def test_state_of_version_2_restores_with_the_cusum_at_rest() -> None:
    p = BaselineParams(warmup_readings=10, min_scale=0.01)
    bank = BaselineBank(p)
    rng = np.random.default_rng(2)
    for i in range(40):
        bank.score_learn_one("s", T0 + i * PERIOD_MS, 5 + rng.normal(0, 0.1))
    snap = bank.state()
    rows = snap.data["_rows"]
    cols = {k: v for k, v in rows.data["cols"].items() if k != "cusum"}
    layout = {k: v for k, v in rows.data["layout"].items() if k != "cusum"}
    v2_rows = Snapshot(rows.kind, rows.version, {**rows.data, "cols": cols, "layout": layout})
    v2 = Snapshot(snap.kind, 2, {**snap.data, "_rows": v2_rows})
    restored = BaselineBank.from_state(p, state=v2)
    row = restored.slot("s")
    assert restored.field("cusum")[row].tolist() == [[0.0, 0.0]] * 3
    assert restored.field("tail")[row, 3] == np.float32(TAIL_PRIOR[3])
    for name in ("level", "base", "dsvar", "drift", "day_prof"):
        np.testing.assert_array_equal(restored.field(name)[row], bank.field(name)[row])
    assert restored.score_learn_one("s", T0 + 40 * PERIOD_MS, 9.0) > 0.9
    assert set(_with_cusum_column(v2.data)["_rows"].data["layout"]) == set(
        bank.state().data["_rows"].data["layout"]
    )
