"""track.speeding: over the class or zone limit for a sustained time, one alert per episode."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from citywatch.detectors.alerts import Alert
from citywatch.detectors.base import ZoneMeta
from citywatch.detectors.events import GpsEvent
from citywatch.detectors.tracks_speeding import SpeedingDetector, SpeedingParams

T0 = 1_767_225_600_000
S = 1000


def fix(
    sec: float,
    kmh: float | None,
    *,
    entity: str = "tk-1",
    cls: str = "tanker",
    zones: tuple[str, ...] = (),
    lon: float | None = None,
) -> GpsEvent:
    return GpsEvent(
        T0 + int(sec * S),
        entity,
        121.0 if lon is None else lon,
        32.0,
        cls,
        kmh,
        zones=zones,
        id=f"{entity}@{sec}",
    )


def detector(zones: dict[str, ZoneMeta] | None = None, **overrides: Any) -> SpeedingDetector:
    settings: dict[str, Any] = {
        "limits_kmh": {"tanker": 80, "muck_truck": 60},
        "zone_limits_kmh": {"residential": 30},
    }
    settings.update(overrides)
    return SpeedingDetector(SpeedingParams(**settings), zones or {})


def run(det: SpeedingDetector, fixes: list[GpsEvent]) -> list[Alert]:
    out: list[Alert] = []
    for ev in fixes:
        det.on_event(ev, out)
    return out


def series(speeds: list[float], **kw: Any) -> list[GpsEvent]:
    return [fix(i * 15, kmh, **kw) for i, kmh in enumerate(speeds)]


def test_sustained_speeding_alerts_once_per_episode_with_hysteresis() -> None:
    # t(s)   0   15  30  45  60  75  90  105 120 135 150 165 180 195
    # km/h   70  92  95  78  93  96  97  74  95  96  97  98  99  70
    # over       [episode 1 ............]    [episode 2 ...........]
    # alert                      ^75                     ^180 (60 s, >= 3 fixes over)
    # 78 is within 5 km/h of the limit: the episode goes on; 74 ends it.
    speeds = [70, 92, 95, 78, 93, 96, 97, 74, 95, 96, 97, 98, 99, 70]
    out = run(detector(), series(speeds))
    assert [((a.first_ts_ms - T0) // S, (a.ts_ms - T0) // S) for a in out] == [(15, 75), (120, 180)]
    first = out[0]
    assert first.kind == "track.speeding" and first.zone is None
    assert first.evidence["limit_kmh"] == 80
    assert first.evidence["max_speed_kmh"] == 96.0
    assert first.evidence["fixes"] == 4
    assert first.id != out[1].id


def test_short_burst_does_not_alert() -> None:
    # 45 s over the limit, 4 fixes: short of 60 s
    assert run(detector(), series([70, 95, 96, 97, 98, 60])) == []


def test_zone_limit_applies_and_names_the_zone() -> None:
    catalog = {"res-1": ZoneMeta("res-1", "residential")}
    fixes = series([45] * 6, zones=("res-1",))
    out = run(detector(catalog), fixes)
    assert [(a.zone, a.evidence["limit_kmh"]) for a in out] == [("res-1", 30.0)]
    # The same speeds outside the zone are legal.
    assert run(detector(catalog), series([45] * 6)) == []


def test_zone_rule_speed_limit_overrides_its_kind() -> None:
    catalog = {"res-1": ZoneMeta("res-1", "residential", rules={"speed_limit_kmh": 50})}
    assert run(detector(catalog), series([45] * 6, zones=("res-1",))) == []
    catalog = {"lv": ZoneMeta("lv", "levee", rules={"speed_limit_kmh": 20})}
    assert [a.zone for a in run(detector(catalog), series([25] * 6, zones=("lv",)))] == ["lv"]


def test_speed_is_derived_from_positions_when_not_reported() -> None:
    # 500 m every 15 s = 120 km/h
    fixes = [fix(i * 15, None, lon=121.0 + i * 0.0053) for i in range(8)]
    out = run(detector(), fixes)
    assert len(out) == 1 and out[0].evidence["max_speed_kmh"] > 110


def test_out_of_order_fixes_are_ignored_and_a_long_silence_ends_an_episode() -> None:
    # arrival: 0(95) 15(95) 10(20, older: ignored) 30(95) | 300(95) 315(95) 330(95)
    # the 270 s silence ends episode 1 before it reached 60 s; episode 2 is short too
    fixes = [
        fix(0, 95),
        fix(15, 95),
        fix(10, 20),
        fix(30, 95),
        fix(300, 95),
        fix(315, 95),
        fix(330, 95),
    ]
    assert run(detector(), fixes) == []


def test_unwatched_classes_are_ignored_and_state_is_evicted() -> None:
    det = detector(idle_evict_s=600)
    assert run(det, series([150] * 10, cls="vessel", entity="v-1")) == []
    run(det, series([50] * 3))
    assert det.live_keys() == 1
    det.on_watermark(T0 + 700 * S, [])
    assert det.live_keys() == 0


def test_pickles_mid_episode() -> None:
    det = detector()
    fixes = series([95] * 6)
    run(det, fixes[:3])
    clone = pickle.loads(pickle.dumps(det))
    assert len(run(clone, fixes[3:])) == 1


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"limits_kmh": {"tanker": 0}}, "limits_kmh.tanker"),
        ({"zone_limits_kmh": {"levee": -1}}, "zone_limits_kmh.levee"),
        ({"min_fixes": 0}, "min_fixes"),
        ({"clear_below_kmh": -2}, "clear_below_kmh"),
    ],
    ids=["class-limit-zero", "zone-limit-negative", "min-fixes-zero", "hysteresis-negative"],
)
def test_speeding_params_reject_bad_values(overrides: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValueError, match=rf"^track\.speeding: .*{needle}"):
        SpeedingParams(**overrides)


def test_the_limit_and_zone_that_decided_are_reported() -> None:
    # over the class limit (80) on the open road at 85 km/h, then into a residential
    # zone (30) at 45 km/h: the residential limit decided the alert
    catalog = {"res-1": ZoneMeta("res-1", "residential")}
    fixes = [fix(0, 85), fix(15, 85)] + [fix(s, 45, zones=("res-1",)) for s in (30, 45, 60)]
    out = run(detector(catalog), fixes)
    assert len(out) == 1
    alert = out[0]
    assert (alert.zone, alert.evidence["limit_kmh"], alert.evidence["limit_zone"]) == (
        "res-1",
        30,
        "res-1",
    )
    assert alert.first_ts_ms == T0 and alert.evidence["speed_from"] == "reported"


def test_derived_speed_is_robust_to_timing_jitter() -> None:
    # 99 km/h (275 m every 10 s) with no reported speed; one fix stamped 3 s late:
    # its two segments read 76 and 141 km/h, the track over 30 s reads 99
    step = 99 / 3.6 * 10 / 111_195 / 0.848  # degrees of longitude per 10 s at 32 N
    fixes = [fix(10 * k + (3 if k == 4 else 0), None, lon=121.0 + step * k) for k in range(12)]
    out = run(detector(), fixes)
    assert len(out) == 1
    ev = out[0].evidence
    assert ev["max_speed_kmh"] < 110 and ev["speed_kmh"] == pytest.approx(99, abs=3)
    assert ev["speed_from"] == "track over 30 s"


def wavering(mean_kmh: float, seconds: int) -> list[GpsEvent]:
    """One fix a second in a residential zone (30 km/h), the reported speed wavering
    1.2 km/h either side of ``mean_kmh`` (a bicycle computer's speed at a steady pace)."""
    swing = (-1.2, -0.4, 0.4, 1.2, 0.4, -0.4)
    return [
        fix(s, round(mean_kmh + swing[s % len(swing)], 1), zones=("res-1",)) for s in range(seconds)
    ]


def test_holding_the_limit_at_one_fix_a_second_is_not_speeding() -> None:
    # 29.6 km/h on average in a 30 km/h zone: one fix in six reads 30.8,
    # enough for "3 fixes over the limit, 60 s after the first" within a minute; the
    # episode's mean over every fix (29.6) is not over the limit
    catalog = {"res-1": ZoneMeta("res-1", "residential")}
    assert run(detector(catalog), wavering(29.6, 180)) == []
    # the same wavering 2 km/h higher is: one alert, its speed the mean of every fix
    out = run(detector(catalog), wavering(31.6, 180))
    assert len(out) == 1
    assert out[0].evidence["speed_kmh"] == pytest.approx(31.6, abs=0.3)


@pytest.mark.parametrize("per_key", [False, True], ids=["columns", "per-key-records"])
def test_an_episode_from_a_version_1_snapshot_goes_on(per_key: bool) -> None:
    # a version 1 state (no mean over every fix): the episode under way goes on from
    # its fixes over the limit and alerts as before, in either layout of the keys
    det = detector()
    fixes = series([95] * 6)
    run(det, fixes[:3])
    for ep in det._state._items.values():
        del ep.seen, ep.seen_kmh  # as unpickled from version 1: the slots are unset
    if per_key:
        # two snapshots (the second sees no key moved since the first, so encoding
        # ahead pays again), then every record encoded ahead: the next snapshot
        # encodes only changed keys (none), per key
        det._state.state()
        det._state.state()
        det._state.precode(len(det._state._items))
    snap = det.state()
    assert snap.data["_state"].version == (2 if per_key else 4)  # per key, or as columns
    old = type(snap)(snap.kind, 1, pickle.loads(pickle.dumps(snap.data)))
    clone = SpeedingDetector.from_state(detector().p, {}, state=old)
    assert len(run(clone, fixes[3:])) == 1


def test_an_hour_at_the_limit_does_not_delay_the_speeding_that_follows() -> None:
    # one fix over the limit, then an hour at the limit wavering just under it, then
    # a steady 40 km/h in the 30 zone: the hour at the limit ends its episode and
    # does not dilute the mean of the speeding, which alerts after min_over_s
    catalog = {"res-1": ZoneMeta("res-1", "residential")}
    hour = [fix(s, 31.0 if s == 0 else 28.0 + (s % 3), zones=("res-1",)) for s in range(3600)]
    fast = [fix(3600 + s, 40.0, zones=("res-1",)) for s in range(300)]
    out = run(detector(catalog), hour + fast)
    assert [(a.first_ts_ms - T0, a.ts_ms - T0) for a in out] == [(3600 * S, 3660 * S)]
    assert out[0].evidence["speed_kmh"] == 40.0
