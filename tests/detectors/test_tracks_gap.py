"""track.gap: a watched vehicle silent for longer than its class allows."""

from __future__ import annotations

import pickle
import zlib
from typing import Any

import pytest

from citywatch.detectors.alerts import Alert
from citywatch.detectors.events import GpsEvent
from citywatch.detectors.tracks_gap import GapDetector, GapParams
from citywatch.geo.distance import offset_deg

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
MIN = 60_000
SILENCE_MS = 180_000  # max_silence_s = 180 for hazmat trucks below


def fix(minute: float, entity: str = "hz-1", cls: str = "hazmat_truck") -> GpsEvent:
    return GpsEvent(
        T0 + int(minute * MIN),
        entity,
        121.0 + minute * 1e-3,
        32.0,
        cls,
        zones=(),
        id=f"{entity}@{minute}",
    )


def detector(**overrides: Any) -> GapDetector:
    settings: dict[str, Any] = {"max_silence_s": {"hazmat_truck": 180, "tanker": 120}}
    settings.update(overrides)
    return GapDetector(GapParams(**settings))


def run(det: GapDetector, script: list[GpsEvent | int]) -> list[Alert]:
    """Feed fixes and watermarks (ints, minutes after T0 as ms offsets) in arrival order."""
    out: list[Alert] = []
    for item in script:
        if isinstance(item, GpsEvent):
            det.on_event(item, out)
        else:
            det.on_watermark(item, out)
    return out


def wm(minute: float) -> int:
    return T0 + int(minute * MIN)


def test_silence_fires_once_when_the_watermark_passes_last_fix_plus_t() -> None:
    # t(min)  0  1  2 .................... 5   5+1ms
    # fix     A  A  A     (silent)
    # wm                                   5   5.00002 -> track.gap, first_ts 2, ts 5
    det = detector()
    out = run(det, [fix(0), fix(1), fix(2), wm(4), wm(5)])
    assert out == []  # a fix at exactly 2 + 3 min would still be on time
    out = run(det, [wm(5) + 1, wm(9), wm(30)])
    assert [(a.kind, a.first_ts_ms, a.ts_ms) for a in out] == [("track.gap", wm(2), wm(5))]
    alert = out[0]
    assert (alert.subject, alert.subject_type, alert.severity) == ("hz-1", "gps", "yellow")
    assert (alert.lon, alert.lat) == (fix(2).lon, fix(2).lat)  # the last position
    assert alert.evidence == {
        "class": "hazmat_truck",
        "cargo": None,
        "max_silence_s": 180.0,
        "observed_interval_s": 60.0,  # its own, known from the first interval
        "fleet_interval_s": None,  # (no fleet: the only vehicle)
        "last_fix_id": "hz-1@2",
    }


def test_gap_that_closed_before_the_watermark_got_there_alerts_the_same() -> None:
    # t(min)  0   1            5   (arrival of the closing fix at 5)
    # fix     A   A  (silent)  A
    # wm                          then wm 4.6 -> 5.5: the gap 1 -> 5 (> 3 min) is decided
    closed = run(detector(), [fix(0), fix(1), fix(5), wm(4.6), wm(5.5)])
    # The same fixes, but the watermark passed the deadline before the fix arrived.
    open_ = run(detector(), [fix(0), fix(1), wm(4.5), fix(5), wm(5.5)])
    assert [a.id for a in closed] == [a.id for a in open_]
    assert len(closed) == 1
    assert closed[0].to_json() == open_[0].to_json()
    assert closed[0].first_ts_ms == wm(1) and closed[0].ts_ms == wm(4)


