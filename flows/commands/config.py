"""``citywatch config check FILE`` and ``citywatch config show``: the configuration, checked."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any

from citywatch.flows import config_schema as schema
from citywatch.flows.commands.common import add_config
from citywatch.flows.config import DEFAULT_CONFIG, ConfigError, checked_document, load_config

SECRET = re.compile(r"password|secret|token|sasl\.|api_key", re.IGNORECASE)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cfg = sub.add_parser(
        "config",
        help="check a configuration file, or show the effective configuration",
        description=(
            "check FILE validates the whole file (unknown tables and keys, wrong types, "
            "each with file, line and a hint) and the environment overrides "
            "(CITYWATCH_SECTION__KEY) without starting anything; show prints the "
            "effective configuration with secrets masked and each value's origin "
            "(default, file or env)."
        ),
    )
    verbs = cfg.add_subparsers(dest="verb", required=True, metavar="VERB")
    check = verbs.add_parser("check", help="validate FILE without starting anything")
    check.add_argument("file", type=Path, help="the TOML configuration to check")
    check.set_defaults(func=main_check)
    show = verbs.add_parser("show", help="print the effective configuration and origins")
    add_config(show)
    show.set_defaults(func=main_show)


def main_check(args: argparse.Namespace) -> int:
    load_config(args.file)
    print(f"{args.file}: ok")
    return 0


def mask(key: str, value: Any) -> Any:
    """Secrets shown as ``***``; a URL keeps everything but its password."""
    if value is None:
        return value
    if SECRET.search(key):
        return "***"
    if isinstance(value, str) and "://" in value:
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", value)
    return value


def effective(path: Path | None, env: dict[str, str]) -> list[tuple[str, str, Any, str]]:
    """(table, key, value, origin) for every known key of the fixed tables and every key of
    the tables in the file."""
    cfg_path = path if path is not None else DEFAULT_CONFIG
    try:
        text = cfg_path.read_text(encoding="utf-8")
        file_doc = tomllib.loads(text)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        msg = f"{cfg_path}: {exc}"
        raise ConfigError(msg) from None
    doc, origins = checked_document(file_doc, cfg_path, env, text)
    rows: list[tuple[str, str, Any, str]] = []

    def table_at(d: dict[str, Any], dotted: str) -> Any:
        for part in dotted.split(".") if dotted else []:
            d = d.get(part, {}) if isinstance(d, dict) else {}
        return d

    def emit(dotted: str, table: dict[str, Any], sec: schema.Section | None) -> None:
        defaults: dict[str, Any] = {}
        if sec is not None and sec.model is not None and "*" not in sec.path:
            for f in dataclasses.fields(sec.model):
                if f.name in sec.skip:
                    continue
                if f.default is not dataclasses.MISSING:
                    defaults[f.name] = f.default
                elif f.default_factory is not dataclasses.MISSING:
                    defaults[f.name] = f.default_factory()
        file_table = table_at(file_doc, dotted)
        for key in sorted(set(defaults) | {k for k, v in table.items() if not isinstance(v, dict)}):
            if key in table and not isinstance(table[key], dict):
                origin = origins.get((dotted, key))
                src = f"env {origin}" if origin else "file" if key in file_table else "default"
                rows.append((dotted, key, mask(key, table[key]), src))
            elif key in defaults:
                rows.append((dotted, key, mask(key, defaults[key]), "default"))

    def walk(d: dict[str, Any], dotted: str) -> None:
        if dotted:
            emit(dotted, d, schema.find_section(dotted))
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, f"{dotted}.{k}" if dotted else k)

    for sec in schema.SECTIONS():  # fixed tables absent from the file: all defaults
        if "*" not in sec.path and sec.model is not None:
            doc_table = table_at(doc, sec.path)
            if not doc_table:
                emit(sec.path, {}, sec)
    walk(doc, "")
    return sorted(rows, key=lambda r: (r[0], r[1]))


def main_show(args: argparse.Namespace) -> int:
    current = ""
    for table, key, value, origin in effective(args.config, dict(os.environ)):
        if table != current:
            print(f"\n[{table}]")
            current = table
        print(f"{key} = {json.dumps(value, default=str, ensure_ascii=False)}  # {origin}")
    return 0
