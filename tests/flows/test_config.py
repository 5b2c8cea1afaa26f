"""Configuration: the bundled TOML, environment overrides, errors naming the setting."""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from citywatch.flows.config import (
    DEFAULT_CONFIG,
    ConfigError,
    RoutingSettings,
    config_from_dict,
    load_config,
)

BUNDLED: dict[str, Any] = tomllib.loads(DEFAULT_CONFIG.read_text(encoding="utf-8"))


def test_bundled_config_loads() -> None:
    cfg = load_config(env={})
    assert cfg.path == DEFAULT_CONFIG
    data_dir = DEFAULT_CONFIG.parent.resolve()
    assert cfg.data.zones == data_dir / "zones.geojson"
    assert cfg.data.jurisdictions == data_dir / "jurisdictions.geojson"
    assert cfg.data.sensors == data_dir / "sensors.csv"
    assert cfg.data.cameras == data_dir / "cameras.csv"
    assert all(p is not None and p.is_file() for p in (cfg.data.sensors, cfg.data.cameras))
    assert "approved_stop" in cfg.zone_kinds
    assert cfg.redis.url is None and cfg.redis.prefix == "cw"
    assert cfg.kafka_bootstrap is None
    assert cfg.track_stop.radius_m == 60
    assert cfg.track_stop.classes == ("hazmat_truck", "tanker")
    assert cfg.track_stop.leave_fixes == 3
    assert cfg.geofence_enter["airport_site"].classes == ("muck_truck",)
    assert cfg.sensor_threshold["water_level"].clear_at == 4.3
    assert [r.hours for r in cfg.video_rules][:2] == [None, (20, 6)]
    assert cfg.flow.timezone == "Asia/Shanghai"
    assert cfg.routing.level_by_severity["red"] == "city"


def test_env_overrides_are_applied() -> None:
    env = {
        "CITYWATCH_REDIS_URL": "redis://10.0.0.5:6380/2",
        "CITYWATCH_REDIS_PREFIX": "nt",
        "CITYWATCH_KAFKA_BOOTSTRAP": "kafka-1:9092",
        "CITYWATCH_ZONES": "/srv/zones.geojson",
    }
    cfg = load_config(env=env)
    assert cfg.redis.url == "redis://10.0.0.5:6380/2"
    assert cfg.redis.prefix == "nt"
    assert cfg.kafka_bootstrap == "kafka-1:9092"
    assert cfg.data.zones == Path("/srv/zones.geojson")


def test_empty_env_values_do_not_override() -> None:
    cfg = load_config(env={"CITYWATCH_REDIS_URL": "", "CITYWATCH_REDIS_PREFIX": ""})
    assert cfg.redis.url is None and cfg.redis.prefix == "cw"


def test_env_prefix_is_validated() -> None:
    with pytest.raises(ConfigError, match="prefix"):
        load_config(env={"CITYWATCH_REDIS_PREFIX": "{cw}"})


def test_config_from_dict_without_env_ignores_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CITYWATCH_REDIS_URL", "redis://elsewhere")
    assert config_from_dict(BUNDLED, DEFAULT_CONFIG).redis.url is None
    assert load_config().redis.url == "redis://elsewhere"  # load_config reads os.environ


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "cw.toml"
    path.parent.mkdir()
    path.write_text('[data]\nzones = "z.geojson"\njurisdictions = "../j.geojson"\n')
    cfg = load_config(path, env={})
    assert cfg.data.zones == (tmp_path / "conf" / "z.geojson").resolve()
    assert cfg.data.jurisdictions == (tmp_path / "j.geojson").resolve()
    assert cfg.data.sensors is None and cfg.data.cameras is None
    assert cfg.video_rules == () and dict(cfg.geofence_enter) == {}