def test_out_of_order_fix_inside_the_silence_cancels_the_gap() -> None:
    # t(min)  0   1   (3.9 arrives after 4.5)   4.5
    # fix     A   A          A(late-ish)        A      every silence <= 3 min: no alert
    out = run(detector(), [fix(0), fix(1), fix(4.5), fix(3.9), wm(4.2), wm(10)])
    ids_without_gap = [a for a in out if a.first_ts_ms == wm(1)]
    assert ids_without_gap == []
    # Only the final silence after 4.5 remains, decided at 7.5.
    assert [(a.first_ts_ms, a.ts_ms) for a in out] == [(wm(4.5), wm(7.5))]


def test_steady_reporting_never_alerts_and_duplicates_are_harmless() -> None:
    script: list[GpsEvent | int] = []
    for k in range(120):
        script += [fix(k * 0.25), fix(k * 0.25), wm(k * 0.25 - 0.5)]
    assert run(detector(), script) == []


def test_each_class_has_its_own_silence_and_unwatched_classes_are_ignored() -> None:
    # tanker T = 2 min, hazmat T = 3 min, muck trucks not watched.
    det = detector()
    script: list[GpsEvent | int] = [
        fix(0, "tk-1", "tanker"),
        fix(0, "hz-1"),
        fix(0, "mk-1", "muck_truck"),
        wm(2.5),
    ]
    out = run(det, script)
    assert [a.subject for a in out] == ["tk-1"]
    out = run(det, [wm(3.5)])
    assert [a.subject for a in out] == ["hz-1"]
    assert det.live_keys() == 2


def test_a_second_silence_gives_a_second_alert_with_a_new_id() -> None:
    out = run(detector(interval_factor=0), [fix(0), fix(4), fix(5), fix(10), wm(20)])
    assert [(a.first_ts_ms - T0) // MIN for a in out] == [0, 5, 10]
    assert len({a.id for a in out}) == 3


def test_watermark_going_backwards_is_ignored() -> None:
    det = detector()
    assert run(det, [fix(0), wm(10), wm(2), fix(1)]) != []
    assert run(det, [wm(3)]) == []


def test_idle_vehicles_are_evicted_after_their_gap_fired() -> None:
    det = detector(idle_evict_s=3600)
    out = run(det, [fix(0), wm(30)])
    assert len(out) == 1 and det.live_keys() == 1
    run(det, [wm(61)])
    assert det.live_keys() == 0


def test_state_is_bounded_over_many_vehicles_and_pickles_mid_silence() -> None:
    det = detector(idle_evict_s=600, max_adaptive_s=300, parked_silence_s=300)
    for k in range(40):
        run(det, [fix(k, entity=f"hz-{k}") for _ in range(3)] + [wm(k - 0.5)])
    assert det.live_keys() <= 12  # only the last ~10 minutes of vehicles are kept
    clone = pickle.loads(pickle.dumps(det))
    # Each vehicle sent one fix; those of minutes 36-39 were still undecided.
    assert [a.subject for a in run(clone, [wm(39 + 3.01)])] == [f"hz-{k}" for k in range(36, 40)]


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"max_silence_s": {"tanker": 0}}, "max_silence_s.tanker"),
        ({"severity": "pink"}, "severity"),
        ({"max_silence_s": {"tanker": 7200}, "idle_evict_s": 3600}, "idle_evict_s"),
    ],
    ids=["silence-zero", "severity-unknown", "evicted-before-decided"],
)
def test_gap_params_reject_bad_values_naming_the_setting(
    overrides: dict[str, Any], needle: str
) -> None:
    with pytest.raises(ValueError, match=rf"^track\.gap: .*{needle}"):
        GapParams(**overrides)


def moving(sec: float, east_m: float, north_m: float = 0.0, entity: str = "hz-1") -> GpsEvent:
    dlon, dlat = offset_deg(32.0, east_m, north_m)
    return GpsEvent(T0 + int(sec * 1000), entity, 121.0 + dlon, 32.0 + dlat, "hazmat_truck")


