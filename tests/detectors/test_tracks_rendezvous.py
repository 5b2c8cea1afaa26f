"""track.rendezvous: a tanker and another vehicle stopped together (the roaming fence)."""

from __future__ import annotations

import pickle
import random
import zlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from citywatch.detectors.alerts import Alert
from citywatch.detectors.base import ZoneMeta
from citywatch.detectors.events import GpsEvent
from citywatch.detectors.state import Snapshot
from citywatch.detectors.tracks_rendezvous import (
    RendezvousDetector,
    RendezvousMatcher,
    RendezvousParams,
    SpanReporter,
    StopSpan,
    cells_for,
)
from citywatch.geo.distance import haversine_m, offset_deg

T0 = 1_767_225_600_000
MIN = 60_000
LON, LAT = 121.0, 32.0


def at(east_m: float, north_m: float = 0.0) -> tuple[float, float]:
    dlon, dlat = offset_deg(LAT, east_m, north_m)
    return LON + dlon, LAT + dlat


def parked(
    entity: str,
    cls: str,
    east_m: float,
    from_min: float,
    to_min: float,
    *,
    zones: tuple[str, ...] = (),
    period_s: int = 15,
) -> list[GpsEvent]:
    lon, lat = at(east_m)
    t, end = T0 + int(from_min * MIN), T0 + int(to_min * MIN)
    out = []
    while t <= end:
        out.append(GpsEvent(t, entity, lon, lat, cls, 0.0, zones=zones, id=f"{entity}@{t}"))
        t += period_s * 1000
    return out


def merged(*tracks: list[GpsEvent]) -> list[GpsEvent]:
    return sorted((ev for tr in tracks for ev in tr), key=lambda e: (e.ts_ms, e.entity))


def detector(zones: dict[str, ZoneMeta] | None = None, **overrides: Any) -> RendezvousDetector:
    settings_: dict[str, Any] = {"min_together_s": 480, "min_still_s": 60, "radius_m": 30}
    settings_.update(overrides)
    return RendezvousDetector(RendezvousParams(**settings_), zones or {})


def run(det: RendezvousDetector, events: list[GpsEvent]) -> list[Alert]:
    out: list[Alert] = []
    for ev in events:
        det.on_event(ev, out)
    return out


def minutes(a: Alert) -> tuple[float, float]:
    return (a.first_ts_ms - T0) / MIN, (a.ts_ms - T0) / MIN


def test_tanker_and_truck_side_by_side_alert_once_after_min_together() -> None:
    # t(min)  0    2         10   12   20
    # tanker  [stopped at P ................]
    # truck        [12 m east of P .....]
    # alert                   ^ ts 10 = 2 + 8, first_ts 2
    events = merged(parked("tk-1", "tanker", 0, 0, 20), parked("hz-2", "hazmat_truck", 12, 2, 15))
    out = run(detector(), events)
    assert [(a.subject, a.evidence["partner"], minutes(a)) for a in out] == [
        ("tk-1", "hz-2", (2.0, 10.0))
    ]
    a = out[0]
    assert a.kind == "track.rendezvous" and a.severity == "orange" and a.zone is None
    assert a.evidence["distance_m"] == pytest.approx(12, abs=0.5)
    assert a.evidence["partner_class"] == "hazmat_truck"


def test_three_vehicles_give_one_alert_per_tanker_pair() -> None:
    # t(min)  0    1    3               9   11   20
    # tanker  [P ...................................]
    # truck A      [10 m east ......................]
    # truck B           [10 m west .................]
    # alerts                            ^A (1+8)  ^B (3+8); A and B alone never alert
    events = merged(
        parked("tk-1", "tanker", 0, 0, 20),
        parked("hz-a", "hazmat_truck", 10, 1, 20),
        parked("mk-b", "muck_truck", -10, 3, 20),
    )
    out = run(detector(), events)
    assert sorted((a.subject, a.evidence["partner"], minutes(a)) for a in out) == [
        ("tk-1", "hz-a", (1.0, 9.0)),
        ("tk-1", "mk-b", (3.0, 11.0)),
    ]
    assert len({a.id for a in out}) == 2


