"""The configuration file's one declarative model, and its one validator.

Every table of the TOML file maps to a frozen settings dataclass (``SECTIONS``):
its fields, with their type hints and defaults, *are* the keys the table
accepts. Adding a key is one line: a field on that dataclass (with its unit in
the name and a default). :func:`check_document` walks the whole file against
the model before anything is built and reports every problem at once, each
naming the file, line, table and key, the expected type and what came, and a
"did you mean" hint for unknown tables and keys. Environment variables
``CITYWATCH_SECTION__KEY`` (``__`` between levels, e.g.
``CITYWATCH_FLOW__SHARDS=4``, ``CITYWATCH_TRACK__STOP__MIN_STOP_S=600``)
override single keys (:func:`apply_env`), with TOML syntax for the value.

Strict dataclasses rather than pydantic or msgspec: the settings already are
frozen, self-validating dataclasses shared with the detectors (``detectors/``
must not depend on the config library), so one validator over their type hints
adds strictness without a second model or a dependency.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV_PREFIX = "CITYWATCH_"
# Shorthands kept from earlier releases: the value is taken as a plain string.
ENV_SHORTHANDS = {
    "CITYWATCH_REDIS_URL": ("redis", "url"),
    "CITYWATCH_REDIS_PREFIX": ("redis", "prefix"),
    "CITYWATCH_KAFKA_BOOTSTRAP": ("kafka", "bootstrap"),
}


@dataclass(frozen=True, slots=True)
class Section:
    """One table pattern (``*`` matches any one name, e.g. a sensor kind): ``model`` a
    dataclass whose fields are the keys, ``extra`` keys beyond those, ``free`` a table
    of any keys (passed on as is), ``array`` an array of tables."""

    path: str
    model: type | None = None
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    free: bool = False
    array: bool = False
    skip: tuple[str, ...] = ()  # model fields that are not keys of the file


def _sections() -> list[Section]:
    from citywatch.detectors.anomaly.params import BaselineParams, PeerParams
    from citywatch.detectors.fusion import FusionParams
    from citywatch.detectors.geofence_rules import RULE_TYPES
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
    from citywatch.flows import config_sections as c
    from citywatch.sinks.integrations.settings import (
        ApiSettings,
        DeliverySettings,
        KafkaOutputSettings,
        WebhookSpec,
    )

    out = [
        Section("data", c.DataPaths),
        Section("zones", extra={"kinds": list[str], "bounds": list[float]}),
        Section("flow", c.FlowSettings),
        Section("redis", c.RedisSettings),
        Section("kafka", c.KafkaSettings, skip=("client",)),
        Section("kafka.client", free=True),
        Section("run", c.RunSettings),
        Section("logging", c.LoggingSettings),
        Section("routing", c.RoutingSettings, skip=("departments",)),
        Section("routing.departments", free=True),
        Section("routing.level_by_severity", free=True),
        Section("routing.sign_sla_s", free=True),
        Section("routing.resolve_sla_s", free=True),
        Section("incidents", IncidentParams, skip=("groups",)),
        Section("incidents.groups", free=True),
        Section("track.stop", StopParams),
        Section(
            "track.gap",
            GapParams,
            skip=("max_silence_s", "stationary_kmh", "stationary_silence_s"),
        ),
        Section("track.gap.max_silence_s", free=True),
        Section("track.gap.stationary_kmh", free=True),
        Section("track.gap.stationary_silence_s", free=True),
        Section("track.speeding", SpeedingParams, skip=("limits_kmh", "zone_limits_kmh")),
        Section("track.speeding.limits_kmh", free=True),
        Section("track.speeding.zone_limits_kmh", free=True),
        Section("track.rendezvous", RendezvousParams),
        Section("track.jump", JumpParams),
        Section("sensor.threshold.*", ThresholdParams),
        Section("sensor.rate.*", RateParams),
        Section("sensor.window.*", WindowParams, array=True),
        Section("sensor.offline.*", OfflineParams),
        Section("sensor.stuck.*", StuckParams),
        Section("video.rules", VideoRule, array=True),
        Section("fusion", FusionParams),
        Section("anomaly.sensor.*", BaselineParams),
        Section("anomaly.peer", PeerParams, extra={"enabled": bool}),
        # The console validates its own table (console/settings.py).
        Section("console", free=True),
        # Integrations (citywatch.sinks.integrations.settings checks the values further).
        Section("webhooks", WebhookSpec, array=True, skip=("source",), extra={"secret_env": str}),
        Section("outputs.webhooks", DeliverySettings),
        Section("outputs.kafka", KafkaOutputSettings, skip=("client",)),
        Section("outputs.kafka.client", free=True),
        Section("api", ApiSettings),
    ]
    out += [Section(f"geofence.{rule}.*", cls) for rule, cls in RULE_TYPES.items()]
    return out


@dataclass(frozen=True, slots=True)
class Problem:
    section: str
    key: str | None
    text: str
    line: int | None = None
    label: str = ""  # how to show the table: "[flow]", "[[video.rules]] #2"


def _match(pattern: str, path: str) -> bool:
    a, b = pattern.split("."), path.split(".")
    return len(a) == len(b) and all(x in ("*", y) for x, y in zip(a, b, strict=True))


def find_section(path: str, sections: list[Section] | None = None) -> Section | None:
    for s in sections if sections is not None else SECTIONS():
        if _match(s.path, path):
            return s
    return None


def keys_of(s: Section) -> dict[str, Any]:
    """Key name -> expected type of a section."""
    out: dict[str, Any] = {}
    if s.model is not None:
        hints = typing.get_type_hints(s.model)
        out = {f.name: hints[f.name] for f in dataclasses.fields(s.model) if f.name not in s.skip}
    out.update(s.extra)
    return out


def type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "none"
    if origin in (tuple, list, frozenset, set):
        return "array"
    if origin is not None and isinstance(origin, type) and issubclass(origin, Mapping):
        return "table"
    if tp is Any:
        return "any value"
    if tp is Path:
        return "path (string)"
    return {int: "integer", float: "number", str: "string", bool: "boolean"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def conforms(value: Any, tp: Any) -> bool:
    """Whether a TOML value fits a field's type hint (containers checked item by item)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(conforms(value, a) for a in args)
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if tp in (str, Path):
        return isinstance(value, str)
    if origin in (tuple, list, frozenset, set):
        if not isinstance(value, list):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(
                conforms(v, a) for v, a in zip(value, args, strict=True)
            )
        return all(conforms(v, args[0]) for v in value) if args else True
    if origin is not None and isinstance(origin, type) and issubclass(origin, Mapping):
        return isinstance(value, dict) and all(conforms(v, args[1]) for v in value.values())
    if origin is typing.Literal:
        return value in args
    return True  # other types are checked by the dataclass itself


