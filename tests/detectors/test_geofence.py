"""geofence.enter: prohibited classes entering zones, with border-jitter debouncing."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest

from detectors.alerts import Alert
from detectors.base import ZoneMeta
from detectors.events import GpsEvent
from detectors.geofence import EnterDetector, EnterRule

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
