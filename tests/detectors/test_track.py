"""track.stop: a watched vehicle standing still outside allowed zones."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest

from citywatch.detectors.alerts import Alert
from citywatch.detectors.base import ZoneMeta, keyed_v1
from citywatch.detectors.events import GpsEvent
from citywatch.detectors.track import StopDetector, StopParams
from citywatch.geo.distance import offset_deg

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
MIN = 60_000
LON, LAT = 121.0, 32.0


def fix(
    minute: float,
    east_m: float = 0.0,
    north_m: float = 0.0,
    *,
    entity: str = "hz-001",
    cls: str | None = "hazmat_truck",
    zones: tuple[str, ...] = (),
) -> GpsEvent:
    """A fix ``minute`` minutes after T0, ``east_m``/``north_m`` metres from the stop point."""
    dlon, dlat = offset_deg(LAT, east_m, north_m)
    return GpsEvent(
        T0 + int(minute * MIN), entity, LON + dlon, LAT + dlat, cls, zones=zones, id=f"e{minute}"
    )


def make_detector(zones: dict[str, ZoneMeta] | None = None, **overrides: Any) -> StopDetector:
    settings: dict[str, Any] = {
        "classes": ("hazmat_truck", "tanker"),
        "radius_m": 50,
        "min_stop_s": 900,
    }
    settings.update(overrides)
    return StopDetector(StopParams(**settings), zones or {})


def run(det: StopDetector, fixes: list[GpsEvent]) -> list[tuple[int, Alert]]:
    """Feed fixes; return (index of the triggering fix, alert) pairs."""
    fired: list[tuple[int, Alert]] = []
    for i, ev in enumerate(fixes):
        out: list[Alert] = []
        det.on_event(ev, out)
        fired.extend((i, a) for a in out)
    return fired


def at_minutes(fired: list[tuple[int, Alert]]) -> list[float]:
    return [(a.ts_ms - T0) / MIN for _, a in fired]


def test_stop_fires_exactly_once_at_min_stop_s() -> None:
    # t(min)  0  1  2 ... 14  15  16 ... 30
    # fix     A  A  A ...  A   A   A ...  A     all within 50 m
    # alert                    ^ once, first_ts = 0, duration 900 s
    fixes = [fix(m, east_m=(m % 3) * 5) for m in range(31)]
    fired = run(make_detector(), fixes)
    assert at_minutes(fired) == [15]
    alert = fired[0][1]
    assert alert.kind == "track.stop"
    assert alert.severity == "orange"
    assert (alert.subject, alert.subject_type, alert.zone) == ("hz-001", "gps", None)
    assert alert.first_ts_ms == T0
    assert alert.evidence["duration_s"] == 900
    assert alert.evidence["class"] == "hazmat_truck"
    assert alert.evidence["radius_m"] == 50
    assert alert.evidence["fixes"] == 16
    assert alert.evidence["event_id"] == "e15"
    assert alert.evidence["first_event_id"] == "e0"
    assert (alert.evidence["observed_s"], alert.evidence["silent_s"]) == (900, 0)
    assert alert.evidence["across_silence"] is False
    # the anchor is the median of the fixes (0, 5 and 10 m east): 5 m east
    assert alert.lon == pytest.approx(LON + offset_deg(LAT, 5, 0)[0])
    assert alert.lat == pytest.approx(LAT)


def test_no_alert_one_millisecond_short() -> None:
    fixes = [fix(0), fix(14), fix(14.99998)]
    assert run(make_detector(), fixes) == []


def test_a_short_silence_is_bridged_and_reported_as_silent() -> None:
    # t(min)  0                      16
    # fix     A   (gateway silent)   A     -> one stay, but 16 min of it unobserved
    fired = run(make_detector(), [fix(0), fix(16)])
    assert at_minutes(fired) == [16]
    ev = fired[0][1].evidence
    assert (ev["duration_s"], ev["observed_s"], ev["silent_s"]) == (960, 0, 960)
    assert ev["across_silence"] is True


def test_a_silence_longer_than_max_bridge_s_is_not_a_stop() -> None:
    # t(min)  0  1          (silent 8.8 h)          529 530
    # fix     A  A                                   A   A     same place
    # Nothing shows the truck stood there: no stop (the silence is track.gap's).
    fixes = [fix(0), fix(1), fix(529), fix(530)]
    assert run(make_detector(), fixes) == []
    # ... but standing 15 observed minutes after it does alert
    fixes += [fix(m) for m in range(531, 545)]
    assert at_minutes(run(make_detector(), fixes)) == [544]


def test_the_stay_after_a_long_silence_at_the_same_place_continues_the_alert() -> None:
    # stood 20 min (alert), silent 3 h, stands again at the same place: one stay
    fixes = [fix(m) for m in range(21)] + [fix(m) for m in range(200, 240)]
    assert at_minutes(run(make_detector(), fixes)) == [15]


def test_one_jittered_fix_does_not_end_the_stop() -> None:
    # t(min)  0 ... 11  12  13  14  15
    # fix     A ...  A   J   A   A   A      J = 400 m away (a multipath jump)
    # alert                          ^ first_ts = 0
    fixes = [fix(m) for m in range(12)] + [fix(12, east_m=400)] + [fix(m) for m in (13, 14, 15)]
    fired = run(make_detector(), fixes)
    assert at_minutes(fired) == [15]
    assert fired[0][1].first_ts_ms == T0


def test_two_jittered_fixes_do_not_end_the_stay() -> None:
    # t(min)  0 ... 11  12  13  14  15
    # fix     A ...  A   J1  J2  A   A      J1 120 m east, J2 90 m north
    fixes = (
        [fix(m) for m in range(12)]
        + [fix(12, east_m=120), fix(13, north_m=90)]
        + [fix(14), fix(15)]
    )
    fired = run(make_detector(), fixes)
    assert at_minutes(fired) == [15]
    assert fired[0][1].first_ts_ms == T0


def test_leaving_takes_a_count_and_a_time() -> None:
    # 1 Hz fixes; at 5 min a burst of five fixes 300 m away (5 s): not a departure,
    # but an excursion: its 6 s are not stay time, so the stop is reached 6 s later
    fixes = [fix(s / 60) for s in range(300)]
    fixes += [fix((300 + s) / 60, east_m=300) for s in range(5)]
    fixes += [fix((305 + s) / 60) for s in range(700)]
    fired = run(make_detector(), fixes)
    assert at_minutes(fired) == [15.1]
    assert fired[0][1].evidence["away_s"] == 6
    # ... while three fixes 300 m away over two minutes are one, whatever the fix rate
    slow = [fix(m) for m in range(6)] + [fix(m, east_m=300) for m in (6, 7, 8)]
    slow += [fix(m) for m in range(9, 22)]
    assert run(make_detector(), slow) == []


def test_urban_multipath_at_1_hz_gives_one_alert_per_stay() -> None:
    # A 1 h 45 min stay with 1 Hz fixes; every 10 min three fixes 70-110 m from the
    # stay's first fix (itself 10 m off the true place): one alert.
    fixes = [fix(0, east_m=-10)]
    for s in range(1, 105 * 60):
        off = 60 + 20 * (s % 3) if s % 600 in (0, 1, 2) else (s * 7919) % 11
        fixes.append(fix(s / 60, east_m=off))
    fired = run(make_detector(radius_m=60), fixes)
    assert at_minutes(fired) == [15]


def test_a_taxi_at_a_rank_with_150_s_fixes_and_far_fixes_alerts_once() -> None:
    # fixes every 150 s for 4 hours; three in a row sit 85-107 m away; once the
    # driver moves up the queue 250 m and then back: all one stay at one rank
    fixes = []
    for k in range(96):
        east = {40: 85, 41: 107, 42: 95, 60: 250, 61: 250}.get(k, 0)
        fixes.append(fix(k * 2.5, east_m=east))
    fired = run(make_detector(), fixes)
    assert len(fired) == 1


def test_a_re_stop_at_the_same_place_continues_the_alert() -> None:
    # stood 20 min (alert), drove 2 km away and back in 10 min, stood 30 min more
    fixes = [fix(m) for m in range(21)]
    fixes += [fix(m, east_m=2000) for m in range(22, 30)]
    fixes += [fix(m) for m in range(31, 61)]
    assert at_minutes(run(make_detector(), fixes)) == [15]
    # ... unless the vehicle was away longer than rejoin_s
    assert at_minutes(run(make_detector(rejoin_s=300), fixes)) == [15, 46]


def test_first_ts_is_the_arrival_fix() -> None:
    # driving at 40 km/h (fixes 670 m apart), then the arrival fix (still 12 km/h)
    fixes = [
        GpsEvent(T0 + m * MIN, "hz-001", LON - 0.007 * (5 - m), LAT, "hazmat_truck", 40.0)
        for m in range(5)
    ]
    fixes.append(GpsEvent(T0 + 5 * MIN, "hz-001", LON, LAT, "hazmat_truck", 12.0, id="arrive"))
    fixes += [fix(m) for m in range(6, 25)]
    fired = run(make_detector(), fixes)
    assert at_minutes(fired) == [20]
    assert fired[0][1].first_ts_ms == T0 + 5 * MIN
    assert fired[0][1].evidence["first_event_id"] == "arrive"


def test_truck_that_moves_on_and_stops_again_gets_a_second_alert_with_a_new_id() -> None:
    # t(min)  0 ... 15   16   17   18   19   20 ........ 35
    # where   A ...  A   +1km +2km +3km +4km  B .......... B     B = 5 km east
    # alert          ^1                                   ^2 first_ts = 20
    fixes = [fix(m) for m in range(16)]
    fixes += [fix(m, east_m=1000 * (m - 15)) for m in range(16, 20)]
    fixes += [fix(m, east_m=5000) for m in range(20, 36)]
    fired = run(make_detector(), fixes)
    assert at_minutes(fired) == [15, 35]
    first, second = fired[0][1], fired[1][1]
    assert first.first_ts_ms == T0
    assert second.first_ts_ms == T0 + 20 * MIN
    assert second.evidence["duration_s"] == 900
    assert second.id != first.id
    assert second.lon == pytest.approx(fixes[-1].lon)


def test_stop_inside_an_allowed_zone_does_not_fire() -> None:
    catalog = {
        "stop-1": ZoneMeta("stop-1", "approved_stop"),
        "park-1": ZoneMeta("park-1", "chemical_park"),
    }
    for zone in ("stop-1", "park-1"):
        fixes = [fix(m, zones=(zone,)) for m in range(31)]
        assert run(make_detector(catalog), fixes) == [], zone


def test_stop_in_a_zone_that_is_not_allowed_fires_naming_the_zone() -> None:
    catalog = {"lv": ZoneMeta("lv", "levee"), "stop-1": ZoneMeta("stop-1", "approved_stop")}
    fired = run(make_detector(catalog), [fix(m, zones=("lv",)) for m in range(16)])
    assert [a.zone for _, a in fired] == ["lv"]


def test_allowed_kinds_follow_the_zone_catalog_on_reload() -> None:
    det = make_detector({"z": ZoneMeta("z", "levee")})
    det.set_zones({"z": ZoneMeta("z", "approved_stop")})
    assert run(det, [fix(m, zones=("z",)) for m in range(16)]) == []


def test_out_of_order_fix_is_ignored() -> None:
    # arrival  0  1 ... 10  (5 @ 3 km)  11 ... 15
    # A late fix far away neither restarts the stop nor counts as an outlier.
    fixes = [fix(m) for m in range(11)] + [fix(5, east_m=3000)] + [fix(m) for m in range(11, 16)]
    fired = run(make_detector(), fixes)
    assert at_minutes(fired) == [15]
    assert fired[0][1].first_ts_ms == T0


def test_duplicate_fix_is_ignored() -> None:
    fixes = [fix(0), fix(15), fix(15)]
    assert at_minutes(run(make_detector(), fixes)) == [15]


@pytest.mark.parametrize("cls", ["muck_truck", None], ids=["unwatched-class", "no-class"])
def test_unwatched_vehicles_are_ignored(cls: str | None) -> None:
    det = make_detector()
    assert run(det, [fix(m, cls=cls) for m in range(31)]) == []
    assert det.live_keys() == 0


def test_entities_are_independent() -> None:
    fixes = []
    for m in range(16):
        fixes += [fix(m, entity="a"), fix(m, east_m=10_000, entity="b", cls="tanker")]
    fired = run(make_detector(), fixes)
    assert sorted(a.subject for _, a in fired) == ["a", "b"]


def test_idle_vehicles_are_evicted_on_watermark() -> None:
    det = make_detector(idle_evict_s=3600)
    run(det, [fix(0), fix(1)])
    assert det.live_keys() == 1
    det.on_watermark(T0 + 30 * MIN, [])
    assert det.live_keys() == 1
    det.on_watermark(T0 + 62 * MIN, [])
    assert det.live_keys() == 0


def test_detector_pickles_mid_stop_and_resumes() -> None:
    det = make_detector()
    run(det, [fix(m) for m in range(10)])
    clone = pickle.loads(pickle.dumps(det))
    assert at_minutes(run(clone, [fix(m) for m in range(10, 16)])) == [15]


def test_input_events_are_not_mutated() -> None:
    fixes = [fix(m) for m in range(16)]
    before = copy.deepcopy(fixes)
    run(make_detector(), fixes)
    assert fixes == before


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("radius_m", 0),
        ("radius_m", -5),
        ("min_stop_s", 0),
        ("leave_fixes", 0),
        ("rejoin_m", 10),
        ("idle_evict_s", 0),
        ("severity", "purple"),
    ],
    ids=[
        "radius_m-zero",
        "radius_m-negative",
        "min_stop_s-zero",
        "leave_fixes-zero",
        "rejoin_m-below-radius",
        "idle_evict_s-zero",
        "severity-unknown",
    ],
)
def test_stop_params_reject_bad_values_naming_the_setting(setting: str, value: Any) -> None:
    with pytest.raises(ValueError, match=rf"^track\.stop: .*{setting}.*{value}"):
        StopParams(**{setting: value})


def test_stop_params_defaults_are_valid() -> None:
    p = StopParams()
    assert p.radius_m > 0 and p.min_stop_s > 0


def test_state_across_a_long_silence_does_not_depend_on_watermarks() -> None:
    # stood 20 min (alert), silent 7 h (> idle_evict_s), back at the same place for
    # 20 min: the same alerts whether or not a watermark evicted the truck in between
    first = [fix(m) for m in range(21)]
    second = [fix(m) for m in range(440, 461)]
    quiet = make_detector()
    run(quiet, first)
    evicted = make_detector()
    run(evicted, first)
    evicted.on_watermark(T0 + 400 * MIN, [])
    assert evicted.live_keys() == 0
    assert [a.to_json() for _, a in run(quiet, second)] == [
        a.to_json() for _, a in run(evicted, second)
    ]


def test_a_vehicle_that_never_left_keeps_its_alert_however_long() -> None:
    # a ship at anchor: 20 min at A (alert), swings to 100 m east for 40 min (a stay
    # of its own), back at A for 30 min: one alert, even with rejoin_s of 5 minutes
    fixes = [fix(m) for m in range(21)]
    fixes += [fix(m, east_m=100) for m in range(21, 61)]
    fixes += [fix(m) for m in range(61, 91)]
    assert at_minutes(run(make_detector(rejoin_s=300), fixes)) == [15]


def test_a_vehicle_manoeuvring_around_a_place_has_not_stood_there() -> None:
    # Fixes every 4-5 min (a slow reporter): back at the place between excursions of
    # two fixes 250-1200 m away, for an hour. Nothing ends the stay (never three away
    # fixes in a row), but the excursions are not stay time: no stop.
    fixes = [fix(0), fix(1)]
    t = 1.0
    for _ in range(6):
        fixes += [fix(t + 4, east_m=1200), fix(t + 8, east_m=250), fix(t + 10)]
        t += 10
    assert run(make_detector(), fixes) == []
    # Multipath of 60-100 m (within 2 x radius_m) is no excursion: the same times
    # with those fixes stop at 15 min, the away fixes counted as stay time.
    jitter = [fix(0), fix(1)]
    t = 1.0
    for _ in range(6):
        jitter += [fix(t + 4, east_m=90), fix(t + 8, north_m=70), fix(t + 10)]
        t += 10
    fired = run(make_detector(), jitter)
    assert at_minutes(fired) == [21]
    assert fired[0][1].evidence["away_s"] == 0


def test_evidence_separates_observed_silent_and_away_time() -> None:
    # t(min) 0 1 2 | silent 10 min | 12 | away 14, 15 (400 m) | 16 ... 24
    fixes = [fix(0), fix(1), fix(2), fix(12), fix(14, east_m=400), fix(15, east_m=400)]
    fixes += [fix(m) for m in range(16, 25)]
    fired = run(make_detector(observed_gap_s=300), fixes)
    assert at_minutes(fired) == [19]
    ev = fired[0][1].evidence
    assert (ev["duration_s"], ev["silent_s"], ev["away_s"], ev["observed_s"]) == (
        19 * 60,
        600,
        240,
        19 * 60 - 600 - 240,
    )
    assert ev["across_silence"] is True  # 600 s of the 900 s of stay time were silent


def test_state_of_version_1_is_migrated() -> None:
    from citywatch.detectors.state import Snapshot, decode, encode

    det = make_detector()
    run(det, [fix(m) for m in range(10)])
    snap = decode(encode(det.state()))
    snap.data["_state"] = keyed_v1(snap.data["_state"])
    for _key, stay in snap.data["_state"].data["items"]:  # what version 1 stays lacked
        del stay.away_ms, stay.away_far
    old = Snapshot(snap.kind, 1, snap.data)
    restored = StopDetector.from_state(det.p, {}, state=old)
    assert at_minutes(run(restored, [fix(m) for m in range(10, 16)])) == [15]
