"""Configuration: one TOML file, environment overrides, frozen validated settings.

With no file given, the bundled Nantong sample (``data/nantong/citywatch.toml``)
applies. Paths in the file are relative to the file. The whole file is checked
against one model first (``citywatch.flows.config_schema``: unknown tables and
keys, wrong types, with file and line). Environment variables override the
file: ``CITYWATCH_SECTION__KEY`` for any key, and the shorthands
``CITYWATCH_REDIS_URL``, ``CITYWATCH_REDIS_PREFIX``, ``CITYWATCH_REDIS_PASSWORD``,
``CITYWATCH_KAFKA_BOOTSTRAP``, ``CITYWATCH_ZONES``.
"""

from __future__ import annotations

import copy
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from citywatch.data import data_dir
from citywatch.detectors import params
from citywatch.detectors.anomaly.params import BaselineParams, PeerParams
from citywatch.detectors.fusion import FusionParams
from citywatch.detectors.geofence import RULE_KINDS, EnterRule, ZoneRule, build_rule
from citywatch.detectors.incidents import IncidentParams
from citywatch.detectors.sensor import ThresholdParams
from citywatch.detectors.sensor_health import OfflineParams, StuckParams
from citywatch.detectors.sensor_rate import RateParams
from citywatch.detectors.sensor_window import WindowParams
from citywatch.detectors.track import StopParams
from citywatch.detectors.tracks_gap import GapParams
from citywatch.detectors.tracks_jump import JumpParams
from citywatch.detectors.tracks_rendezvous import RendezvousParams
from citywatch.detectors.tracks_speeding import SpeedingParams
from citywatch.detectors.video import VideoRule
from citywatch.flows import config_schema as schema
from citywatch.flows.config_sections import (
    ConfigError,
    DataPaths,
    FlowSettings,
    KafkaSettings,
    LoggingSettings,
    RedisSettings,
    RoutingSettings,
    RunSettings,
)
from citywatch.sinks.integrations.settings import IntegrationSettings, integration_settings

DEFAULT_CONFIG = data_dir() / "nantong" / "citywatch.toml"