def test_a_tunnel_dropout_is_not_a_gap_with_the_defaults() -> None:
    # 5 s fixes at 60 km/h, 4 minutes in a tunnel: silence 240 s < 300 s
    fixes = [moving(5 * k, 83 * k) for k in range(20)]
    fixes += [moving(95 + 240 + 5 * k, 83 * (19 + 49 + k)) for k in range(20)]
    det = GapDetector(GapParams())
    assert run(det, [*fixes, wm(7)]) == []


def test_a_slow_reporter_may_lose_a_packet_but_not_go_dark() -> None:
    # a fleet reporting every 150 s: one lost packet (300 s) is no gap; 20 minutes is,
    # measured against its own interval (3 x 150 s = 450 s > the class's 300 s)
    fixes = [moving(150 * k, 300 * k) for k in range(10)] + [moving(1650, 3300)]
    det = GapDetector(GapParams())
    assert run(det, [*fixes, wm(27.5)]) == []
    out = run(det, [moving(1650 + 1200, 6000), wm(60)])
    gaps = [(a.first_ts_ms, a.evidence["max_silence_s"]) for a in out]
    assert gaps[0] == (T0 + 1_650_000, 450.0)


def test_reappearing_far_off_its_track_after_a_gap_is_worth_more() -> None:
    # 15 s fixes driving east at 36 km/h, silent 10 minutes, then back on its road
    # (6 km further east) or 5 km north of where it went dark
    before = [moving(15 * k, 150 * k) for k in range(10)]
    on_road = run(GapDetector(GapParams()), [*before, moving(735, 150 * 49), wm(16)])
    assert [a.severity for a in on_road] == ["yellow"]
    off = run(GapDetector(GapParams()), [*before, moving(735, 1350, 5000), wm(16)])
    assert sorted(a.severity for a in off) == ["orange", "yellow"]
    follow = next(a for a in off if a.severity == "orange")
    assert follow.kind == "track.gap" and follow.first_ts_ms == T0 + 135_000
    assert follow.evidence["reappeared"] == "off its track"
    assert follow.evidence["off_track_m"] > 5000
    assert len({a.id for a in off}) == 2


def test_a_parked_vehicle_may_report_less_often() -> None:
    # fixes every minute at one spot, then 12 minutes of silence: parked, no gap;
    # the same silence while driving is one
    parked = [moving(60 * k, k % 2 * 5) for k in range(5)] + [moving(240 + 720, 0)]
    assert run(GapDetector(GapParams()), [*parked, wm(17)]) == []
    driving = [moving(60 * k, 500 * k) for k in range(5)] + [moving(240 + 720, 9000)]
    out = run(GapDetector(GapParams()), [*driving, wm(17)])
    assert [(a.first_ts_ms, a.evidence["max_silence_s"]) for a in out] == [(T0 + 240_000, 300.0)]


def _pace(t0_s: int, interval_s: int, n: int, east0_m: float = 0.0) -> list[GpsEvent]:
    """``n`` fixes every ``interval_s`` from ``t0_s``, driving east 10 m/s."""
    return [moving(t0_s + interval_s * k, east0_m + 10 * interval_s * k) for k in range(n)]


def test_a_reporter_that_changes_pace_is_measured_by_its_usual_pace() -> None:
    # AIS-like: three hours at 180 s, then half an hour at 70 s (under way), then a
    # silence of 390 s. Its recent upper quartile (70 s) would allow 300 s; its
    # long-run median (180 s) allows 540 s: two lost packets of its usual pace.
    slow = _pace(0, 180, 60)
    fast = _pace(60 * 180, 70, 26, east0_m=60 * 1800)
    last = fast[-1]
    back = moving((last.ts_ms - T0) / 1000 + 390, 60 * 1800 + 700 * 25 + 3900)  # on its road
    det = GapDetector(GapParams())
    # (the watermark stops 4 minutes after the last fix: its own silence is undecided)
    assert run(det, [*slow, *fast, back, wm((back.ts_ms - T0) / MIN + 4)]) == []
    # A truck that always reports every 70 s is held to the class's 300 s.
    steady = _pace(0, 70, 180)
    end_s = (steady[-1].ts_ms - T0) // 1000
    on_road = moving(end_s + 390, 700 * 179 + 3900)
    out = run(GapDetector(GapParams()), [*steady, on_road, wm(end_s / 60 + 10)])
    assert [(a.evidence["max_silence_s"], a.evidence["observed_interval_s"]) for a in out] == [
        (300.0, 70.0)
    ]