def test_two_tankers_give_one_alert_with_the_smaller_id_as_subject() -> None:
    events = merged(parked("tk-9", "tanker", 0, 0, 12), parked("tk-2", "tanker", 8, 0, 12))
    out = run(detector(), events)
    assert [(a.subject, a.evidence["partner"]) for a in out] == [("tk-2", "tk-9")]


def test_two_trucks_without_a_tanker_never_alert() -> None:
    events = merged(
        parked("hz-1", "hazmat_truck", 0, 0, 20), parked("mk-2", "muck_truck", 5, 0, 20)
    )
    assert run(detector(), events) == []


@pytest.mark.parametrize("gap_m", [45, 200], ids=["beyond-radius", "far"])
def test_vehicles_farther_than_the_radius_do_not_alert(gap_m: float) -> None:
    events = merged(
        parked("tk-1", "tanker", 0, 0, 20), parked("hz-2", "hazmat_truck", gap_m, 0, 20)
    )
    assert run(detector(), events) == []


def test_overlap_one_fix_short_of_min_together_does_not_alert() -> None:
    # truck there from 2 to 9.75: 7.75 min together < 8
    events = merged(parked("tk-1", "tanker", 0, 0, 20), parked("hz-2", "hazmat_truck", 5, 2, 9.75))
    assert run(detector(), events) == []


def test_stop_interrupted_by_one_jittered_fix_keeps_its_start() -> None:
    # t(min)  0 ...... 4   4.25  4.5 ...... 12
    # tanker  P ...... P   J     P ........ P      J = 150 m away (GPS jitter)
    # truck   [5 m east, 0 .............. 12]
    # alert   first_ts 0, ts 8: the jittered fix ended nothing
    tanker = parked("tk-1", "tanker", 0, 0, 12)
    j = next(i for i, e in enumerate(tanker) if e.ts_ms == T0 + 4 * MIN + 15_000)
    lon, lat = at(150)
    tanker[j] = GpsEvent(tanker[j].ts_ms, "tk-1", lon, lat, "tanker", 0.0)
    out = run(detector(), merged(tanker, parked("hz-2", "hazmat_truck", 5, 0, 12)))
    assert [minutes(a) for a in out] == [(0.0, 8.0)]


def test_moving_vehicles_and_stops_in_allowed_zones_are_not_reported() -> None:
    catalog = {"park": ZoneMeta("park", "approved_stop")}
    events = merged(
        parked("tk-1", "tanker", 0, 0, 20, zones=("park",)),
        parked("hz-2", "hazmat_truck", 5, 0, 20, zones=("park",)),
    )
    det = detector(catalog)
    assert run(det, events) == []
    assert det.matcher.live_spans() == 0
    moving = [
        GpsEvent(T0 + k * 15_000, "tk-3", LON + k * 0.002, LAT, "tanker", 50.0) for k in range(60)
    ]
    assert run(det, moving) == [] and det.matcher.live_spans() == 0


def _spans(events: list[GpsEvent], p: RendezvousParams) -> list[StopSpan]:
    rep = SpanReporter(p, {})
    spans: list[StopSpan] = []
    for ev in events:
        rep.on_event(ev, spans)
    return spans


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_matcher_result_does_not_depend_on_span_arrival_order(seed: int) -> None:
    # Shards report in any interleaving: the alerts (ids and content) stay the same.
    p = RendezvousParams(min_together_s=480, min_still_s=60)
    events = merged(
        parked("tk-1", "tanker", 0, 0, 20),
        parked("hz-a", "hazmat_truck", 10, 1, 20),
        parked("mk-b", "muck_truck", -10, 3, 14),
        parked("tk-7", "tanker", 25, 5, 18),
    )
    spans = _spans(events, p)

    def match(order: list[StopSpan]) -> list[dict[str, Any]]:
        m, out = RendezvousMatcher(p), []
        for sp in order:
            for cell, home in cells_for(sp.lon, sp.lat, p.cell_m, p.radius_m):
                m.add(cell, home, sp, out)
        return sorted((a.to_json() for a in out), key=lambda j: j["id"])

    reference = match(spans)
    shuffled = spans[:]
    random.Random(seed).shuffle(shuffled)
    assert match(shuffled) == reference
    assert len(reference) == 4  # tk-1+hz-a, tk-1+mk-b, tk-1+tk-7, tk-7+hz-a


