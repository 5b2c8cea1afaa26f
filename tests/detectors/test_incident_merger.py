"""The incident merger: keys, quiet-period closing, severity, inhibition, determinism.

Timeline (minutes; quiet period 30)::

    0    10   20   30   40   50   60   70
    |----|----|----|----|----|----|----|
    A1 A2         A3                          one incident (A3 within 30 min of A2)
                                    A4        new incident (quiet > 30 min after A3)
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from citywatch.detectors.alerts import Alert
from citywatch.detectors.incidents import IncidentMerger, IncidentParams

T0 = 1_781_528_400_000
MIN = 60_000


def _a(
    subject: str,
    t_min: float,
    *,
    kind: str = "video.intrusion",
    zone: str | None = "z1",
    lon: float = 121.0,
    lat: float = 32.0,
    severity: str = "yellow",
) -> Alert:
    t = T0 + int(t_min * MIN)
    return Alert.make(
        kind,
        severity,
        subject,
        kind.split(".")[0],
        zone,
        lon,
        lat,
        ts_ms=t,
        first_ts_ms=t,
        evidence={},
    )


def _ids(pairs: list) -> list[str]:
    return [v.id for _, v in pairs]


def test_alerts_merge_until_a_quiet_period_closes_the_incident() -> None:
    m = IncidentMerger(IncidentParams(hold_s=0, quiet_s=1800))
    out = m.push([_a("c1", 0), _a("c2", 5), _a("c3", 30), _a("c4", 65)])
    ids = _ids(out)
    assert ids[0] == ids[1] == ids[2] != ids[3]
    assert [v.state for _, v in out] == ["opened", "updated", "updated", "opened"]
    assert out[2][1].alert_count == 3 and out[2][1].subjects == ("c1", "c2", "c3")


@pytest.mark.parametrize(
    ("second", "merged"),
    [
        (dict(zone="z1", lon=121.5), True),  # same zone, far away
        (dict(zone=None, lon=121.003), True),  # no zone, ~280 m away
        (dict(zone=None, lon=121.01), False),  # no zone, ~950 m away
        (dict(zone="z2", lon=121.5, kind="sensor.threshold"), False),  # other family
    ],
    ids=["same-zone", "within-radius", "beyond-radius", "other-family"],
)
def test_merge_keys(second: dict, merged: bool) -> None:
    m = IncidentMerger(IncidentParams(hold_s=0, radius_m=500))
    out = m.push([_a("c1", 0), _a("c2", 1, **second)])
    assert (out[0][1].id == out[1][1].id) is merged


def test_same_subject_merges_across_zones_unless_only_zone_is_a_key() -> None:
    alerts = [_a("truck-1", 0, zone="z1"), _a("truck-1", 2, zone="z9", lon=121.5)]
    assert len(set(_ids(IncidentMerger(IncidentParams(hold_s=0)).push(alerts)))) == 1
    zone_only = IncidentMerger(IncidentParams(hold_s=0, match=("zone",)))
    assert (
        len(
            set(
                _ids(
                    zone_only.push(
                        [_a("truck-1", 0, zone="z1"), _a("truck-1", 2, zone="z9", lon=121.5)]
                    )
                )
            )
        )
        == 2
    )


def test_severity_is_the_highest_seen_and_groups_join_kinds() -> None:
    p = IncidentParams(hold_s=0, groups={"geofence.enter": "site", "video.intrusion": "site"})
    out = IncidentMerger(p).push(
        [
            _a("cam-1", 0),
            _a("truck-9", 1, kind="geofence.enter", severity="orange"),
            _a("cam-2", 2, severity="blue"),
        ]
    )
    assert len(set(_ids(out))) == 1
    assert [v.severity for _, v in out] == ["yellow", "orange", "orange"]
    assert out[-1][1].kinds == ("video.intrusion", "geofence.enter")


def test_red_incident_inhibits_lower_ones_of_its_family_in_its_zone() -> None:
    p = IncidentParams(hold_s=0, match=("subject",))
    out = IncidentMerger(p).push(
        [
            _a("gauge-1", 0, kind="sensor.threshold", severity="red"),
            _a("gauge-2", 3, kind="sensor.threshold", severity="yellow"),
        ]
    )
    assert out[0][1].id == out[1][1].id and out[1][1].inhibited
    off = IncidentMerger(IncidentParams(hold_s=0, match=("subject",), inhibit=False))
    out = off.push(
        [
            _a("gauge-1", 0, kind="sensor.threshold", severity="red"),
            _a("gauge-2", 3, kind="sensor.threshold", severity="yellow"),
        ]
    )
    assert out[0][1].id != out[1][1].id


def test_same_incidents_whatever_the_arrival_order_within_the_hold() -> None:
    alerts = [_a(f"c{i}", i * 0.3, zone=f"z{i % 3}", lon=121.0 + 0.02 * (i % 3)) for i in range(30)]
    runs = []
    for seed in range(5):
        shuffled = alerts[:]
        random.Random(seed).shuffle(shuffled)
        m = IncidentMerger(IncidentParams(hold_s=600))
        out = []
        for i in range(0, len(shuffled), 7):  # arbitrary batching
            out += m.push([_copy(a) for a in shuffled[i : i + 7]])
        out += m.flush()
        runs.append(sorted((a.id, v.id) for a, v in out))
    assert all(r == runs[0] for r in runs)
    assert len({inc for _, inc in runs[0]}) == 3


def _copy(a: Alert) -> Alert:
    return Alert(
        a.id,
        a.kind,
        a.severity,
        a.subject,
        a.subject_type,
        a.zone,
        a.lon,
        a.lat,
        a.ts_ms,
        a.first_ts_ms,
        dict(a.evidence),
    )


def test_params_validate_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match=r'\[incidents\]: "match" must be a non-empty list'):
        IncidentParams(match=("colour",))


def test_alerts_derived_a_step_later_are_still_merged_in_time_order() -> None:
    """A fusion alert with the same time as its source alert reaches the merger one push
    later (it is derived downstream); the release boundary lags two pushes, so both runs
    below see the same order and the same severities."""

    def run(split: bool) -> list[tuple[str, str]]:
        m = IncidentMerger(IncidentParams(hold_s=60))
        src = _a("cam-1", 0, kind="video.fishing", severity="orange")
        fused = _a("cam-1", 0, kind="fusion.corroborated", severity="red")
        later = [_a(f"far-{i}", 10 + i, zone=None, lon=120.5) for i in range(3)]
        if split:
            out = m.push([src, later[0]]) + m.push([fused, later[1]]) + m.push([later[2]])
        else:
            out = m.push([src, fused, later[0]]) + m.push([later[1]]) + m.push([later[2]])
        assert m.late_ == 0
        return sorted((a.kind, v.severity) for a, v in out + m.flush())

    assert run(split=True) == run(split=False)


SUBJECTS = ["cam-1", "cam-2", "hz-1", "hz-2", "wl-1"]
ZONES = [None, "z1", "z2"]
KINDS = ["video.intrusion", "geofence.enter", "geofence.dwell", "fusion.corroborated"]


@st.composite
def _alerts(draw: st.DrawFn) -> list[Alert]:
    out = []
    for i in range(draw(st.integers(1, 25))):
        t = T0 + draw(st.integers(0, 90)) * MIN
        span = draw(st.sampled_from([0, 0, 5 * MIN, 20 * MIN]))
        a = Alert.make(
            draw(st.sampled_from(KINDS)),
            draw(st.sampled_from(["blue", "yellow", "orange", "red"])),
            draw(st.sampled_from(SUBJECTS)),
            "video",
            draw(st.sampled_from(ZONES)),
            121.0 + draw(st.integers(0, 4)) * 0.004,
            32.0,
            ts_ms=t + span,
            first_ts_ms=t,
            evidence={"n": i},
        )
        out.append(a)
    return list({a.id: a for a in out}.values())


def _final(pairs: list) -> tuple[dict[str, str], dict[str, tuple]]:
    """Each alert's last incident id, and each incident's last view (what its work order
    ends up showing)."""
    alert_inc = {a.id: v.id for a, v in pairs}
    views = {v.id: (v.severity, v.alert_count, v.first_ts_ms, v.last_ts_ms) for _, v in pairs}
    live = set(alert_inc.values())
    return alert_inc, {k: v for k, v in views.items() if k in live}


@settings(max_examples=150, deadline=None)
@given(_alerts(), st.randoms(use_true_random=False), st.integers(1, 6))
def test_same_incidents_whatever_the_arrival_order_within_the_bound(
    alerts: list[Alert], rnd: random.Random, batch: int
) -> None:
    """Alerts arrive shuffled within the out-of-order bound (each up to ``ooo`` late, in
    arbitrary batches), merged at once: the same incidents, ids and final views as
    merging them in time order."""
    ooo = 30 * MIN
    p = IncidentParams(quiet_s=900, radius_m=300)
    in_order = IncidentMerger(p, slack_ms=ooo).push(
        [_copy(a) for a in sorted(alerts, key=lambda a: (a.ts_ms, a.id))]
    )
    arrival = sorted(alerts, key=lambda a: a.ts_ms + rnd.randint(0, ooo))
    m = IncidentMerger(p, slack_ms=ooo)
    shuffled: list = []
    for i in range(0, len(arrival), batch):
        shuffled += m.push([_copy(a) for a in arrival[i : i + batch]])
    assert _final(shuffled) == _final(in_order)
    # every incident id is its earliest alert's, by (ts, id)
    for inc in set(_final(shuffled)[0].values()):
        members = [a for a in alerts if _final(shuffled)[0][a.id] == inc]
        first = min(members, key=lambda a: (a.ts_ms, a.id))
        assert inc == "in-" + first.id.split("-", 1)[1]
