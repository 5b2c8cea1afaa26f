"""Peer groups of dwellings: the group-rental signal, protection, fallback, pickling.

Timeline of the contract case (readings every 15 minutes, eight dwellings)::

    step    0 ............ 7 | 8 ............ 15
    hh-est-08  normal        | water, power x6
    alert                    ^ on its first x6 readings
"""

from __future__ import annotations

import pickle
import random

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
