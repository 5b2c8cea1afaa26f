"""Per-sensor baselines: prequential scoring, pickling, seeding, bounded memory, calibration.

Level-shift timeline used below (one reading a minute, warm-up 30)::

    minute  0 ......... 29 30 ............ 59 60 61 ... 89
    model   warm-up (0)    learning, quiet    +15 dB shift
    alert                                     ^ exactly one, first_ts = minute 60
"""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest

from citywatch.detectors.alerts import Alert
from citywatch.detectors.anomaly.bank import BaselineBank, KindCalibration, rounds
from citywatch.detectors.anomaly.params import BaselineParams
from citywatch.detectors.anomaly.sensor import AnomalyScorer, SensorAnomalyDetector
from citywatch.detectors.events import SensorEvent
from citywatch.replay.anomaly_streams import ANOMALY_TYPES, evaluate, labelled_streams

T0 = 1_781_528_400_000


def _feed(det: SensorAnomalyDetector, events: list[SensorEvent], batch: int) -> list[Alert]:
    out: list[Alert] = []
    for k in range(0, len(events), batch):
        for ev in events[k : k + batch]:
            det.on_event(ev, out)
        det.on_watermark(events[min(k + batch, len(events)) - 1].ts_ms, out)
    return out


def _noise_events(seed: int, sensors: int = 3, minutes: int = 90) -> list[SensorEvent]:
    rng = random.Random(seed)
    return [
        SensorEvent(
            T0 + i * 60_000 + s,
            f"ns-{s}",
            "noise",
            55 + rng.gauss(0, 1.5) + (15 if s == 0 and i >= 60 else 0),
        )
        for i in range(minutes)
        for s in range(sensors)
    ]


def _detector() -> SensorAnomalyDetector:
    return SensorAnomalyDetector({"noise": BaselineParams(warmup_readings=30, min_scale=0.5)})