def test_the_usual_pace_is_remembered_across_the_idle_eviction() -> None:
    # A vessel reporting every 180 s goes away for 8 h (its track is evicted after
    # idle_evict_s = 6 h), comes back and loses two packets: no gap, since its pace
    # is remembered for interval_memory_s. A vehicle whose pace is not known (nothing
    # seen of it but one fix) is held to the class's 300 s.
    first = _pace(0, 180, 40)
    later = _pace(40 * 180 + 8 * 3600, 180, 1)
    back = moving((later[-1].ts_ms - T0) / 1000 + 480, 100)  # near where it was
    det = GapDetector(GapParams())
    out = run(det, [*first, *later, back, wm((back.ts_ms - T0) / MIN + 4)])
    assert [a.first_ts_ms for a in out] == [first[-1].ts_ms]  # only the 8 h absence
    forgetful = GapDetector(GapParams(interval_memory_s=6 * 3600 + 1))
    out = run(forgetful, [*first, *later, back, wm((back.ts_ms - T0) / MIN + 4)])
    assert [a.first_ts_ms for a in out] == [first[-1].ts_ms, later[-1].ts_ms]


def _vessel(sec: float, entity: str, src: str, east_m: float = 0.0) -> GpsEvent:
    dlon, _ = offset_deg(32.0, east_m, 0.0)
    return GpsEvent(T0 + int(sec * 1000), entity, 121.0 + dlon, 32.0, "tanker", src=src)