def _hint(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(sorted(options))}"


def check_document(doc: Mapping[str, Any], lines: Mapping[tuple[str, str], int]) -> list[Problem]:
    """Every unknown table or key and every value of the wrong type in ``doc``."""
    sections = SECTIONS()
    problems: list[Problem] = []

    def children(prefix: str) -> list[str]:
        n = len(prefix.split(".")) if prefix else 0
        return sorted({s.path.split(".")[n] for s in sections if _under(s.path, prefix)})

    def walk(table: Mapping[str, Any], prefix: str, label: str = "") -> None:
        label = label or (f"[{prefix}]" if prefix else "")

        def problem(name: str, text: str) -> None:
            problems.append(Problem(prefix, name, text, lines.get((prefix, name)), label))

        sec = find_section(prefix, sections) if prefix else None
        keys = keys_of(sec) if sec is not None else {}
        for name, value in table.items():
            path = f"{prefix}.{name}" if prefix else name
            if sec is not None and sec.free:
                continue
            if name in keys:
                if not conforms(value, keys[name]):
                    got = f"{_toml_type(value)} {value!r}"
                    problem(name, f"expected {type_name(keys[name])}, got {got}")
                continue
            subs = [c for c in children(prefix) if c != "*"]
            if isinstance(value, dict | list) and (name in subs or "*" in children(prefix)):
                target = find_section(path, sections)
                if isinstance(value, list):
                    if target is None or not target.array:
                        problem(name, "expected a table, got an array")
                        continue
                    for i, item in enumerate(value):
                        walk(item if isinstance(item, dict) else {}, path, f"[[{path}]] #{i + 1}")
                else:
                    walk(value, path)
                continue
            if name in subs or "*" in children(prefix):
                target = find_section(path, sections)
                arr = " or an array of tables" if target is not None and target.array else ""
                got = f"{_toml_type(value)} {value!r}"
                problem(name, f"expected a table{arr}, got {got}")
                continue
            options = list(keys) + subs
            what = "key" if sec is not None else "table"
            problem(name, f"unknown {what}{_hint(name, options)}")

    walk(doc, "")
    return problems


def _under(pattern: str, prefix: str) -> bool:
    if not prefix:
        return True
    a, b = pattern.split("."), prefix.split(".")
    return len(a) > len(b) and all(x in ("*", y) for x, y in zip(a, b, strict=False))


def _toml_type(value: Any) -> str:
    for tp, name in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string")):
        if isinstance(value, tp):
            return name
    return "array" if isinstance(value, list) else "table" if isinstance(value, dict) else "value"


_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?")
_KEY = re.compile(r'^\s*("?)([A-Za-z0-9_.\-]+)\1\s*=')


def key_lines(text: str) -> dict[tuple[str, str], int]:
    """(table, key) -> line number of its first definition in the file's text."""
    out: dict[tuple[str, str], int] = {}
    table = ""
    for n, line in enumerate(text.splitlines(), 1):
        head = _HEADER.match(line)
        if head:
            table = head.group(1).replace('"', "").replace(" ", "")
            parent, _, last = table.rpartition(".")
            out.setdefault((parent, last), n)
            continue
        key = _KEY.match(line)
        if key:
            out.setdefault((table, key.group(2)), n)
    return out


def apply_env(doc: dict[str, Any], env: Mapping[str, str]) -> dict[tuple[str, str], str]:
    """Put ``CITYWATCH_SECTION__KEY`` overrides into ``doc``; returns (table, key) -> the
    variable's name, for error messages and ``config show``."""
    origins: dict[tuple[str, str], str] = {}
    for var, (table_name, key) in ENV_SHORTHANDS.items():
        if env.get(var):
            section = doc.setdefault(table_name, {})
            if isinstance(section, dict):
                section[key] = env[var]
                origins[(table_name, key)] = var
    for var in sorted(env):
        if not var.startswith(ENV_PREFIX) or "__" not in var:
            continue
        parts = var[len(ENV_PREFIX) :].lower().split("__")
        if not all(parts):
            continue
        try:
            value = tomllib.loads(f"v = {env[var]}")["v"]
        except tomllib.TOMLDecodeError:
            value = env[var]  # a bare word: the string itself
        table = doc
        for part in parts[:-1]:
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                break
        else:
            table[parts[-1]] = value
            origins[(".".join(parts[:-1]), parts[-1])] = var
    return origins


_CACHE: list[Section] = []


def SECTIONS() -> list[Section]:  # noqa: N802 - a constant, built on first use
    if not _CACHE:
        _CACHE.extend(_sections())
    return _CACHE
