"""Control characters from input (ANSI escapes, newlines) never reach the terminal
raw: every command-line table shows them escaped."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout

import pytest
import redis

from citywatch.detectors.alerts import Alert
from citywatch.flows import cli
from citywatch.flows.config import Config
from citywatch.flows.printable import printable
from citywatch.sinks.dispatch import Dispatch, Keys, Route, WorkOrderWriter

HOSTILE = "veh\x1b[2J\x1b]0;pwned\x07\nFORGED\r\x9b31m"


def _run(argv: list[str]) -> str:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(argv)
    assert code == 0, err.getvalue()
    return out.getvalue()


def _assert_clean(out: str) -> None:
    assert not any(ord(c) < 0x20 and c != "\n" or 0x7F <= ord(c) < 0xA0 for c in out), repr(out)
    assert "FORGED" not in "".join(line[:6] for line in out.splitlines())  # no forged line
    assert "\\x1b[2J" in out and "\\nFORGED" in out


def test_printable_escapes_every_control_character() -> None:
    shown = printable(HOSTILE)
    assert shown == "veh\\x1b[2J\\x1b]0;pwned\\x07\\nFORGED\\r\\x9b31m"
    assert shown.isprintable()


@pytest.mark.redis
def test_officer_and_report_tables_escape_hostile_ids(redis_url: str, config: Config) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    alert = Alert.make(
        "video.intrusion", "yellow", HOSTILE, "video", "zone-1", 121.0, 32.0,
        ts_ms=1_781_528_400_000, first_ts_ms=1_781_528_400_000, evidence={},
    )  # fmt: skip
    route = Route("town:a", "dept" + HOSTILE, "town", "town:a")
    wo = WorkOrderWriter(client, Keys(config.redis.prefix)).write([Dispatch(alert, route, 60, 600)])
    base = ["--redis-url", redis_url]
    queue = ["officer", *base, "--centre", "town:a", "--dept", "dept" + HOSTILE]
    _assert_clean(_run(queue))
    _assert_clean(_run([*queue, "--show", wo[0].wo_id]))
    _assert_clean(_run(["report", *base]))


@pytest.mark.redis
def test_silence_and_users_lists_escape_hostile_text(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = ["--redis-url", redis_url]
    _run(["silence", "add", *base, "--zone", "z-1", "--for", "1h", "--reason", HOSTILE])
    _assert_clean(_run(["silence", "list", *base]))
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password 1\n"))
    _run(["console", *base, "users", "add", "ann", "--role", "leader", "--display", HOSTILE])
    _assert_clean(_run(["console", *base, "users", "list"]))
