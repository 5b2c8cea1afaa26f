"""Log lines: JSON for ops stacks (ts, level, logger, message and indexed fields),
text for people with control characters from input escaped; the format comes from
--log-format, CITYWATCH_LOG_FORMAT or [logging] format."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import orjson
import pytest
import redis

from citywatch.detectors.alerts import Alert
from citywatch.flows import cli
from citywatch.flows.config import DEFAULT_CONFIG, Config
from citywatch.flows.logs import ENV, resolve_format, setup_logging
from citywatch.sinks.dispatch import Dispatch, Keys, Route, WorkOrderWriter
from citywatch.sinks.lifecycle import WorkOrders

HOSTILE = "veh-9\x1b[31m\nFORGED"


@pytest.fixture()
def restore_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(ENV, raising=False)
    ours = logging.getLogger("citywatch")
    handlers, level = list(ours.handlers), ours.level
    yield
    ours.handlers[:] = handlers
    ours.setLevel(level)


def _dispatch_and_sign(redis_url: str, config: Config) -> str:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    keys = Keys(config.redis.prefix)
    alert = Alert.make(
        "video.intrusion", "yellow", HOSTILE, "video", "zone-1", 121.0, 32.0,
        ts_ms=1_781_528_400_000, first_ts_ms=1_781_528_400_000, evidence={},
    )  # fmt: skip
    route = Route("town:a", "transport", "town", "town:a")
    [written] = WorkOrderWriter(client, keys).write([Dispatch(alert, route, 60, 600)])
    WorkOrders(client, keys).sign(written.wo_id, "ann")
    return written.wo_id


@pytest.mark.redis
def test_json_lines_carry_the_indexed_fields(
    redis_url: str, config: Config, restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("json", logging.INFO)
    wo_id = _dispatch_and_sign(redis_url, config)
    lines = [orjson.loads(x) for x in capsys.readouterr().err.splitlines()]
    created = next(x for x in lines if x["message"].startswith("work order created"))
    assert {"ts", "level", "logger", "message"} <= created.keys()
    assert datetime.fromisoformat(created["ts"]).utcoffset() is not None  # RFC 3339, UTC
    assert created["level"] == "info" and created["logger"] == "citywatch.sinks.writer"
    assert created["wo_id"] == wo_id and created["entity"] == HOSTILE
    assert created["alert_id"] and created["queue"] == "town:a|transport"
    signed = next(x for x in lines if "sign by ann" in x["message"])
    assert signed["wo_id"] == wo_id and signed["logger"] == "citywatch.sinks.lifecycle"


@pytest.mark.redis
def test_text_lines_escape_control_characters(
    redis_url: str, config: Config, restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("text", logging.INFO)
    _dispatch_and_sign(redis_url, config)
    err = capsys.readouterr().err
    assert "\x1b" not in err
    assert "veh-9\\x1b[31m\\nFORGED" in err
    assert not any(line.startswith("FORGED") for line in err.splitlines())
    assert all(line[:4].isdigit() for line in err.splitlines())  # every line starts with ts


def test_format_precedence(restore_logging: None, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_format(None) == "json"  # stderr is not a terminal here
    assert resolve_format(None, "text") == "text"
    monkeypatch.setenv(ENV, "json")
    assert resolve_format(None, "text") == "json"
    assert resolve_format("text", "json") == "text"
    monkeypatch.setenv(ENV, "xml")
    with pytest.raises(ValueError, match="CITYWATCH_LOG_FORMAT"):
        resolve_format(None)
    monkeypatch.delenv(ENV)


@pytest.mark.redis
def test_the_config_and_the_flag_choose_the_format(
    restore_logging: None, tmp_path: Path, redis_url: str
) -> None:
    text = DEFAULT_CONFIG.read_text(encoding="utf-8")
    for name in ("zones.geojson", "jurisdictions.geojson", "sensors.csv", "cameras.csv"):
        text = text.replace(f'"{name}"', f'"{DEFAULT_CONFIG.parent / name}"')
    path = tmp_path / "citywatch.toml"
    path.write_text(text + '\n[logging]\nformat = "text"\n', encoding="utf-8")
    report = ["report", "--config", str(path), "--redis-url", redis_url]
    assert cli.main(report) == 0
    assert os.environ[ENV] == "text"  # [logging] format, handed on to worker processes
    assert cli.main(["--log-format", "json", *report]) == 0
    assert os.environ[ENV] == "json"
