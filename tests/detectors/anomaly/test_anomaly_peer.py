"""Peer groups of dwellings: the group-rental signal, protection, fallback, pickling.

Timeline of the contract case (readings every 15 minutes, eight dwellings)::

    step    0 ............ 7 | 8 ............ 15
    hh-est-08  normal        | water, power x6
    alert                    ^ on its first x6 readings
"""

from __future__ import annotations

import pickle
import random

import numpy as np

from citywatch.detectors.alerts import Alert
from citywatch.detectors.anomaly.params import PeerParams
from citywatch.detectors.anomaly.peer import PeerGroupDetector
from citywatch.detectors.events import SensorEvent

T0 = 1_781_528_400_000


def _run(det: PeerGroupDetector, events: list[SensorEvent]) -> list[Alert]:
    out: list[Alert] = []
    for ev in events:
        det.on_event(ev, out)
    return out


def _estate(
    seed: int, units: int, rentals: dict[int, float], steps: int = 8, estate: str = "est"
) -> list[SensorEvent]:
    rng = random.Random(seed)
    bases = {
        u: {
            "water": rng.uniform(0.01, 0.04),
            "power": rng.uniform(0.1, 0.5),
            "gas": rng.uniform(0.01, 0.04),
        }
        for u in range(1, units + 1)
    }
    out = []
    for step in range(steps):
        for u, kinds in bases.items():
            for j, (kind, base) in enumerate(kinds.items()):
                k = rentals.get(u, 1.0) if kind != "gas" else 1.0
                out.append(
                    SensorEvent(
                        T0 + step * 900_000 + u * 5_000 + j * 1_000,
                        f"hh-{estate}-{u:02d}-{kind}",
                        kind,
                        base * k * (1 + rng.gauss(0, 0.05)),
                        120.9,
                        32.0,
                        zones=(f"residential-{estate}",),
                    )
                )
    return out


def test_contract_case_alerts_only_after_the_change_with_a_peer_block() -> None:
    case = PeerGroupDetector.contract_case(3)
    out: list[Alert] = []
    for i, ev in enumerate(case.events):
        n = len(out)
        case.detector.on_event(ev, out)
        if i < case.anomaly_from:
            assert len(out) == n
    assert [a.subject for a in out] == ["hh-est-08"]
    peer = out[0].evidence["peer"]
    assert peer["scope"] == "estate" and peer["peers"] >= 5
    assert set(out[0].evidence["contributing"]) == {"water", "power"}
    assert peer["hst_score"] is not None


def test_background_estates_raise_nothing_over_many_seeds() -> None:
    for seed in range(30):
        det = PeerGroupDetector(PeerParams(hst=False))
        assert _run(det, _estate(seed, units=6, rentals={})) == [], seed


def test_a_group_rental_is_found_and_kept_out_of_the_norm() -> None:
    det = PeerGroupDetector(PeerParams(hst=False))
    out = _run(det, _estate(1, units=12, rentals={3: 6.0, 7: 6.0}))
    assert sorted(a.subject for a in out) == ["hh-est-03", "hh-est-07"]
    flagged = det._a["flagged"]  # noqa: SLF001 - protection is internal state
    assert int(flagged.sum()) == 2


def test_small_estate_falls_back_to_the_class() -> None:
    det = PeerGroupDetector(PeerParams(hst=False))
    events = _estate(2, units=3, rentals={2: 7.0}, estate="a") + _estate(
        3, units=3, rentals={}, estate="b"
    )
    events.sort(key=lambda e: e.ts_ms)
    out = _run(det, events)
    assert [a.subject for a in out] == ["hh-a-02"]
    assert out[0].evidence["peer"]["scope"] == "class"
    assert out[0].zone == "residential-a"


def test_pickled_midway_continues_identically_and_same_seed_same_output() -> None:
    case = PeerGroupDetector.contract_case(4)
    half = len(case.events) // 2
    _run(case.detector, case.events[:half])
    clone = pickle.loads(pickle.dumps(case.detector))
    a = _run(case.detector, case.events[half:])
    b = _run(clone, case.events[half:])
    assert [x.id for x in a] == [x.id for x in b] != []
    assert [x.evidence for x in a] == [x.evidence for x in b]
    again = PeerGroupDetector.contract_case(4)
    assert [x.id for x in _run(again.detector, again.events)] == [x.id for x in a]