def test_level_shift_raises_one_alert_with_evidence() -> None:
    out = _feed(_detector(), _noise_events(1), batch=7)
    assert [(a.subject, (a.first_ts_ms - T0) // 60_000) for a in out] == [("ns-0", 60)]
    ev = out[0].evidence
    assert ev["score"] >= ev["threshold"] >= 0.7
    lo, hi = ev["expected_range"]
    assert lo < ev["expected"] < hi < ev["value"]
    assert next(iter(ev["contributing"])) == "residual"


def test_score_one_does_not_learn_and_equals_the_prequential_score() -> None:
    sc = AnomalyScorer(BaselineParams(warmup_readings=10, min_scale=0.1))
    rng = random.Random(2)
    for i in range(40):
        ts, v = i * 60_000, 10 + rng.gauss(0, 0.3)
        before = pickle.dumps(sc)
        s1, s2 = sc.score_one(ts, v), sc.score_one(ts, v)
        assert pickle.dumps(sc) == before  # scoring leaves the state untouched
        assert s1 == s2
        assert (s1 == 0.0) == (i < 10)  # neutral during warm-up
        got = sc.detector.process("value", [SensorEvent(ts, "series", "value", v)], [])
        assert got[0] == s1  # the learning step saw the same score first


@pytest.mark.parametrize("batch", [1, 13, 5000], ids=["batch-1", "batch-13", "batch-5000"])
def test_alerts_do_not_depend_on_batching(batch: int) -> None:
    events = _noise_events(3, sensors=5)
    ref = sorted(a.id for a in _feed(_detector(), events, batch=1000))
    assert ref
    assert sorted(a.id for a in _feed(_detector(), events, batch=batch)) == ref


def test_pickled_midway_continues_identically() -> None:
    events = _noise_events(4)
    det = _detector()
    first = _feed(det, events[:150], batch=50)
    clone = pickle.loads(pickle.dumps(det))
    rest_a = _feed(det, events[150:], batch=50)
    rest_b = _feed(clone, events[150:], batch=50)
    assert not first
    assert [a.id for a in rest_a] == [a.id for a in rest_b] != []


def test_same_seed_same_alerts_and_contract_case() -> None:
    def run(seed: int) -> list[str]:
        case = SensorAnomalyDetector.contract_case(seed)
        out: list[Alert] = []
        for i, ev in enumerate(case.events):
            before = len(out)
            case.detector.on_event(ev, out)
            if i in case.watermarks:
                case.detector.on_watermark(case.watermarks[i], out)
            if i < case.anomaly_from:
                assert len(out) == before, "no alert before the injected anomaly"
        assert {a.kind for a in out} <= case.expect_kinds and out
        return [a.id for a in out]

    assert run(5) == run(5)


def test_memory_bounded_by_eviction_and_small_per_sensor() -> None:
    p = BaselineParams(warmup_readings=5, idle_evict_s=3600)
    det = SensorAnomalyDetector({"noise": p})
    out: list[Alert] = []
    rng = random.Random(0)
    # 20 hours; each hour a fresh set of 500 sensors reports, the old ones go silent
    for hour in range(20):
        for minute in range(0, 60, 10):
            t = T0 + hour * 3_600_000 + minute * 60_000
            for s in range(500):
                det.on_event(SensorEvent(t + s, f"h{hour}-{s}", "noise", rng.gauss(50, 1)), out)
            det.on_watermark(t + 1000, out)
    bank = det.bank("noise")
    assert det.live_keys() <= 1500
    # capacity grows by doubling from the peak of live rows (<= 1500), never beyond
    assert bank.field("n").shape[0] <= 2048
    assert bank.nbytes() / bank.field("n").shape[0] < 1200  # bytes per sensor row


def test_rounds_keep_each_sensor_in_order() -> None:
    slots = np.array([5, 5, 2, 5, 2, 9])
    parts = rounds(slots)
    assert all(len(set(slots[r].tolist())) == len(r) for r in parts)
    flat = np.concatenate(parts)
    for s in (5, 2, 9):
        assert [int(i) for i in flat if slots[i] == s] == [
            int(i) for i in np.flatnonzero(slots == s)
        ]


def test_calibration_uses_only_hours_two_back() -> None:
    cal = KindCalibration(quantile=0.5, min_score=0.1, min_readings=10)
    cal.add(100, np.full(50, 0.9))
    assert cal.threshold(101) == 0.1  # hour 100 is not closed yet
    assert cal.threshold(102) == pytest.approx(0.901, abs=0.002)


def test_daily_alert_budget_caps_alerts_per_sensor() -> None:
    p = BaselineParams(
        warmup_readings=30, min_scale=0.5, max_alerts_per_sensor_day=1, clear_readings=1
    )
    det = SensorAnomalyDetector({"noise": p})
    rng = random.Random(9)
    events = [
        SensorEvent(
            T0 + i * 60_000, "ns", "noise", 55 + rng.gauss(0, 1) + (30 if i in (50, 70, 90) else 0)
        )
        for i in range(100)
    ]
    out = _feed(det, events, batch=10)
    assert len(out) == 1
    assert det.bank("noise").suppressed_ == 2


def test_bad_params_name_the_setting() -> None:
    with pytest.raises(ValueError, match='anomaly.sensor: "clear_score" 0.9 must not exceed'):
        BaselineParams(clear_score=0.9, min_score=0.7)
    with pytest.raises(ValueError, match='"level_alpha" must be in'):
        BaselineParams(level_alpha=1.5)


def test_every_labelled_type_is_found_on_synthetic_streams_without_false_alerts() -> None:
    streams = labelled_streams(sensors=20, days=7, period_s=600, seed=2)
    det = SensorAnomalyDetector({"sim": BaselineParams(warmup_readings=48, min_scale=0.01)})
    names = streams.names
    events = [
        SensorEvent(int(t), names[w], "sim", float(v))
        for t, w, v in zip(
            streams.ts_ms.tolist(), streams.sensor.tolist(), streams.values.tolist(), strict=True
        )
    ]
    out = _feed(det, events, batch=500)
    ev = evaluate(streams, [(a.subject, a.first_ts_ms) for a in out])
    assert ev.false_alerts == 0
    found = {t for t, s in ev.per_type.items() if s.found}
    assert {"spike", "level_shift"} <= found
    assert len(found) >= len(ANOMALY_TYPES) - 1


def test_bank_state_is_about_a_kilobyte_per_sensor() -> None:
    # 168 hour-of-week bins (float32 + uint8 count) are most of it
    bank = BaselineBank(BaselineParams(), capacity=10_000)
    assert bank.nbytes() / 10_000 < 1200


def _demand(days: int, period_s: int, seed: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """A daily and weekly cycle (weekends low) with noise, ``scale`` times."""
    rng = np.random.default_rng(seed)
    t = np.arange(days * 86_400 // period_s) * period_s
    hour = (t % 86_400) / 3600
    weekend = ((t // 86_400 + 3) % 7) >= 5  # T0-free: day 0 of the epoch was a Thursday
    daily = np.sin(2 * np.pi * (hour - 6) / 24)
    v = 10 + 4 * daily * np.where(weekend, 0.3, 1.0) - 3 * weekend + rng.normal(0, 0.3, t.size)
    return t.astype(np.int64) * 1000, v * scale


def _season(ts: np.ndarray, v: np.ndarray) -> str:
    bank = BaselineBank(BaselineParams(), utc_offset_s=0)
    slot = np.array([bank.slot("s")])
    for t, x in zip(ts.tolist(), v.tolist(), strict=True):
        bank.step(slot, np.array([t]), np.array([x]))
    return ("none", "daily", "weekly")[int(bank.field("season")[slot[0]])]


def test_the_season_is_found_from_the_series_itself() -> None:
    ts, v = _demand(days=21, period_s=1800, seed=1, scale=1.0)
    assert _season(ts, v) == "weekly"
    assert _season(ts[: 5 * 48], v[: 5 * 48]) == "daily"  # too short for a weekly season
    noise = np.random.default_rng(2).normal(50, 1, ts.size)
    assert _season(ts, noise) == "none"


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e4])
def test_one_threshold_transfers_across_scales(scale: float) -> None:
    """Same series at three scales: the same scores (the score is a tail probability of
    the sensor's own errors), one alert at a weekday that runs like a Sunday."""
    ts, v = _demand(days=28, period_s=1800, seed=3, scale=scale)
    day = 48
    odd = 22 * day  # a Friday (day 22 after a Thursday)
    assert ((ts[odd] // 86_400_000 + 3) % 7) == 4
    v[odd : odd + day] = v[odd - 5 * day : odd - 4 * day]  # the Sunday before it
    sc = AnomalyScorer(BaselineParams(min_scale=1e-9), timezone="UTC")
    alerts = []
    for i, (t, x) in enumerate(zip(ts.tolist(), v.tolist(), strict=True)):
        sc.learn_one(t, x)
        if sc.alerted:
            alerts.append(i)
    assert alerts and all(odd <= i < odd + day for i in alerts)


def test_a_silence_restarts_without_an_alert_and_late_readings_score_zero() -> None:
    sc = AnomalyScorer(BaselineParams(warmup_readings=20, min_scale=0.01))
    rng = random.Random(4)
    t = 0
    for i in range(200):
        t = i * 60_000
        sc.learn_one(t, 20 + i * 0.01 + rng.gauss(0, 0.1))
    # three hours silent, the level moved on meanwhile: not an anomaly of the readings
    t += 3 * 3_600_000
    assert sc.score_one(t, 24.0) == 0.0
    sc.learn_one(t, 24.0)
    assert not sc.alerted
    assert sc.score_one(t - 60_000, 99.0) == 0.0  # out of order: not scored