def test_a_newcomer_is_held_to_what_its_fleet_reports_not_the_class_default() -> None:
    # t(min)   0 ........ 60   61   62     67.7
    # ais      4 vessels at anchor, a fix every 180 s (1 km apart)
    # trucks   4 trucks driving, a fix every 10 s
    # ais-new                  A           A        (silent 400 s, back where it was)
    # tr-new                   A           A
    # ais-gone                      A  (never again)
    # The AIS fleet's upper quartile (180 s) allows its newcomers 3 x 180 = 540 s; the
    # trucks' (10 s) leaves theirs the class's 300 s. A newcomer that goes dark is a
    # gap either way, and its evidence says the fleet's interval decided.
    det = detector(max_silence_s={"tanker": 300})
    out = run(det, [*_fleets_script(), wm(75)])
    got = sorted(
        (a.subject, (a.first_ts_ms - T0) // 1000, a.evidence["max_silence_s"])
        for a in out
        if a.subject in ("ais-new", "tr-new", "ais-gone")
    )
    assert got == [("ais-gone", 62 * 60, 540.0), ("tr-new", 61 * 60, 300.0)]
    gone = next(a for a in out if a.subject == "ais-gone")
    assert gone.evidence["fleet_interval_s"] == 180.0
    assert gone.evidence["observed_interval_s"] is None


def test_a_version_3_snapshot_with_each_fleet_pickled_restores_the_same_state() -> None:
    # Version 3 kept the fleets as a dict of objects; version 4 writes them as columns.
    # Cut the fleets' script before the newcomers come, restore each way, go on.
    from citywatch.detectors.base import same_state
    from citywatch.detectors.columns import unpack
    from citywatch.detectors.state import Snapshot, decode, encode

    script = _fleets_script()
    cut = next(i for i, e in enumerate(script) if isinstance(e, GpsEvent) and e.entity == "ais-new")
    det = detector(max_silence_s={"tanker": 300})
    before = run(det, [*script[:cut], wm(60.5)])
    snap = decode(encode(det.state()))
    assert snap.version == 4 and set(snap.data["_fleet"]) == {"keys", "fleets"}
    packed = snap.data["_fleet"]
    fleets = dict(zip(packed["keys"], unpack(packed["fleets"]), strict=True))
    assert len(fleets) == 4 and all(f.settled for f in fleets.values())  # ais, trucks, x2
    v3 = decode(encode(Snapshot(snap.kind, 3, {**snap.data, "_fleet": fleets})))
    after = run(det, [*script[cut:], wm(75)])
    for old in (snap, v3):
        clone = detector(max_silence_s={"tanker": 300})
        clone.restore(old)
        assert clone._fleet == fleets
        assert run(clone, [*script[cut:], wm(75)]) == after
        assert same_state(clone.state(), det.state())
    assert before == [] and {"ais-gone", "tr-new"} <= {a.subject for a in after}


def _fleets_script() -> list[GpsEvent | int]:
    script: list[GpsEvent | int] = []
    for k in range(21):
        script += [_vessel(180 * k, f"ais-{v}", "ais", 1000 * v) for v in range(4)]
    for k in range(366):
        script += [_vessel(10 * k, f"tr-{v}", "trucks", 1000 * v + 80 * k) for v in range(4)]
    script.sort(key=lambda e: e.ts_ms if isinstance(e, GpsEvent) else e)
    for src, name in (("ais", "ais-new"), ("trucks", "tr-new")):
        script += [_vessel(61 * 60, name, src, 9000)]
    script += [_vessel(62 * 60, "ais-gone", "ais", 9000)]
    script += [
        _vessel(61 * 60 + 400, n, s, 9000) for s, n in (("ais", "ais-new"), ("trucks", "tr-new"))
    ]
    return script


def test_a_version_1_snapshot_restores_mid_silence() -> None:
    # State written before fleets existed: 9-field fixes, no "_fleet". The silence
    # open when it was written is still decided after the restore.
    from citywatch.detectors.base import keyed_v1
    from citywatch.detectors.state import Snapshot, decode, encode

    det = detector()
    run(det, [fix(0), fix(1), wm(1.5)])
    snap = decode(encode(det.state()))
    data = dict(snap.data)
    del data["_fleet"]
    data["_state"] = keyed_v1(data["_state"])  # the KeyedState layout of that time
    for _key, st in data["_state"].data["items"]:
        st.undecided = [f[:9] for f in st.undecided]
        st.last = st.last[:9]
    old = Snapshot(snap.kind, 1, data)
    clone = detector()
    clone.restore(old)
    out = run(clone, [wm(30)])
    assert [(a.first_ts_ms, a.evidence["fleet_interval_s"]) for a in out] == [(wm(1), None)]


def test_what_a_newcomer_is_allowed_does_not_depend_on_the_order_fixes_came_in() -> None:
    # The same fleet and newcomers as above, each fix moved up to 20 s out of order
    # (within the watermark's bound): the same alerts.
    # The fleet slows from a fix every 60 s to one every 180 s at 1 h, while newcomers
    # come every 100 s: what each is allowed changes as the fleet's pace does.
    script: list[GpsEvent] = []
    times = [60 * k for k in range(60)] + [3600 + 180 * k for k in range(40)]
    for t in times:
        script += [_vessel(t + 7 * v, f"ais-{v}", "ais", 1000 * v) for v in range(4)]
    script += [_vessel(3000 + 100 * k + 50, f"new-{k}", "ais", 9000) for k in range(40)]
    script.sort(key=lambda e: e.ts_ms)
    shuffled = sorted(script, key=lambda e: e.ts_ms + zlib.crc32(e.entity.encode()) % 20_000)

    def alerts(fixes: list[GpsEvent]) -> list[tuple[str, int, float]]:
        out = run(detector(max_silence_s={"tanker": 300}), [*fixes, wm(300)])
        return sorted((a.subject, a.first_ts_ms, a.evidence["max_silence_s"]) for a in out)

    assert alerts(script) == alerts(shuffled)
    assert {s for _e, _t, s in alerts(script) if _e.startswith("new-")} == {300.0, 540.0}


def vessel(sec: float, east_m: float, sog_kmh: float, entity: str = "tk-ais") -> GpsEvent:
    """An AIS position report: a tanker's fix with its speed over ground."""
    dlon, dlat = offset_deg(32.0, east_m, 0.0)
    return GpsEvent(
        T0 + int(sec * 1000),
        entity,
        121.0 + dlon,
        32.0 + dlat,
        "tanker",
        speed_kmh=sog_kmh,
        src="ais",
        id=f"{entity}@{sec:g}",
    )


def test_a_vessel_reporting_it_is_moored_may_report_every_three_minutes() -> None:
    # ITU-R M.1371: a ship at anchor or moored, not faster than 3 knots, reports every
    # 3 minutes; a receiver loses one report of two. Its speed over ground says it
    # lies still from its first fix on, and its fixes move a metre.
    #   t(s)        0     360   540   900   1080 ... 1800   (every gap 180-360 s)
    #   sog (km/h)  0     0.2   0.4   0     0    ...  0
    moored = [vessel(t, (k % 2) * 1.0, 0.2 * (k % 3)) for k, t in enumerate((0, 360, 540, 900))]
    moored += [vessel(900 + 180 * k, 1.0, 0.0) for k in range(1, 6)]
    assert run(GapDetector(GapParams()), [*moored, wm(1800 / 60 + 10)]) == []
    # A vessel arriving under way (14 km/h, every 70 s) whose last fix before 6 minutes
    # of silence says 0.4 km/h: it has moored, 120 m on from the fix before.
    arriving = [vessel(70 * k, 270 * k, 14.0, "tk-in") for k in range(8)]
    arriving.append(vessel(560, 270 * 7 + 120, 0.4, "tk-in"))
    arriving += [vessel(560 + 362 + 180 * k, 270 * 7 + 125, 0.0, "tk-in") for k in range(5)]
    assert run(GapDetector(GapParams()), [*arriving, wm(1800 / 60 + 10)]) == []
    # The same silence while the vessel reports 14 km/h (under way) is a gap.
    under_way = [vessel(70 * k, 270 * k, 14.0, "tk-go") for k in range(9)]
    under_way += [vessel(560 + 362 + 70 * k, 270 * (8 + 6 + k), 14.0, "tk-go") for k in range(5)]
    out = run(GapDetector(GapParams()), [*under_way, wm(25)])  # (its last fix: 1202 s)
    assert [(a.first_ts_ms, a.evidence["max_silence_s"]) for a in out] == [(T0 + 560_000, 300.0)]


def test_the_stationary_speed_and_silence_are_per_class() -> None:
    # 5.5 km/h is stationary where a class says 3 knots (5.6 km/h), and a class may
    # allow a stationary vehicle less than parked_silence_s: two lost reports at 3 min.
    # (The second fix is allowed 3 x its own interval, 600 s: no alert after it.)
    slow = [vessel(0, 0.0, 5.5), vessel(600, 30.0, 5.5)]
    end = wm(20)
    assert [a.first_ts_ms for a in run(GapDetector(GapParams()), [*slow, end])] == [T0]
    three_knots = GapParams(stationary_kmh={"tanker": 5.6})
    assert run(GapDetector(three_knots), [*slow, end]) == []
    shorter = GapParams(stationary_kmh={"tanker": 5.6}, stationary_silence_s={"tanker": 540})
    out = run(GapDetector(shorter), [*slow, end])
    assert [(a.first_ts_ms, a.evidence["max_silence_s"]) for a in out] == [(T0, 540.0)]
