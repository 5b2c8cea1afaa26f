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
from citywatch.detectors.incidents import MATCH_KEYS, IncidentMerger, IncidentParams, IncidentView
from citywatch.detectors.state import Snapshot, decode, encode

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
def _alerts(draw: st.DrawFn, spread: bool = False) -> list[Alert]:
    """Up to 25 alerts in 90 minutes near one point; ``spread``: up to 40 in 120 minutes
    over a wider area at one of several latitudes (some without a position)."""
    out = []
    lat0 = draw(st.sampled_from([0.0, 32.0, 60.0, -45.0, 85.0])) if spread else 32.0
    for i in range(draw(st.integers(1, 40 if spread else 25))):
        t = T0 + draw(st.integers(0, 120 if spread else 90)) * MIN
        span = draw(st.sampled_from([0, 0, 5 * MIN, 20 * MIN]))
        lon: float | None = 121.0
        lat: float | None = lat0
        if not spread:
            lon = 121.0 + draw(st.integers(0, 4)) * 0.004
        elif draw(st.integers(0, 5)) > 0:
            lon = 121.0 + draw(st.integers(-40, 40)) * 0.0021
            lat = lat0 + draw(st.integers(-20, 20)) * 0.0013
        else:
            lon = lat = None
        a = Alert.make(
            draw(st.sampled_from(KINDS)),
            draw(st.sampled_from(["blue", "yellow", "orange", "red"])),
            draw(st.sampled_from(SUBJECTS)),
            "video",
            draw(st.sampled_from(ZONES)),
            lon,
            lat,
            ts_ms=t + span,
            first_ts_ms=t,
            evidence={"n": i},
        )
        out.append(a)
    return list({a.id: a for a in out}.values())


def _orders(pairs: list) -> dict[str, tuple[frozenset[str], IncidentView]]:
    """The work orders a dispatch sink ends with, as the merger's output drives them:
    each alert goes to the order keyed by its incident's ``opened_as``; an update's
    ``absorbed`` orders are closed as merged. Returns the open orders: their alerts and
    their incident's last view. Checks on the way that a merged order gets no alert."""
    alerts: dict[str, set[str]] = {}
    last: dict[str, IncidentView] = {}
    merged: set[str] = set()
    for a, v in pairs:
        merged.update(v.absorbed)
        key = v.order_key
        assert key not in merged, f"{a.id} went to {key}, merged already"
        alerts.setdefault(key, set()).add(a.id)
        last[key] = v
    return {k: (frozenset(ids), last[k]) for k, ids in alerts.items() if k not in merged}


def _final(pairs: list) -> set[tuple]:
    """What the open work orders show, independent of which alert opened them: each
    order's alerts, incident id, severity, alert count and episode."""
    out = set()
    for ids, v in _orders(pairs).values():
        assert v.alert_count == len(ids)
        out.add((ids, v.id, v.severity, v.alert_count, v.first_ts_ms, v.last_ts_ms))
    return out


@settings(max_examples=150, deadline=None)
@given(_alerts(), st.randoms(use_true_random=False), st.integers(1, 6))
def test_same_incidents_whatever_the_arrival_order_within_the_bound(
    alerts: list[Alert], rnd: random.Random, batch: int
) -> None:
    """Alerts arrive shuffled within the out-of-order bound (each up to ``ooo`` late, in
    arbitrary batches), merged at once: one open work order per incident holding every
    alert of it, and the same incidents, ids and final views as merging them in time
    order."""
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
    final = _final(shuffled)
    assert final == _final(in_order)
    assert sum(len(ids) for ids, *_ in final) == len(alerts)  # each alert in one open order
    # every incident id is its earliest alert's, by (ts, id)
    by_id = {a.id: a for a in alerts}
    for ids, inc, *_ in final:
        first = min((by_id[i] for i in ids), key=lambda a: (a.ts_ms, a.id))
        assert inc == "in-" + first.id.split("-", 1)[1]
    # in time order an incident's order is keyed by its earliest alert: ids never move
    assert all(v.order_key == v.id for _, v in _orders(in_order).values())


