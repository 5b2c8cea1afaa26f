"""Alerts: deterministic ids, the contract fields of to_json, severity validation."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from citywatch.detectors.alerts import SEVERITIES, SEVERITY_RANK, Alert, alert_id, check_severity

TS = 1_767_225_600_000  # 2026-01-01T00:00:00Z

# The alert contract of DESIGN.md, in its order.
CONTRACT_FIELDS = [
    "id",
    "kind",
    "severity",
    "subject",
    "subject_type",
    "zone",
    "lon",
    "lat",
    "ts",
    "first_ts",
    "evidence",
    "incident",
    "jurisdiction",
]


def make_alert(**changes: Any) -> Alert:
    args: dict[str, Any] = {
        "kind": "track.stop",
        "severity": "orange",
        "subject": "hz-001",
        "subject_type": "gps",
        "zone": None,
        "lon": 121.0,
        "lat": 32.0,
        "ts_ms": TS,
        "first_ts_ms": TS - 900_000,
        "evidence": {"duration_s": 900},
    }
    args.update(changes)
    return Alert.make(
        args.pop("kind"),
        args.pop("severity"),
        args.pop("subject"),
        args.pop("subject_type"),
        args.pop("zone"),
        args.pop("lon"),
        args.pop("lat"),
        **args,
    )


def test_alert_id_is_stable_across_runs() -> None:
    # A fixed value: ids must not depend on the process (no hash() randomisation).
    assert alert_id("sensor.threshold", "wl-01", None, 0) == "al-e2598fcb5352fa3f8001"
    assert alert_id("track.stop", "hz-001", "z1", TS) == alert_id("track.stop", "hz-001", "z1", TS)


def test_same_input_gives_same_id() -> None:
    assert make_alert().id == make_alert().id


@pytest.mark.parametrize(
    "change",
    [
        {"kind": "track.gap"},
        {"subject": "hz-002"},
        {"zone": "airport-site"},
        {"first_ts_ms": TS - 1},
    ],
    ids=["kind", "subject", "zone", "first_ts"],
)
def test_id_changes_with_each_episode_component(change: dict[str, Any]) -> None:
    assert make_alert(**change).id != make_alert().id


@pytest.mark.parametrize(
    "change",
    [{"ts_ms": TS + 60_000}, {"severity": "red"}, {"lon": 120.0}, {"evidence": {"x": 1}}],
    ids=["ts", "severity", "position", "evidence"],
)
def test_id_is_per_episode_not_per_trigger(change: dict[str, Any]) -> None:
    # The same episode re-evaluated later (or escalated) keeps its id: sinks ignore repeats.
    assert make_alert(**change).id == make_alert().id


def test_id_format() -> None:
    aid = make_alert().id
    assert aid.startswith("al-")
    assert len(aid) == 3 + 20
    int(aid[3:], 16)


def test_to_json_has_exactly_the_contract_fields() -> None:
    doc = make_alert().to_json()
    assert list(doc) == CONTRACT_FIELDS


def test_to_json_values() -> None:
    alert = make_alert(zone="airport-site")
    alert.ingest_ns = 123  # internal, never in the contract
    doc = alert.to_json()
    assert doc == {
        "id": alert.id,
        "kind": "track.stop",
        "severity": "orange",
        "subject": "hz-001",
        "subject_type": "gps",
        "zone": "airport-site",
        "lon": 121.0,
        "lat": 32.0,
        "ts": "2026-01-01T00:00:00.000Z",
        "first_ts": "2025-12-31T23:45:00.000Z",
        "evidence": {"duration_s": 900},
        "incident": None,
        "jurisdiction": None,
    }
    assert orjson.loads(orjson.dumps(doc)) == doc


def test_incident_and_jurisdiction_appear_once_set() -> None:
    alert = make_alert()
    alert.incident, alert.jurisdiction = "in-1", "town:haimen-changle"
    doc = alert.to_json()
    assert (doc["incident"], doc["jurisdiction"]) == ("in-1", "town:haimen-changle")


def test_family() -> None:
    assert make_alert(kind="geofence.enter").family == "geofence"


def test_severities_lowest_first() -> None:
    assert SEVERITIES == ("blue", "yellow", "orange", "red")
    assert [SEVERITY_RANK[s] for s in SEVERITIES] == [0, 1, 2, 3]


@pytest.mark.parametrize("severity", SEVERITIES)
def test_check_severity_accepts_the_four_levels(severity: str) -> None:
    assert check_severity(severity, "x") == severity


@pytest.mark.parametrize("severity", ["purple", "Red", "", "critical"])
def test_check_severity_rejects_naming_where_and_the_choices(severity: str) -> None:
    with pytest.raises(ValueError, match=r"^track\.stop: severity must be one of blue, yellow"):
        check_severity(severity, "track.stop")