def _redis_raw(doc: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    raw = dict(_table(doc, "redis"))
    if env.get("CITYWATCH_REDIS_URL"):
        raw["url"] = env["CITYWATCH_REDIS_URL"]
    if env.get("CITYWATCH_REDIS_PREFIX"):
        raw["prefix"] = env["CITYWATCH_REDIS_PREFIX"]
    if "password" in raw:
        msg = (
            "[redis] password: keep the secret out of the file; use password_file = PATH "
            "or the CITYWATCH_REDIS_PASSWORD environment variable"
        )
        raise ConfigError(msg)
    if env.get("CITYWATCH_REDIS_PASSWORD"):
        raw["password"] = env["CITYWATCH_REDIS_PASSWORD"]
    elif raw.get("password_file"):
        path = Path(str(raw["password_file"]))
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            msg = f"[redis] password_file {path}: cannot read it ({exc.strerror})"
            raise ConfigError(msg) from None
        raw["password"] = lines[0] if lines else ""
    return raw


@dataclass(frozen=True, slots=True, kw_only=True)
class AnomalySettings:
    """``[anomaly.sensor.<kind>]`` per-sensor baselines and ``[anomaly.peer]`` peer groups
    (``sensor.anomaly``); a kind without a table is not modelled, and
    ``[anomaly.peer] enabled = false`` turns the peer stage off."""

    sensor: Mapping[str, BaselineParams] = field(default_factory=dict)
    peer: PeerParams | None = None


def _anomaly(doc: Mapping[str, Any]) -> AnomalySettings:
    sensor = {
        kind: _build(BaselineParams, f"[anomaly.sensor.{kind}]", raw)
        for kind, raw in _table(doc, "anomaly.sensor").items()
    }
    peer_raw = dict(_table(doc, "anomaly.peer"))
    enabled = peer_raw.pop("enabled", bool(peer_raw))
    if not isinstance(enabled, bool):
        msg = f"[anomaly.peer] enabled: must be true or false, got {enabled!r}"
        raise ConfigError(msg)
    peer = _build(PeerParams, "[anomaly.peer]", peer_raw) if enabled else None
    return AnomalySettings(sensor=sensor, peer=peer)


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    path: Path | None
    data: DataPaths
    flow: FlowSettings = field(default_factory=FlowSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    kafka_bootstrap: str | None = None
    zone_kinds: tuple[str, ...] = ()
    geofence_enter: Mapping[str, EnterRule] = field(default_factory=dict)
    # rule kind (enter, exit, inside, outside, dwell, cross) -> zone kind -> rule
    geofence_rules: Mapping[str, Mapping[str, ZoneRule]] = field(default_factory=dict)
    track_stop: StopParams = field(default_factory=StopParams)
    track_gap: GapParams = field(default_factory=GapParams)
    track_speeding: SpeedingParams = field(default_factory=SpeedingParams)
    track_rendezvous: RendezvousParams = field(default_factory=RendezvousParams)
    track_jump: JumpParams = field(default_factory=JumpParams)
    sensor_threshold: Mapping[str, ThresholdParams] = field(default_factory=dict)
    # sensor kind -> params; [sensor.window] holds a list of window rules per kind
    sensor_rate: Mapping[str, RateParams] = field(default_factory=dict)
    sensor_window: Mapping[str, tuple[WindowParams, ...]] = field(default_factory=dict)
    sensor_offline: Mapping[str, OfflineParams] = field(default_factory=dict)
    sensor_stuck: Mapping[str, StuckParams] = field(default_factory=dict)
    fusion: FusionParams = field(default_factory=FusionParams)
    video_rules: tuple[VideoRule, ...] = ()
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    incidents: IncidentParams = field(default_factory=IncidentParams)
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    run: RunSettings = field(default_factory=RunSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    anomaly: AnomalySettings = field(default_factory=AnomalySettings)
    # [[webhooks]], [outputs.webhooks], [outputs.kafka], [api] (sinks/integrations/settings.py)
    integrations: IntegrationSettings = field(default_factory=IntegrationSettings)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)


def _table(doc: Mapping[str, Any], dotted: str) -> dict[str, Any]:
    cur: Any = doc
    for part in dotted.split("."):
        cur = cur.get(part, {}) if isinstance(cur, Mapping) else {}
    if not isinstance(cur, dict):
        msg = f"[{dotted}] must be a table"
        raise ConfigError(msg)
    return cur


def _build(cls: type, owner: str, raw: Mapping[str, Any]) -> Any:
    try:
        return params.build(cls, owner, dict(raw))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{owner}: {exc}" if owner not in str(exc) else str(exc)) from None


def _kafka_raw(doc: Mapping[str, Any], env: Mapping[str, str], bootstrap: Any) -> dict[str, Any]:
    raw = dict(_table(doc, "kafka"))
    raw["bootstrap"] = bootstrap
    client = dict(_table(doc, "kafka.client"))
    if env.get("CITYWATCH_KAFKA_SASL_PASSWORD"):  # keep secrets out of the file
        client["sasl.password"] = env["CITYWATCH_KAFKA_SASL_PASSWORD"]
    raw["client"] = client
    return raw


def _geofence_rules(doc: Mapping[str, Any]) -> dict[str, dict[str, ZoneRule]]:
    """``[geofence.<rule>.<zone_kind>]`` tables, one rule kind per table family."""
    out: dict[str, dict[str, ZoneRule]] = {}
    for rule, kinds in _table(doc, "geofence").items():
        if rule not in RULE_KINDS:
            known = ", ".join(RULE_KINDS)
            msg = f"[geofence.{rule}]: unknown geofence rule; expected one of {known}"
            raise ConfigError(msg)
        if not isinstance(kinds, dict) or not all(isinstance(v, dict) for v in kinds.values()):
            msg = (
                f"[geofence.{rule}] must hold one table per zone kind, like [geofence.{rule}.levee]"
            )
            raise ConfigError(msg)
        out[rule] = {}
        for zkind, raw in kinds.items():
            owner = f"[geofence.{rule}.{zkind}]"
            try:
                out[rule][zkind] = build_rule(rule, owner, raw)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
    return out


def _sensor_families(doc: Mapping[str, Any]) -> dict[str, Any]:
    """``[sensor.rate.<kind>]``, ``[[sensor.window.<kind>]]``, ``[sensor.offline.<kind>]``,
    ``[sensor.stuck.<kind>]``: per sensor kind; a window kind may hold one table or several."""
    out: dict[str, Any] = {}
    for family, cls in (("rate", RateParams), ("offline", OfflineParams), ("stuck", StuckParams)):
        out[f"sensor_{family}"] = {
            kind: _build(cls, f"[sensor.{family}.{kind}]", raw)
            for kind, raw in _table(doc, f"sensor.{family}").items()
        }
    windows: dict[str, tuple[WindowParams, ...]] = {}
    for kind, raw in _table(doc, "sensor.window").items():
        rules = [raw] if isinstance(raw, dict) else raw
        if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
            msg = f"[[sensor.window.{kind}]] must be a table or an array of tables"
            raise ConfigError(msg)
        windows[kind] = tuple(
            _build(WindowParams, f"[[sensor.window.{kind}]] #{i + 1}", r)
            for i, r in enumerate(rules)
        )
    out["sensor_window"] = windows
    out["fusion"] = _build(FusionParams, "[fusion]", _table(doc, "fusion"))
    return out


_ROUTING_LEVEL_RULES = (
    "multi_department_level",
    "cross_town_level",
    "cross_county_level",
    "coordinating_department",
)


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Load a config file (default: the bundled sample) and apply environment overrides."""
    env = os.environ if env is None else env
    cfg_path = Path(path) if path is not None else DEFAULT_CONFIG
    try:
        text = cfg_path.read_text(encoding="utf-8")
        doc = tomllib.loads(text)
    except FileNotFoundError:
        msg = f"config file {cfg_path} not found; pass --config with an existing TOML file"
        raise ConfigError(msg) from None
    except tomllib.TOMLDecodeError as exc:
        msg = f"{cfg_path}: not valid TOML ({exc})"
        raise ConfigError(msg) from None
    return config_from_dict(doc, cfg_path, env, text=text)


def checked_document(
    doc: Mapping[str, Any], path: Path | None, env: Mapping[str, str], text: str = ""
) -> tuple[dict[str, Any], dict[tuple[str, str], str]]:
    """``doc`` with the ``CITYWATCH_SECTION__KEY`` overrides applied, checked against the
    model; returns it and the overrides' origins. Raises ConfigError listing every problem."""
    checked: dict[str, Any] = copy.deepcopy(dict(doc))
    origins = schema.apply_env(checked, env)
    lines = schema.key_lines(text)
    found = schema.check_document(checked, lines)
    if found:
        where = str(path) if path is not None else "config"
        texts = []
        for p in found:
            var = origins.get((p.section, p.key or ""))
            at = var if var else f"{where}:{p.line}" if p.line else where
            table = f"{p.label} " if p.label else ""
            texts.append(f"{at}: {table}{p.key}: {p.text}")
        raise ConfigError(texts[0], texts)
    return checked, origins


def config_from_dict(
    doc: Mapping[str, Any],
    path: Path | None,
    env: Mapping[str, str] | None = None,
    *,
    text: str = "",
) -> Config:
    env = {} if env is None else env
    doc, _origins = checked_document(doc, path, env, text)
    base = path.parent if path is not None else Path.cwd()

    def resolve(name: str, required: bool) -> Path | None:
        value = _table(doc, "data").get(name)
        if value is None:
            if required:
                msg = f"[data] {name}: missing; give the path of the {name} file"
                raise ConfigError(msg)
            return None
        return (base / str(value)).resolve()

    zones = env.get("CITYWATCH_ZONES")
    data = DataPaths(
        zones=Path(zones) if zones else resolve("zones", True),  # type: ignore[arg-type]
        jurisdictions=resolve("jurisdictions", True),  # type: ignore[arg-type]
        sensors=resolve("sensors", False),
        cameras=resolve("cameras", False),
    )
    redis_raw = _redis_raw(doc, env)
    kafka = env.get("CITYWATCH_KAFKA_BOOTSTRAP") or _table(doc, "kafka").get("bootstrap")

    enter = {
        kind: _build(EnterRule, f"[geofence.enter.{kind}]", raw)
        for kind, raw in _table(doc, "geofence.enter").items()
    }
    geofence_rules = _geofence_rules(doc)
    thresholds = {
        kind: _build(ThresholdParams, f"[sensor.threshold.{kind}]", raw)
        for kind, raw in _table(doc, "sensor.threshold").items()
    }
    video_raw = _table(doc, "video").get("rules", [])
    if not isinstance(video_raw, list):
        msg = "[[video.rules]] must be an array of tables"
        raise ConfigError(msg)
    video = tuple(
        _build(VideoRule, f"[[video.rules]] #{i + 1}", raw) for i, raw in enumerate(video_raw)
    )
    zone_kinds = _table(doc, "zones").get("kinds", [])
    routing_raw = _table(doc, "routing")
    routing_kw: dict[str, Any] = {
        k: dict(v)
        for k, v in routing_raw.items()
        if k in ("level_by_severity", "sign_sla_s", "resolve_sla_s")
    }
    routing_kw.update({k: str(v) for k, v in routing_raw.items() if k in _ROUTING_LEVEL_RULES})
    try:
        routing = RoutingSettings(
            departments=dict(routing_raw.get("departments", {})), **routing_kw
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    try:
        return Config(
            path=path,
            data=data,
            flow=_build(FlowSettings, "[flow]", _table(doc, "flow")),
            redis=_build(RedisSettings, "[redis]", redis_raw),
            kafka_bootstrap=kafka,
            zone_kinds=tuple(zone_kinds),
            geofence_enter=enter,
            geofence_rules=geofence_rules,
            track_stop=_build(StopParams, "[track.stop]", _table(doc, "track.stop")),
            track_gap=_build(GapParams, "[track.gap]", _table(doc, "track.gap")),
            track_speeding=_build(
                SpeedingParams, "[track.speeding]", _table(doc, "track.speeding")
            ),
            track_rendezvous=_build(
                RendezvousParams, "[track.rendezvous]", _table(doc, "track.rendezvous")
            ),
            track_jump=_build(JumpParams, "[track.jump]", _table(doc, "track.jump")),
            sensor_threshold=thresholds,
            **_sensor_families(doc),
            video_rules=video,
            routing=routing,
            incidents=_build(IncidentParams, "[incidents]", _table(doc, "incidents")),
            kafka=_build(KafkaSettings, "[kafka]", _kafka_raw(doc, env, kafka)),
            run=_build(RunSettings, "[run]", _table(doc, "run")),
            logging=_build(LoggingSettings, "[logging]", _table(doc, "logging")),
            anomaly=_anomaly(doc),
            integrations=integration_settings(doc, env),
            raw=doc,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