def test_matcher_forgets_old_spans() -> None:
    p = RendezvousParams(min_together_s=480, retention_s=3600)
    m, out = RendezvousMatcher(p), []
    for k in range(300):  # one parked truck every minute, each in a new cell
        lon = LON + k * 0.01
        sp = StopSpan(f"hz-{k}", "hazmat_truck", lon, LAT, T0 + k * MIN, T0 + k * MIN + 120_000)
        for cell, home in cells_for(sp.lon, sp.lat, p.cell_m, p.radius_m):
            m.add(cell, home, sp, out)
        m.progress("shard", sp.end_ms)
    assert m.live_spans() <= 62 * 4
    assert pickle.loads(pickle.dumps(m)).live_spans() == m.live_spans()


@settings(max_examples=300, deadline=None)
@given(
    st.floats(120.0, 122.0),
    st.floats(31.0, 33.0),
    st.floats(0, 360),
    st.floats(0, 30),
)
def test_partner_within_radius_is_always_filed_in_the_subjects_home_cell(
    lon: float, lat: float, bearing: float, dist: float
) -> None:
    import math

    p = RendezvousParams()
    dlon, dlat = offset_deg(
        lat, dist * math.sin(math.radians(bearing)), dist * math.cos(math.radians(bearing))
    )
    olon, olat = lon + dlon, lat + dlat
    assume_ok = haversine_m(lon, lat, olon, olat) <= p.radius_m
    home = next(c for c, h in cells_for(lon, lat, p.cell_m, p.radius_m) if h)
    partner_cells = {c for c, _ in cells_for(olon, olat, p.cell_m, p.radius_m)}
    assert not assume_ok or home in partner_cells


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"radius_m": 0}, "radius_m"),
        ({"cell_m": 10, "radius_m": 30}, "cell_m"),
        ({"tanker_classes": ()}, "tanker_classes"),
    ],
    ids=["radius-zero", "cell-smaller-than-radius", "no-tanker-class"],
)
def test_rendezvous_params_reject_bad_values(overrides: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValueError, match=rf"^track\.rendezvous: .*{needle}"):
        RendezvousParams(**overrides)


def _meetings(seed: int) -> list[GpsEvent]:
    """Thirty tanker-truck meetings over eight hours at six places, by vehicles that
    report every 15 s to every 40 minutes (a sleeping tracker)."""
    rng = random.Random(seed)
    events: list[GpsEvent] = []
    for k in range(30):
        place = (k % 6) * 2000.0
        start = rng.uniform(0, 8 * 60)
        for ent, cls in ((f"tk-{k}", "tanker"), (f"hz-{k % 7}", "hazmat_truck")):
            period_min = rng.choice([0.25, 1, 10, 40])
            lon, lat = at(place + rng.uniform(-10, 10))
            t, end = start + rng.uniform(0, 5), start + rng.uniform(10, 70)
            while t <= end:
                ts = T0 + int(t * MIN)
                events.append(GpsEvent(ts, ent, lon, lat, cls, 0.0, id=f"{ent}@{ts}"))
                t += period_min
    return sorted(events, key=lambda e: (e.ts_ms, e.entity))


