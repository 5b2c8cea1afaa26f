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

from detectors import params
from detectors.geofence import EnterRule
from detectors.sensor import ThresholdParams
from detectors.track import StopParams
from detectors.video import VideoRule

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO_ROOT / "data" / "nantong" / "citywatch.toml"


class ConfigError(ValueError):
    """The configuration file is missing or wrong; the message names the setting to fix."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowSettings:
    batch_size: int = 1000
    shards: int = 8
    max_out_of_order_s: int = 30
    timezone: str = "Asia/Shanghai"

    def __post_init__(self) -> None:
        params.positive("flow", "batch_size", self.batch_size)
        params.positive("flow", "shards", self.shards)
        params.non_negative("flow", "max_out_of_order_s", self.max_out_of_order_s)


@dataclass(frozen=True, slots=True, kw_only=True)
class RedisSettings:
    url: str | None = None
    prefix: str = "cw"
    feed_maxlen: int = 10_000
    dead_letter_maxlen: int = 100_000

    def __post_init__(self) -> None:
        if not self.prefix or "{" in self.prefix or "}" in self.prefix:
            msg = f"redis: prefix must be non-empty and free of braces, got {self.prefix!r}"
            raise ConfigError(msg)


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

    def __post_init__(self) -> None:
        for sev, level in self.level_by_severity.items():
            params.severity("routing.level_by_severity", sev)
            if level not in ("town", "county", "city"):
                msg = (
                    f"routing.level_by_severity.{sev}: must be town, county or city, got {level!r}"
                )
                raise ConfigError(msg)
        for table in ("sign_sla_s", "resolve_sla_s"):
            for sev, secs in getattr(self, table).items():
                params.severity(f"routing.{table}", sev)
                params.positive(f"routing.{table}", sev, secs)

    def department(self, kind: str, details: tuple[str | None, ...] = ()) -> str:
        """Most specific match first: ``kind:detail`` for each detail, ``kind``, family,
        ``default``; details are e.g. the sensor kind and the zone kind."""
        family = kind.partition(".")[0]
        keys = [f"{kind}:{d}" for d in details if d] + [kind, family, "default"]
        for key in keys:
            if key in self.departments:
                return self.departments[key]
        return "command_centre"


@dataclass(frozen=True, slots=True, kw_only=True)
class DataPaths:
    zones: Path
    jurisdictions: Path
    sensors: Path | None = None
    cameras: Path | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    path: Path | None
    data: DataPaths
    flow: FlowSettings = field(default_factory=FlowSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    kafka_bootstrap: str | None = None
    zone_kinds: tuple[str, ...] = ()
    geofence_enter: Mapping[str, EnterRule] = field(default_factory=dict)
    track_stop: StopParams = field(default_factory=StopParams)
    sensor_threshold: Mapping[str, ThresholdParams] = field(default_factory=dict)
    video_rules: tuple[VideoRule, ...] = ()
    routing: RoutingSettings = field(default_factory=RoutingSettings)
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
    try:
        routing = RoutingSettings(
            departments=dict(routing_raw.get("departments", {})),
            **{
                k: dict(v)
                for k, v in routing_raw.items()
                if k in ("level_by_severity", "sign_sla_s", "resolve_sla_s")
            },
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
            track_stop=_build(StopParams, "[track.stop]", _table(doc, "track.stop")),
            sensor_threshold=thresholds,
            video_rules=video,
            routing=routing,
            raw=doc,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
