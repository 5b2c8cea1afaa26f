"""geofence.enter: prohibited classes entering zones, with border-jitter debouncing."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest

from citywatch.detectors.alerts import Alert
from citywatch.detectors.base import ZoneMeta
from citywatch.detectors.events import GpsEvent
from citywatch.detectors.geofence import EnterDetector, EnterRule

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
SEC = 1_000
CATALOG = {
    "ap": ZoneMeta("ap", "airport_site"),
    "lv": ZoneMeta("lv", "levee"),
    "res": ZoneMeta("res", "residential"),
}
RULES = {
    "airport_site": EnterRule(classes=("muck_truck",)),
    "levee": EnterRule(classes=("muck_truck", "tanker"), severity="yellow"),
}


def gps(
    i: int, zones: tuple[str, ...], cls: str | None = "muck_truck", entity: str = "t1"
) -> GpsEvent:
    """The i-th fix (10 s apart) of an entity, already annotated with its zones."""
    return GpsEvent(T0 + i * 10 * SEC, entity, 121.25, 31.95, cls, 12.0, zones=zones, id=f"f{i}")


def track(pattern: str, zone: str = "ap", **kw: Any) -> list[GpsEvent]:
    """Fixes from a pattern: ``I`` inside ``zone``, ``o`` outside (spaces ignored)."""
    marks = pattern.replace(" ", "")
    return [gps(i, (zone,) if m == "I" else (), **kw) for i, m in enumerate(marks)]


def run(det: EnterDetector, events: list[GpsEvent]) -> list[tuple[int, Alert]]:
    fired: list[tuple[int, Alert]] = []
    for i, ev in enumerate(events):
        out: list[Alert] = []
        det.on_event(ev, out)
        fired.extend((i, a) for a in out)
    return fired


def test_first_fix_inside_is_an_entry() -> None:
    det = EnterDetector(RULES, CATALOG)
    fired = run(det, track("I"))
    assert len(fired) == 1
    alert = fired[0][1]
    assert (alert.kind, alert.severity, alert.subject, alert.subject_type, alert.zone) == (
        "geofence.enter",
        "orange",
        "t1",
        "gps",
        "ap",
    )
    assert alert.ts_ms == alert.first_ts_ms == T0
    assert alert.evidence == {
        "class": "muck_truck",
        "zone_kind": "airport_site",
        "fixes_inside": 1,
        "speed_kmh": 12.0,
        "event_id": "f0",
    }


def test_staying_inside_alerts_once() -> None:
    assert len(run(EnterDetector(RULES, CATALOG), track("IIIIIIIIII"))) == 1


def test_jitter_on_the_border_gives_exactly_one_alert() -> None:
    # fix     0  1  2  3  4  5  6  7  8  9  10 11
    # where   I  o  I  I  o  I  o  I  I  o  I  I      min_inside 2, min_outside 2
    # inside  .  .  .  Y  Y  Y  Y  Y  Y  Y  Y  Y      never two outside in a row
    # alert            ^ first_ts = fix 2
    rules = {
        "airport_site": EnterRule(classes=("muck_truck",), min_inside_fixes=2, min_outside_fixes=2)
    }
    fired = run(EnterDetector(rules, CATALOG), track("IoIIoIoIIoII"))
    assert [i for i, _ in fired] == [3]
    assert fired[0][1].first_ts_ms == T0 + 2 * 10 * SEC
    assert fired[0][1].evidence["fixes_inside"] == 2


def test_leaving_for_min_outside_fixes_then_returning_is_a_new_entry() -> None:
    # fix     0  1  2  3  4  5  6
    # where   I  I  o  o  o  I  I      min_inside 2, min_outside 2
    # alert      ^1    (left at 3)  ^2 new episode, new id
    rules = {
        "airport_site": EnterRule(classes=("muck_truck",), min_inside_fixes=2, min_outside_fixes=2)
    }
    det = EnterDetector(rules, CATALOG)
    fired = run(det, track("IIoooII"))
    assert [i for i, _ in fired] == [1, 6]
    assert fired[0][1].id != fired[1][1].id
    assert det.live_keys() == 1


def test_entity_state_is_dropped_after_leaving() -> None:
    det = EnterDetector(RULES, CATALOG)
    run(det, track("Ioo"))
    assert det.live_keys() == 0


@pytest.mark.parametrize(
    ("cls", "zone"),
    [("tanker", "ap"), ("patrol", "lv"), (None, "ap"), ("muck_truck", "res")],
    ids=["tanker-on-airport-site", "patrol-on-levee", "no-class", "zone-kind-without-rule"],
)
def test_classes_not_prohibited_are_ignored(cls: str | None, zone: str) -> None:
    det = EnterDetector(RULES, CATALOG)
    assert run(det, track("III", zone=zone, cls=cls)) == []


def test_entering_two_prohibited_zones_gives_one_alert_each() -> None:
    det = EnterDetector(RULES, CATALOG)
    fired = run(det, [gps(0, ("ap", "lv"))])
    assert sorted((a.zone, a.severity) for _, a in fired) == [("ap", "orange"), ("lv", "yellow")]


def test_zone_override_replaces_the_kind_rule_for_that_zone() -> None:
    catalog = {
        **CATALOG,
        "ap-east": ZoneMeta(
            "ap-east", "airport_site", rules={"enter": {"classes": ["tanker"], "severity": "red"}}
        ),
    }
    det = EnterDetector(RULES, catalog)
    assert run(det, track("II", zone="ap-east", cls="muck_truck", entity="m")) == []
    fired = run(det, track("II", zone="ap-east", cls="tanker", entity="k"))
    assert [(a.zone, a.severity) for _, a in fired] == [("ap-east", "red")]
    # other zones of the kind keep the kind's rule
    assert len(run(det, track("I", zone="ap", entity="m2"))) == 1


def test_zone_override_keeps_unspecified_settings_of_the_kind_rule() -> None:
    rules = {"airport_site": EnterRule(classes=("muck_truck",), min_inside_fixes=3)}
    catalog = {"ap": ZoneMeta("ap", "airport_site", rules={"enter": {"severity": "red"}})}
    fired = run(EnterDetector(rules, catalog), track("IIII"))
    assert [(i, a.severity) for i, a in fired] == [(2, "red")]


def test_zone_override_for_a_kind_without_a_rule() -> None:
    catalog = {"res": ZoneMeta("res", "residential", rules={"enter": {"classes": ["muck_truck"]}})}
    assert len(run(EnterDetector(RULES, catalog), track("I", zone="res"))) == 1


def test_zone_override_with_an_unknown_setting_names_the_zone() -> None:
    catalog = {"ap": ZoneMeta("ap", "airport_site", rules={"enter": {"clases": ["tanker"]}})}
    with pytest.raises(ValueError, match=r"^zone 'ap' rules\.enter: unknown setting\(s\) clases"):
        EnterDetector(RULES, catalog)


def test_zone_override_with_a_bad_value_names_the_zone() -> None:
    catalog = {"ap": ZoneMeta("ap", "airport_site", rules={"enter": {"min_inside_fixes": 0}})}
    with pytest.raises(ValueError, match=r"zone 'ap'"):
        EnterDetector(RULES, catalog)


def test_a_zone_removed_on_reload_ends_its_presence() -> None:
    det = EnterDetector(RULES, CATALOG)
    run(det, track("I"))
    det.set_zones({k: v for k, v in CATALOG.items() if k != "ap"})
    assert run(det, [gps(1, ())]) == []
    assert det.live_keys() == 0


def test_idle_entities_are_evicted_and_the_detector_pickles() -> None:
    det = EnterDetector(RULES, CATALOG, idle_evict_s=60)
    run(det, track("II"))
    clone = pickle.loads(pickle.dumps(det))
    assert run(clone, [gps(2, ("ap",))]) == []  # still inside after restore: no new alert
    clone.on_watermark(T0 + 10 * 60 * SEC, [])
    assert clone.live_keys() == 0


def test_input_events_are_not_mutated() -> None:
    events = track("IoIIoo")
    before = copy.deepcopy(events)
    run(EnterDetector(RULES, CATALOG), events)
    assert events == before


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"classes": ()}, '"classes" must list at least one entity class'),
        ({"severity": "purple"}, "severity must be one of"),
        ({"min_inside_fixes": 0}, '"min_inside_fixes" must be > 0, got 0'),
        ({"min_outside_fixes": -1}, '"min_outside_fixes" must be > 0, got -1'),
    ],
    ids=["classes-empty", "severity", "min_inside_fixes-zero", "min_outside_fixes-negative"],
)
def test_enter_rule_rejects_bad_values_naming_the_setting(
    overrides: dict[str, Any], names: str
) -> None:
    settings: dict[str, Any] = {"classes": ("muck_truck",), **overrides}
    with pytest.raises(ValueError, match="^geofence.enter rule: ") as info:
        EnterRule(**settings)
    assert names in str(info.value)


# -- the other rules: exit, inside, outside, dwell, cross; filters; video ---------

import shapely  # noqa: E402

from citywatch.detectors.base import ContractCase  # noqa: E402
from citywatch.detectors.events import VideoEvent  # noqa: E402
from citywatch.detectors.geofence import (  # noqa: E402
    CrossRule,
    DwellRule,
    ExitRule,
    GeofenceDetector,
    InsideRule,
    OutsideRule,
    build_rule,
)
from citywatch.detectors.geofence_video import VideoGeofenceDetector  # noqa: E402

MUCK = ("muck_truck",)


def geo_run(det: GeofenceDetector | VideoGeofenceDetector, events: list) -> list[tuple[int, Alert]]:
    fired: list[tuple[int, Alert]] = []
    for i, ev in enumerate(events):
        out: list[Alert] = []
        det.on_event(ev, out)
        fired.extend((i, a) for a in out)
    return fired


def kinds_at(fired: list[tuple[int, Alert]]) -> list[tuple[int, str]]:
    return [(i, a.kind) for i, a in fired]


def test_jittering_truck_parked_on_a_border_gives_one_enter_and_no_storm() -> None:
    # A truck parked on the site's border for an hour; its fixes (every 10 s) land
    # inside or outside at random, never more than one outside in a row.
    #   fix    0 .. 359     I o I I o I o I I ...   min_inside 2, min_outside 3
    #   alert     ^ one enter; no exit, no second enter
    import random

    rng = random.Random(3)
    marks, prev = [], "I"
    for _ in range(360):
        prev = "I" if prev == "o" else rng.choice("IIo")
        marks.append(prev)
    hyst = {"classes": MUCK, "min_inside_fixes": 2, "min_outside_fixes": 3}
    rules = {
        "enter": {"airport_site": EnterRule(**hyst)},
        "exit": {"airport_site": ExitRule(**hyst)},
    }
    det = GeofenceDetector(rules, CATALOG)
    fired = geo_run(det, track("".join(marks)))
    assert [a.kind for _, a in fired] == ["geofence.enter"]
    assert marks.count("o") > 60  # the border really was jittery


def test_exit_after_min_outside_fixes_with_time_inside() -> None:
    # fix     0  1  2  3  4  5      10 s apart
    # where   I  I  I  o  o  o      min_outside 2
    # alert               ^ exit, first_ts = fix 3 (first fix outside), 30 s inside
    det = GeofenceDetector({"exit": {"airport_site": ExitRule(classes=MUCK)}}, CATALOG)
    fired = geo_run(det, track("IIIooo"))
    assert kinds_at(fired) == [(4, "geofence.exit")]
    alert = fired[0][1]
    assert alert.first_ts_ms == T0 + 30 * SEC
    assert alert.evidence["inside_s"] == 30 and alert.evidence["fixes_outside"] == 2


def test_exit_needs_a_confirmed_stay() -> None:
    rule = ExitRule(classes=MUCK, min_inside_fixes=3)
    det = GeofenceDetector({"exit": {"airport_site": rule}}, CATALOG)
    assert geo_run(det, track("IIoooIoo")) == []


def test_inside_alerts_on_first_fix_then_once_per_every_s() -> None:
    # fix     0 .. 12 inside, 10 s apart; every_s 60
    # alert   0 (first_ts = fix 0), 6, 12 (each its own episode id)
    det = GeofenceDetector(
        {"inside": {"airport_site": InsideRule(classes=MUCK, every_s=60)}}, CATALOG
    )
    fired = geo_run(det, track("I" * 13))
    assert kinds_at(fired) == [
        (0, "geofence.inside"),
        (6, "geofence.inside"),
        (12, "geofence.inside"),
    ]
    assert [a.evidence["inside_s"] for _, a in fired] == [0, 60, 120]
    assert len({a.id for _, a in fired}) == 3


def test_dwell_fires_once_per_stay_counted_from_the_first_fix_inside() -> None:
    # fix     0  1  2 .. 7  8  9  10 11 12 ..  (10 s apart)   dwell_s 60
    # where   o  I  I .. I  o  o  I  I  I ..
    # alert                ^7 dwell (60 s since fix 1)   ^ new stay from fix 10: dwell at 16
    det = GeofenceDetector(
        {"dwell": {"airport_site": DwellRule(classes=MUCK, dwell_s=60)}}, CATALOG
    )
    fired = geo_run(det, track("o" + "I" * 7 + "oo" + "I" * 8))
    assert kinds_at(fired) == [(7, "geofence.dwell"), (16, "geofence.dwell")]
    assert fired[0][1].first_ts_ms == T0 + 10 * SEC
    assert fired[0][1].evidence["dwell_s"] == 60


def test_dwell_survives_border_jitter() -> None:
    # one fix outside (min_outside 2) does not end the stay
    det = GeofenceDetector(
        {"dwell": {"airport_site": DwellRule(classes=MUCK, dwell_s=60)}}, CATALOG
    )
    fired = geo_run(det, track("IIIoIIIo"))
    assert kinds_at(fired) == [(6, "geofence.dwell")]


def test_outside_fires_when_leaving_all_allowed_zones_of_the_kind() -> None:
    # Corridors c1 and c2 (kind hazmat_corridor) touch: moving from one to the other
    # is fine; leaving both for 2 fixes is an alert naming the last corridor.
    # fix     0   1   2   3   4   5
    # where   c1  c1  c2  -   -   c2
    # alert                   ^ outside (zone c2, first_ts = fix 3)
    catalog = {z: ZoneMeta(z, "hazmat_corridor") for z in ("c1", "c2")}
    rule = OutsideRule(classes=("hazmat_truck",))
    det = GeofenceDetector({"outside": {"hazmat_corridor": rule}}, catalog)
    zones = [("c1",), ("c1",), ("c2",), (), (), ("c2",)]
    events = [gps(i, z, cls="hazmat_truck") for i, z in enumerate(zones)]
    fired = geo_run(det, events)
    assert kinds_at(fired) == [(4, "geofence.outside")]
    assert fired[0][1].zone == "c2" and fired[0][1].first_ts_ms == T0 + 30 * SEC


def test_outside_ignores_entities_never_inside_and_other_classes() -> None:
    catalog = {"c1": ZoneMeta("c1", "hazmat_corridor")}
    det = GeofenceDetector(
        {"outside": {"hazmat_corridor": OutsideRule(classes=("tanker",))}}, catalog
    )
    assert geo_run(det, [gps(i, (), cls="tanker") for i in range(5)]) == []
    assert geo_run(det, track("IIooo", zone="c1", cls="hazmat_truck")) == []
    assert det.live_keys() == 0


# A 100 m wide levee strip running north-south at lon 121.0 (121.0 .. 121.00106).
LEVEE = shapely.box(121.0, 31.9, 121.00106, 32.0)
CROSS_CATALOG = {"lv": ZoneMeta("lv", "levee", geometry=LEVEE)}


def fix(i: int, lon: float, zones: tuple[str, ...] = (), step_s: int = 15) -> GpsEvent:
    return GpsEvent(T0 + i * step_s * SEC, "t1", lon, 31.95, "muck_truck", 40.0, zones=zones)


def test_cross_between_two_fixes_with_none_inside() -> None:
    # fix 0 west of the strip, fix 1 east of it (250 m apart): the segment crosses it
    #   lon   120.998 | strip 121.0..121.00106 | 121.0025
    det = GeofenceDetector({"cross": {"levee": CrossRule(classes=MUCK)}}, CROSS_CATALOG)
    fired = geo_run(det, [fix(0, 120.998), fix(1, 121.0025), fix(2, 121.005)])
    assert kinds_at(fired) == [(1, "geofence.cross")]
    alert = fired[0][1]
    assert alert.zone == "lv" and alert.first_ts_ms == T0
    assert alert.evidence["from"] == [120.998, 31.95] and alert.evidence["to"] == [121.0025, 31.95]


def test_cross_through_with_a_fix_inside_and_not_when_turning_back_too_late() -> None:
    rule = CrossRule(classes=MUCK, max_pass_s=60)
    det = GeofenceDetector({"cross": {"levee": rule}}, CROSS_CATALOG)
    through = [fix(0, 120.999), fix(1, 121.0005, ("lv",)), fix(2, 121.002)]
    assert kinds_at(geo_run(det, through)) == [(2, "geofence.cross")]
    det2 = GeofenceDetector({"cross": {"levee": rule}}, CROSS_CATALOG)
    parked = (
        [fix(0, 120.999)] + [fix(i, 121.0005, ("lv",)) for i in range(1, 8)] + [fix(8, 121.002)]
    )
    assert geo_run(det2, parked) == []  # 2 minutes on the levee is not a crossing


def test_cross_needs_fixes_close_in_time_and_ignores_segments_that_miss() -> None:
    det = GeofenceDetector(
        {"cross": {"levee": CrossRule(classes=MUCK, max_gap_s=60)}}, CROSS_CATALOG
    )
    gap = [fix(0, 120.998), fix(10, 121.0025)]  # 150 s apart: no straight segment assumed
    assert geo_run(det, gap) == []
    miss = [
        GpsEvent(T0, "t2", 120.998, 31.85, "muck_truck"),
        GpsEvent(T0 + 15 * SEC, "t2", 121.0025, 31.85, "muck_truck"),
    ]  # south of the strip's end
    assert geo_run(det, miss) == []


def test_cross_pickles_with_its_geometry() -> None:
    det = GeofenceDetector({"cross": {"levee": CrossRule(classes=MUCK)}}, CROSS_CATALOG)
    geo_run(det, [fix(0, 120.998)])
    clone = pickle.loads(pickle.dumps(det))
    assert kinds_at(geo_run(clone, [fix(1, 121.0025)])) == [(0, "geofence.cross")]


def at_local(hour: int, day: int = 0) -> int:
    """Epoch ms of 2026-06-15 (a Monday) + ``day`` days at ``hour``:00 in Asia/Shanghai."""
    return 1_781_452_800_000 + day * 86_400_000 + hour * 3_600_000


@pytest.mark.parametrize(
    ("settings", "hour", "day", "fires"),
    [
        ({"hours": [20, 6]}, 23, 0, True),
        ({"hours": [20, 6]}, 3, 1, True),
        ({"hours": [20, 6]}, 12, 0, False),
        ({"days": ["sat", "sun"]}, 12, 5, True),
        ({"days": ["sat", "sun"]}, 12, 4, False),
        ({"days": [0], "hours": [8, 18]}, 9, 0, True),
        ({"days": [0], "hours": [8, 18]}, 9, 1, False),
    ],
    ids=["night-23h", "night-03h", "night-noon", "weekend-sat", "weekend-fri", "mon-9h", "tue-9h"],
)
def test_time_of_day_and_day_of_week_windows_in_local_time(
    settings: dict[str, Any], hour: int, day: int, fires: bool
) -> None:
    rule = EnterRule(classes=MUCK, **settings)
    det = GeofenceDetector({"enter": {"airport_site": rule}}, CATALOG)
    ev = GpsEvent(at_local(hour, day), "t1", 121.25, 31.95, "muck_truck", zones=("ap",))
    assert len(geo_run(det, [ev])) == int(fires)


def test_zone_override_false_switches_a_kind_rule_off_for_that_zone() -> None:
    catalog = {**CATALOG, "ap2": ZoneMeta("ap2", "airport_site", rules={"dwell": False})}
    rules = {"dwell": {"airport_site": DwellRule(classes=MUCK, dwell_s=20)}}
    det = GeofenceDetector(rules, catalog)
    assert geo_run(det, track("IIII", zone="ap2")) == []
    assert kinds_at(geo_run(det, track("IIII", zone="ap", entity="t2"))) == [(2, "geofence.dwell")]


def test_zone_override_adds_a_rule_the_kind_does_not_have() -> None:
    catalog = {
        "res": ZoneMeta(
            "res",
            "residential",
            rules={"dwell": {"classes": ["tanker"], "dwell_s": 10, "severity": "red"}},
        )
    }
    det = GeofenceDetector({}, catalog)
    fired = geo_run(det, track("II", zone="res", cls="tanker"))
    assert [(a.kind, a.severity) for _, a in fired] == [("geofence.dwell", "red")]


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        (
            {"dwel": {"dwell_s": 5}},
            "zone 'ap' rules: unknown geofence rule 'dwel'; expected one of enter, exit",
        ),
        ({"dwell": {"classes": ["x"]}}, "zone 'ap' rules.dwell: \"dwell_s\" must be > 0, got 0"),
        (
            {"inside": {"classes": ["x"], "every": 5}},
            "zone 'ap' rules.inside: unknown setting(s) every",
        ),
        ({"exit": "yes"}, "zone 'ap' rules.exit: expected a table of settings or false, got 'yes'"),
        (
            {"exit": {"classes": ["x"], "labels": ["person"]}},
            '"labels" only apply to inside and dwell',
        ),
    ],
    ids=[
        "unknown-rule",
        "dwell-without-dwell_s",
        "unknown-setting",
        "not-a-table",
        "labels-on-exit",
    ],
)
def test_bad_zone_overrides_name_the_zone_and_rule(rules: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as info:
        GeofenceDetector({}, {"ap": ZoneMeta("ap", "airport_site", rules=rules)})
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("rule", "raw", "message"),
    [
        (
            "dwell",
            {"classes": ["x"], "dwell_s": -5},
            '[geofence.dwell.levee]: "dwell_s" must be > 0, got -5',
        ),
        (
            "enter",
            {"classes": ["x"], "days": ["someday"]},
            '"days" must list weekdays like ["mon", "sat"]',
        ),
        ("enter", {"classes": ["x"], "hours": [25, 3]}, '"hours" must be [start, end] local hours'),
        (
            "inside",
            {"labels": ["person"], "min_confidence": 1.5},
            '"min_confidence" must be within [0, 1], got 1.5',
        ),
        ("cross", {"classes": ["x"], "max_pass_s": 0}, '"max_pass_s" must be > 0, got 0'),
        ("hover", {"classes": ["x"]}, "unknown geofence rule 'hover'"),
    ],
    ids=["dwell-negative", "bad-day", "bad-hours", "confidence", "cross-pass", "unknown-rule"],
)
def test_rule_settings_are_validated_with_the_table_named(
    rule: str, raw: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError) as info:
        build_rule(rule, f"[geofence.{rule}.levee]", raw)
    assert message in str(info.value)
    assert str(info.value).startswith(f"[geofence.{rule}.levee]: ")


def vid(i: int, label: str = "excavator", conf: float = 0.8, cam: str = "cam-1") -> VideoEvent:
    """The i-th detection, 60 s apart, of a camera watching the levee."""
    return VideoEvent(T0 + i * 60 * SEC, cam, label, conf, zones=("lv",), id=f"v{i}")


def test_video_dwell_with_label_and_confidence_filters_and_gaps() -> None:
    # minute   0  1  2  3  4  5  |gap 7 min|  13 14 15 16 17     dwell_s 180, max_gap_s 120
    # label    E  E  b  E  E  E               E  E  E  E         (b = bird, ignored)
    # alert             ^3 dwell (first_ts 0)              ^16 new stay from 13
    rule = DwellRule(labels=("excavator",), dwell_s=180, max_gap_s=120, min_confidence=0.6)
    det = VideoGeofenceDetector({"dwell": {"levee": rule}}, CATALOG)
    events = [
        vid(0),
        vid(1),
        vid(2, "bird"),
        vid(3),
        vid(4),
        vid(5),
        vid(13),
        vid(14),
        vid(15),
        vid(16),
    ]
    events.append(vid(17, conf=0.3))
    fired = geo_run(det, events)
    assert [(events[i].ts_ms - T0) // 60_000 for i, _ in fired] == [3, 16]
    assert {a.subject_type for _, a in fired} == {"video"}
    assert fired[0][1].first_ts_ms == T0 and fired[0][1].evidence["label"] == "excavator"


def test_video_inside_is_rate_limited_per_camera_and_zone() -> None:
    rule = InsideRule(labels=("person",), every_s=300, hours=[20, 6])
    det = VideoGeofenceDetector({"inside": {"levee": rule}}, CATALOG)
    night = at_local(22)
    events = [
        VideoEvent(night + k * 60 * SEC, cam, "person", 0.9, zones=("lv",))
        for k in range(11)
        for cam in ("cam-1", "cam-2")
    ]
    fired = geo_run(det, events)
    assert sorted((a.subject, (a.ts_ms - night) // 60_000) for _, a in fired) == [
        ("cam-1", 0),
        ("cam-1", 5),
        ("cam-1", 10),
        ("cam-2", 0),
        ("cam-2", 5),
        ("cam-2", 10),
    ]
    day = VideoEvent(at_local(12), "cam-3", "person", 0.9, zones=("lv",))
    assert geo_run(det, [day]) == []


def test_gps_rules_ignore_video_and_video_rules_ignore_gps() -> None:
    rules = {"dwell": {"levee": DwellRule(classes=MUCK, labels=("excavator",), dwell_s=60)}}
    gps_det = GeofenceDetector(rules, CATALOG)
    vid_det = VideoGeofenceDetector(rules, CATALOG)
    assert geo_run(gps_det, [vid(i) for i in range(5)]) == []
    assert geo_run(vid_det, track("IIIIIIIII", zone="lv")) == []


@pytest.mark.parametrize(
    "cls", [GeofenceDetector, VideoGeofenceDetector, EnterDetector], ids=lambda c: c.__name__
)
@pytest.mark.parametrize("seed", [1, 2])
def test_contract_case_raises_its_kinds_only_from_the_anomaly_on(cls: Any, seed: int) -> None:
    case: ContractCase = cls.contract_case(seed)
    fired: list[tuple[int, Alert]] = []
    for i, ev in enumerate(case.events):
        out: list[Alert] = []
        case.detector.on_event(ev, out)
        fired.extend((i, a) for a in out)
    assert fired, "the injected incident must raise an alert"
    assert all(i >= case.anomaly_from for i, _ in fired)
    assert {a.kind for _, a in fired} <= case.expect_kinds
    again = cls.contract_case(seed)
    assert [e.ts_ms for e in again.events] == [e.ts_ms for e in case.events]
