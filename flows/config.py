"""Configuration: one TOML file, environment overrides, frozen validated settings.

With no file given, the bundled Nantong sample (``data/nantong/citywatch.toml``)
applies. Paths in the file are relative to the file. Environment variables
override the file: ``CITYWATCH_REDIS_URL``, ``CITYWATCH_REDIS_PREFIX``,
``CITYWATCH_KAFKA_BOOTSTRAP``, ``CITYWATCH_ZONES``.
"""

from __future__ import annotations

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
from citywatch.detectors.watermark import SOURCE_KINDS

DEFAULT_CONFIG = data_dir() / "nantong" / "citywatch.toml"


SYSTEM_FAMILY = "source"  # system alerts about the inputs (source.clock_skew)
SYSTEM_DEPARTMENT = "operations"


class ConfigError(ValueError):
    """The configuration file is missing or wrong; the message names the setting to fix."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowSettings:
    batch_size: int = 5000
    shards: int = 8
    max_out_of_order_s: int = 30
    timezone: str = "Asia/Shanghai"
    # What advances timeouts (track.gap): event time only (replay, reproducible), or
    # also the wall clock minus max_out_of_order_s (live runs, fires while input is quiet).
    timers: str = "event"
    # Watermarks are kept per source inside each input partition: "gateway" (the
    # event's src, else its type), "family" (the event type) or "partition".
    watermark_source: str = "gateway"
    # A source whose newest event is this far behind the others (or, live, that sent
    # nothing for this long) stops holding the watermark back.
    source_idle_s: int = 60
    # Events further ahead than this of the wall clock (live) or of their source's
    # recent median (replay) are dead-lettered as future-timestamp.
    max_future_s: int = 300

    def __post_init__(self) -> None:
        params.positive("flow", "batch_size", self.batch_size)
        params.positive("flow", "shards", self.shards)
        params.non_negative("flow", "max_out_of_order_s", self.max_out_of_order_s)
        params.positive("flow", "source_idle_s", self.source_idle_s)
        params.positive("flow", "max_future_s", self.max_future_s)
        if self.watermark_source not in SOURCE_KINDS:
            msg = (
                f'flow: "watermark_source" must be one of {", ".join(SOURCE_KINDS)}, '
                f"got {self.watermark_source!r}"
            )
            raise ConfigError(msg)
        if self.timers not in ("event", "wall"):
            msg = (
                f'flow: "timers" must be "event" (replay) or "wall" (live runs), '
                f"got {self.timers!r}"
            )
            raise ConfigError(msg)


@dataclass(frozen=True, slots=True, kw_only=True)
class RedisSettings:
    url: str | None = None
    prefix: str = "cw"
    feed_maxlen: int = 10_000
    dead_letter_maxlen: int = 100_000
    # Connection: timeouts, TLS CA for rediss:// URLs, retry with capped backoff while
    # Redis is unreachable (0 = retry for ever: the flow waits instead of dropping).
    socket_timeout_s: float = 10.0
    connect_timeout_s: float = 5.0
    tls_ca_file: str | None = None
    retry_backoff_max_s: float = 5.0
    retry_give_up_s: float = 0.0
    silence_cache_s: float = 5.0

    def __post_init__(self) -> None:
        for name in ("socket_timeout_s", "connect_timeout_s", "retry_backoff_max_s"):
            params.positive("[redis]", name, getattr(self, name))
        params.non_negative("[redis]", "retry_give_up_s", self.retry_give_up_s)
        params.non_negative("[redis]", "silence_cache_s", self.silence_cache_s)
        if not self.prefix or "{" in self.prefix or "}" in self.prefix:
            msg = f"redis: prefix must be non-empty and free of braces, got {self.prefix!r}"
            raise ConfigError(msg)


@dataclass(frozen=True, slots=True, kw_only=True)
class KafkaSettings:
    """``[kafka]``: topics, consumer group and client settings for ``citywatch run``.

    ``client`` is passed unchanged to confluent-kafka (librdkafka property names),
    which is where security goes: ``security.protocol``, ``sasl.mechanisms``,
    ``sasl.username``, ``sasl.password``, ``ssl.ca.location``, ...
    """

    bootstrap: str | None = None
    gps_topic: str = "citywatch.gps"
    sensor_topic: str = "citywatch.sensor"
    video_topic: str = "citywatch.video"
    dlq_topic: str = "citywatch.dlq"
    group_id: str = "citywatch"
    start: str = "earliest"
    idle_partition_s: float = 30.0
    client: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.start not in ("earliest", "latest"):
            msg = f"kafka: start must be 'earliest' or 'latest', got {self.start!r}"
            raise ConfigError(msg)
        params.positive("kafka", "idle_partition_s", self.idle_partition_s)
        for name in ("gps_topic", "sensor_topic", "video_topic", "dlq_topic", "group_id"):
            if not getattr(self, name):
                msg = f"kafka: {name} must be a non-empty string, got {getattr(self, name)!r}"
                raise ConfigError(msg)

    def topics(self) -> dict[str, str]:
        """Input topic name -> the event type it implies."""
        return {self.gps_topic: "gps", self.sensor_topic: "sensor", self.video_topic: "video"}


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSettings:
    """``[run]``: the long-running ``citywatch run``: recovery, snapshots, metrics."""

    recovery_dir: str = "citywatch-recovery"
    recovery_partitions: int = 1
    snapshot_interval_s: float = 10.0
    backup_interval_s: float = 0.0
    metrics_port: int = 9108

    def __post_init__(self) -> None:
        params.positive("run", "recovery_partitions", self.recovery_partitions)
        params.positive("run", "snapshot_interval_s", self.snapshot_interval_s)
        params.non_negative("run", "backup_interval_s", self.backup_interval_s)
        params.non_negative("run", "metrics_port", self.metrics_port)


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingSettings:
    """Where a work order goes: department by kind, level by severity, SLA by severity."""

    departments: Mapping[str, str] = field(default_factory=dict)
    level_by_severity: Mapping[str, str] = field(
        default_factory=lambda: {
            "blue": "town",
            "yellow": "town",
            "orange": "county",
            "red": "city",
        }
    )
    sign_sla_s: Mapping[str, int] = field(
        default_factory=lambda: {"blue": 3600, "yellow": 1800, "orange": 900, "red": 300}
    )
    resolve_sla_s: Mapping[str, int] = field(
        default_factory=lambda: {"blue": 604800, "yellow": 172800, "orange": 86400, "red": 14400}
    )
    # Level rules beyond severity (the highest level that applies wins); "" disables one.
    multi_department_level: str = "county"
    cross_town_level: str = "county"
    cross_county_level: str = "city"
    # The desk that coordinates an incident involving several departments.
    coordinating_department: str = "command_centre"

    def __post_init__(self) -> None:
        for sev, level in self.level_by_severity.items():
            params.severity("routing.level_by_severity", sev)
            if level not in ("town", "county", "city"):
                msg = (
                    f"routing.level_by_severity.{sev}: must be town, county or city, got {level!r}"
                )
                raise ConfigError(msg)
        for name in ("multi_department_level", "cross_town_level", "cross_county_level"):
            if getattr(self, name) not in ("", "town", "county", "city"):
                got = getattr(self, name)
                msg = f'routing.{name}: must be town, county, city or "", got {got!r}'
                raise ConfigError(msg)
        for table in ("sign_sla_s", "resolve_sla_s"):
            for sev, secs in getattr(self, table).items():
                params.severity(f"routing.{table}", sev)
                params.positive(f"routing.{table}", sev, secs)

    def department(self, kind: str, details: tuple[str | None, ...] = ()) -> str:
        """Most specific match first: ``kind:detail`` for each detail, ``kind``, family,
        ``default``; details are e.g. the sensor kind and the zone kind."""
        family = kind.partition(".")[0]
        keys = [f"{kind}:{d}" for d in details if d] + [kind, family]
        for key in keys:
            if key in self.departments:
                return self.departments[key]
        if family == SYSTEM_FAMILY:  # system alerts never fall to a field department
            return SYSTEM_DEPARTMENT
        return self.departments.get("default", "command_centre")


@dataclass(frozen=True, slots=True, kw_only=True)
class DataPaths:
    zones: Path
    jurisdictions: Path
    sensors: Path | None = None
    cameras: Path | None = None


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
    anomaly: AnomalySettings = field(default_factory=AnomalySettings)
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
        doc = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        msg = f"config file {cfg_path} not found; pass --config with an existing TOML file"
        raise ConfigError(msg) from None
    except tomllib.TOMLDecodeError as exc:
        msg = f"{cfg_path}: not valid TOML ({exc})"
        raise ConfigError(msg) from None
    return config_from_dict(doc, cfg_path, env)


def config_from_dict(
    doc: Mapping[str, Any], path: Path | None, env: Mapping[str, str] | None = None
) -> Config:
    env = {} if env is None else env
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
    redis_raw = dict(_table(doc, "redis"))
    if env.get("CITYWATCH_REDIS_URL"):
        redis_raw["url"] = env["CITYWATCH_REDIS_URL"]
    if env.get("CITYWATCH_REDIS_PREFIX"):
        redis_raw["prefix"] = env["CITYWATCH_REDIS_PREFIX"]
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
            anomaly=_anomaly(doc),
            raw=doc,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