@pytest.mark.parametrize("seed", range(8))
def test_matcher_forgets_nothing_a_late_span_still_needs(seed: int) -> None:
    # The shards' spans arrive up to 20 minutes out of step (the flow's out-of-order
    # bound, set large here), and the matcher keeps as little as it may (retention
    # 1,000 s): the alerts are those of the spans in order, and old spans are gone.
    p = RendezvousParams(retention_s=1000)
    spans = _spans(_meetings(seed), p)
    disorder_ms = 20 * MIN

    def match(order: list[StopSpan]) -> tuple[list[dict[str, Any]], RendezvousMatcher]:
        m, out = RendezvousMatcher(p, disorder_ms), []
        for sp in order:
            for cell, home in cells_for(sp.lon, sp.lat, p.cell_m, p.radius_m):
                m.add(cell, home, sp, out)
            m.progress("shards", sp.end_ms)  # spans still to come end at most disorder_ms before
        return sorted((a.to_json() for a in out), key=lambda j: j["id"]), m

    reference, _ = match(spans)
    rng = random.Random(seed)
    late = sorted(spans, key=lambda sp: sp.end_ms + rng.uniform(0, disorder_ms))
    shuffled, m = match(late)
    assert shuffled == reference
    assert len(reference) >= 10
    assert m.live_spans() < len({(sp.entity, sp.start_ms) for sp in spans}) // 2


@pytest.mark.parametrize("seed", range(4))
def test_matcher_forgets_on_the_slowest_producer_however_far_apart_they_run(seed: int) -> None:
    # Two detection shards report their spans, each in its own event-time order but
    # hours apart from the other (one batch of a sparse recording can hold hours):
    # spans are forgotten on the slower shard's watermark, so the alerts are those of
    # the spans in order, whichever shard runs ahead. (The latest span end seen was
    # no such bound: a shard running ahead made the matcher forget the spans the
    # other shard's later reports paired with.)
    p = RendezvousParams(retention_s=1000)
    spans = _spans(_meetings(seed), p)
    shard = {sp.entity: ("a" if zlib.crc32(sp.entity.encode()) % 2 else "b") for sp in spans}

    def match(order: list[StopSpan]) -> tuple[list[dict[str, Any]], RendezvousMatcher]:
        m, out = RendezvousMatcher(p, 0, producers=2), []
        for sp in order:
            for cell, home in cells_for(sp.lon, sp.lat, p.cell_m, p.radius_m):
                m.add(cell, home, sp, out)
            m.progress(shard[sp.entity], sp.end_ms)
        m.progress("a", 2**62)
        m.progress("b", 2**62)
        return sorted((a.to_json() for a in out), key=lambda j: j["id"]), m

    reference, _ = match(spans)
    assert len(reference) >= 10
    ahead = [sp for sp in spans if shard[sp.entity] == "a"]
    behind = [sp for sp in spans if shard[sp.entity] == "b"]
    rng = random.Random(seed)
    interleaved: list[StopSpan] = []
    while ahead or behind:  # each shard's spans in order, the shards far out of step
        side = ahead if (ahead and (not behind or rng.random() < 0.9)) else behind
        interleaved.append(side.pop(0))
    for order in (
        interleaved,
        [sp for sp in spans if shard[sp.entity] == "b"]
        + [sp for sp in spans if shard[sp.entity] == "a"],
    ):
        got, m = match(order)
        assert got == reference
        assert m.live_spans() == 0  # and all was forgotten once both shards moved on


def test_matcher_state_of_version_1_restores_its_spans() -> None:
    p = RendezvousParams()
    sp = StopSpan("hz-1", "hazmat_truck", LON, LAT, T0, T0 + 10 * MIN)
    old = RendezvousMatcher(p)
    for cell, home in cells_for(sp.lon, sp.lat, p.cell_m, p.radius_m):
        old.add(cell, home, sp, [])
    data = dict(old.state().data)
    del data["_progress"]
    data["_clock_ms"] = sp.end_ms  # version 1 kept the latest span end as its clock
    m = RendezvousMatcher.from_state(p, producers=2, state=Snapshot("RendezvousMatcher", 1, data))
    assert m.live_spans() == old.live_spans() > 0
    m.progress("a", T0 + 24 * 3600 * 1000)
    assert m.live_spans() > 0  # nothing is forgotten until every producer has reported
    m.progress("b", T0 + 24 * 3600 * 1000)
    assert m.live_spans() == 0