def test_missing_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found; pass --config"):
        load_config(tmp_path / "nope.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[data\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad, env={})


# -- broken configs ------------------------------------------------------------

Edit = Callable[[dict[str, Any]], None]


def _set(dotted: str, value: Any) -> Edit:
    def edit(doc: dict[str, Any]) -> None:
        *parents, last = dotted.split(".")
        cur = doc
        for part in parents:
            cur = cur.setdefault(part, {})
        cur[last] = value

    return edit


def _del(dotted: str) -> Edit:
    def edit(doc: dict[str, Any]) -> None:
        *parents, last = dotted.split(".")
        cur = doc
        for part in parents:
            cur = cur[part]
        del cur[last]

    return edit


def _video_rule(index: int, name: str, value: Any) -> Edit:
    def edit(doc: dict[str, Any]) -> None:
        doc["video"]["rules"][index][name] = value

    return edit


BROKEN: list[tuple[str, Edit, list[str]]] = [
    (
        "track.stop-unknown-setting",
        _set("track.stop.radius", 50),
        ["[track.stop] radius: unknown key; did you mean 'radius_m'?"],
    ),
    (
        "track.stop-negative-radius_m",
        _set("track.stop.radius_m", -5),
        ["[track.stop]", '"radius_m" must be > 0, got -5'],
    ),
    (
        "track.stop-bad-severity",
        _set("track.stop.severity", "purple"),
        ["[track.stop]", "severity must be one of", "'purple'"],
    ),
    (
        "geofence-bad-severity",
        _set("geofence.enter.levee.severity", "amber"),
        ["[geofence.enter.levee]", "severity must be one of", "'amber'"],
    ),
    (
        "geofence-empty-classes",
        _set("geofence.enter.levee.classes", []),
        ["[geofence.enter.levee]", '"classes"'],
    ),
    (
        "threshold-missing-limit",
        _del("sensor.threshold.pm10.limit"),
        ["[sensor.threshold.pm10]", "limit"],
    ),
    (
        "threshold-clear_at-beyond-limit",
        _set("sensor.threshold.water_level.clear_at", 5.0),
        ["[sensor.threshold.water_level]", '"clear_at" 5.0'],
    ),
    (
        "video-rule-unknown-kind",
        _video_rule(0, "kind", "video.ufo"),
        ["[[video.rules]] #1", '"kind" must be one of'],
    ),
    (
        "video-rule-bad-hours",
        _video_rule(1, "hours", [25, 6]),
        ["[[video.rules]] #2", '"hours" must be [start, end]', "25, 6"],
    ),
    (
        "video-rule-hours-word",
        _video_rule(1, "hours", "night"),
        ["[[video.rules]] #2 hours: expected array or none, got string 'night'"],
    ),  # noqa: E501
    (
        "video-rule-min_confidence",
        _video_rule(0, "min_confidence", 1.5),
        ["[[video.rules]] #1", '"min_confidence"'],
    ),
    (
        "video-rule-unknown-setting",
        _video_rule(0, "label", "person"),
        ["[[video.rules]] #1 label: unknown key; did you mean 'labels'?"],
    ),
    (
        "video-rules-not-an-array",
        _set("video.rules", {"kind": "video.intrusion"}),
        ["[[video.rules]] must be an array of tables"],
    ),
    ("data-zones-missing", _del("data.zones"), ["[data] zones: missing"]),
    ("data-jurisdictions-missing", _del("data.jurisdictions"), ["[data] jurisdictions: missing"]),
    (
        "track.stop-not-a-table",
        _set("track.stop", "fast"),
        ["[track] stop: expected a table, got string 'fast'"],
    ),  # noqa: E501
    ("flow-batch_size-zero", _set("flow.batch_size", 0), ["[flow]", '"batch_size" must be > 0']),
    ("flow-tick_ms-zero", _set("flow.tick_ms", 0), ["[flow]", '"tick_ms" must be > 0']),
    (
        "flow-source_slack_ms-negative",
        _set("flow.source_slack_ms", -1),
        ["[flow]", '"source_slack_ms" must be >= 0'],
    ),
    (
        "flow-unknown-setting",
        _set("flow.workers", 4),
        ["[flow] workers: unknown key; known: batch_size"],
    ),  # noqa: E501
    ("redis-prefix-braces", _set("redis.prefix", "{cw}"), ["[redis]", "prefix"]),
    (
        "routing-bad-level",
        _set("routing.level_by_severity.red", "province"),
        ["routing.level_by_severity.red", "'province'"],
    ),
    (
        "routing-unknown-severity",
        _set("routing.sign_sla_s.purple", 60),
        ["routing.sign_sla_s", "severity must be one of", "'purple'"],
    ),
    (
        "routing-negative-sla",
        _set("routing.resolve_sla_s.red", -1),
        ["routing.resolve_sla_s", '"red" must be > 0'],
    ),
]


@pytest.mark.parametrize(("edit", "names"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_broken_config_raises_config_error_naming_the_setting(edit: Edit, names: list[str]) -> None:
    doc = copy.deepcopy(BUNDLED)
    edit(doc)
    with pytest.raises(ConfigError) as info:
        config_from_dict(doc, DEFAULT_CONFIG, env={})
    for name in names:
        assert name in str(info.value), (name, str(info.value))


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


# -- routing -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "details", "department"),
    [
        ("geofence.enter", (None, "airport_site"), "airport_construction"),
        ("geofence.enter", (None, "levee"), "water_resources"),
        ("geofence.enter", (None, "residential"), "command_centre"),
        ("sensor.threshold", ("water_level", "levee"), "water_resources"),
        ("sensor.threshold", ("pm10", None), "ecology_environment"),
        ("sensor.threshold", ("noise", None), "command_centre"),
        ("track.stop", (None, None), "emergency_management"),
        ("track.gap", (), "transport"),
        ("video.intrusion", (None, "levee"), "water_resources"),
        ("video.intrusion", (None, "no_fishing"), "public_security"),
        ("fusion.corroborated", (), "command_centre"),
    ],
    ids=[
        "kind:zone-kind",
        "kind:other-zone-kind",
        "kind-without-match-to-default",
        "first-detail-wins",
        "kind:sensor-kind",
        "sensor-kind-to-default",
        "kind",
        "family",
        "kind:zone-kind-video",
        "video-family",
        "default",
    ],
)
def test_department_most_specific_first(
    kind: str, details: tuple[str | None, ...], department: str
) -> None:
    routing = load_config(env={}).routing
    assert routing.department(kind, details) == department


def test_department_order_kind_detail_then_kind_then_family_then_default() -> None:
    departments = {"a.b:x": "d1", "a.b:y": "d2", "a.b": "d3", "a": "d4", "default": "d5"}
    r = RoutingSettings(departments=departments)
    assert r.department("a.b", ("y", "x")) == "d2"  # the first detail with an entry wins
    assert r.department("a.b", ("z", "x")) == "d1"
    assert r.department("a.b", ("z",)) == "d3"
    assert r.department("a.c", ("x",)) == "d4"
    assert r.department("b.c") == "d5"


def test_department_without_any_table_is_the_command_centre() -> None:
    assert RoutingSettings().department("track.stop", ("tanker",)) == "command_centre"