def test_idle_dwellings_are_evicted() -> None:
    det = PeerGroupDetector(PeerParams(hst=False, idle_evict_s=3600))
    _run(det, _estate(5, units=6, rentals={}, steps=2))
    assert det.live_keys() == 6
    det.on_watermark(T0, [])
    det.on_watermark(T0 + 10 * 3_600_000, [])
    assert det.live_keys() == 0


def test_unknown_ids_and_kinds_are_ignored() -> None:
    det = PeerGroupDetector(PeerParams(hst=False))
    out: list[Alert] = []
    det.on_event(SensorEvent(T0, "wl-chongchuan-01", "water_level", 3.0), out)
    det.on_event(SensorEvent(T0, "hh-a-01-heat", "heat", 3.0), out)
    assert det.live_keys() == 0 and out == []


def _reference_stats(det: PeerGroupDetector, gid: int) -> tuple[list[float], list[float], int]:
    """A group's centre and spread computed from every member row with ``np.median``
    (how the detector computed them before it kept each group's pool)."""
    a = det._a
    rows = np.array(det._members.get(gid, []), dtype=np.int64)
    ok = ~a["flagged"][rows] & (a["cnt"][rows].min(axis=1) >= det.p.min_readings)
    logs = np.log(np.maximum(a["mean"][rows[ok]], 1e-9))
    if logs.shape[0] == 0:
        return [0.0] * len(det.p.kinds), [0.0] * len(det.p.kinds), 0
    centre = np.median(logs, axis=0)
    mad = np.median(np.abs(logs - centre), axis=0)
    scale = np.maximum(1.4826 * mad, det.p.min_log_scale)
    return centre.tolist(), scale.tolist(), int(logs.shape[0])


class _Checked(PeerGroupDetector):
    """Compares each refresh of a group's stats with :func:`_reference_stats` then."""

    refreshed = 0

    def _peer_stats(self, gid: int, ts_ms: int) -> tuple[np.ndarray, np.ndarray, int] | None:
        before = self._stats.get(gid)
        res = super()._peer_stats(gid, ts_ms)
        if gid >= 0 and self._stats[gid] is not before:
            _checked_refresh(self, gid)
        return res


def _checked_refresh(det: PeerGroupDetector, gid: int) -> None:
    _, centre, scale, members = det._stats[gid]
    assert (centre.tolist(), scale.tolist(), members) == _reference_stats(det, gid)
    _Checked.refreshed += 1


def test_refreshed_group_stats_equal_a_full_recompute() -> None:
    """Every refresh of a group's centre and spread (from its pool: the rows changed
    since the last refresh recomputed) equals the full recompute, bit for bit, through
    warm-up, group rentals flagged and cleared, evictions and slot reuse, a restore."""
    events = sorted(
        _estate(11, units=9, rentals={3: 6.0}, steps=10)
        + _estate(12, units=14, rentals={5: 5.0, 9: 7.0}, steps=10, estate="big")
        + _estate(13, units=4, rentals={}, steps=4, estate="tiny"),
        key=lambda ev: ev.ts_ms,
    )
    late = [
        SensorEvent(
            ev.ts_ms + 40 * 3_600_000,
            ev.sensor,
            ev.kind,
            ev.value * 0.3,
            ev.lon,
            ev.lat,
            zones=ev.zones,
        )  # fmt: skip
        for ev in _estate(14, units=9, rentals={2: 6.0}, steps=6)
    ]
    det: PeerGroupDetector = _Checked(PeerParams(hst=False, min_readings=2, idle_evict_s=3600))
    out: list[Alert] = []
    _Checked.refreshed = 0
    for n, ev in enumerate(events + late):
        if n == len(events):  # hours later: the estate's dwellings evicted, rows reused
            det.on_watermark(ev.ts_ms - 3_600_000, out)
            det.on_watermark(ev.ts_ms, out)
            snap = det.state()
            det = _Checked(det.p)
            det.restore(snap)
        det.on_event(ev, out)
    assert _Checked.refreshed > 40
    assert {a.subject for a in out} >= {"hh-est-03", "hh-big-05", "hh-big-09"}