def test_a_late_earliest_alert_keeps_the_work_order_and_moves_the_incident_id() -> None:
    m = IncidentMerger(IncidentParams(quiet_s=900))
    first = m.push([_a("cam-1", 5)])
    late = m.push([_a("cam-2", 1)])  # earlier, arriving later: the incident's id moves
    (_, v0), (a1, v1) = first[0], late[0]
    assert v1.id == "in-" + a1.id.split("-", 1)[1] != v0.id
    assert v1.merged_from == (v0.id,) and v1.absorbed == ()
    assert v1.order_key == v0.order_key == v0.id  # the same work order, updated
    assert len(late) == 1  # nothing re-emitted: the order has every alert already


def test_a_linking_alert_merges_the_later_opened_incident_into_the_first() -> None:
    m = IncidentMerger(IncidentParams(quiet_s=900, match=("subject", "zone")))
    a = m.push([_a("cam-1", 10, zone="z1")])
    b = m.push([_a("cam-2", 0, zone="z2", lon=121.5)])  # opened second, earlier in time
    # cam-3 alerts in both zones: the same subject links the two incidents
    link = m.push([_a("cam-3", 5, zone="z1"), _a("cam-3", 5.5, zone="z2", lon=121.5)])
    key_a, key_b = a[0][1].order_key, b[0][1].order_key
    views = [v for _, v in link]
    assert views[-1].order_key == key_a  # opened first: it survives
    absorbed = [v.absorbed for v in views if v.absorbed]
    assert absorbed and absorbed[0] == (key_b,)
    assert views[-1].id == b[0][1].id  # the incident's id is its earliest alert's (b's)
    # b's alert is re-emitted into a's order, so that order has all four alerts
    assert {x.id for x, v in link if v.order_key == key_a} >= {b[0][0].id}
    assert views[-1].alert_count == 4
    # Only the re-sent copies are marked: alert outputs write each alert id once.
    first_time = [x.id for x, _ in a + b + link if not x.reissued]
    assert sorted(first_time) == sorted({x.id for x, _ in a + b + link})
    assert [x.id for x, _ in link if x.reissued] == [b[0][0].id]


def test_an_alert_pickled_before_the_reissued_marker_restores() -> None:
    alert, _ = IncidentMerger(IncidentParams()).push([_a("c1", 0)])[0]
    state = alert.__getstate__()
    del state[1]["reissued"]  # what an older snapshot holds
    old = Alert.__new__(Alert)
    old.__setstate__(state)
    assert old == alert and old.reissued is False


def test_a_version_1_snapshot_keys_each_open_incidents_order_by_its_id() -> None:
    """Snapshots from before ``opened_as`` restore with the order keyed by the id."""
    m = IncidentMerger(IncidentParams())
    m.push([_a("c1", 0), _a("c2", 1)])
    snap = decode(encode(m.state()))
    for items in snap.data["open_"].values():
        for inc in items:
            del inc.opened_as  # what a version 1 pickle restores to
    old = Snapshot(snap.kind, 1, snap.data)
    back = IncidentMerger.from_state(IncidentParams(), state=old)
    [(_, v)] = back.push([_a("c3", 2)])
    assert v.order_key == v.id == m.open_["video"][0].id


@settings(max_examples=200, deadline=None)
@given(
    _alerts(spread=True),
    st.randoms(use_true_random=False),
    st.integers(1, 6),
    st.sampled_from([0.0, 50.0, 300.0, 2_000.0]),
    st.sampled_from([MATCH_KEYS, ("distance",), ("subject",), ("zone", "distance")]),
)
def test_the_index_merges_as_the_scan_of_every_open_incident(
    alerts: list[Alert], rnd: random.Random, batch: int, radius: float, match: tuple[str, ...]
) -> None:
    """The open incidents are found by subject, zone and grid cell, not by a walk over
    all of them: the same output, alert by alert, as the walk (in any arrival order)."""
    p = IncidentParams(quiet_s=900, radius_m=radius, match=match)
    arrival = sorted(alerts, key=lambda a: a.ts_ms + rnd.randint(0, 30 * MIN))
    outs = []
    for scan in (True, False):
        m = IncidentMerger(p, slack_ms=30 * MIN)
        m.scan = scan
        got: list = []
        for i in range(0, len(arrival), batch):
            got += m.push([_copy(a) for a in arrival[i : i + batch]])
            if i == batch:  # a snapshot restored on the way: the index is rebuilt
                m2 = IncidentMerger(p, slack_ms=30 * MIN)
                m2.restore(decode(encode(m.state())))
                m2.scan = scan
                m = m2
        outs.append([(a.id, a.incident, a.reissued, v) for a, v in got])
    assert outs[0] == outs[1]
