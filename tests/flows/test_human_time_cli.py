"""Times typed on the command line: relative forms in the configured time zone,
and a one-line error listing the accepted forms for anything else."""

from __future__ import annotations

import io
import time
from contextlib import redirect_stderr, redirect_stdout
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
import pytest
import redis

from citywatch.detectors.alerts import Alert
from citywatch.flows import cli
from citywatch.flows.config import Config
from citywatch.flows.human_time import HumanTimeError, parse_human_time
from citywatch.sinks.dispatch import Dispatch, Keys, Route, WorkOrderWriter
from citywatch.sinks.silences import SilenceStore


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    "text", ["next week", "2026-06-15T23:00:00", "tomorrow 25:00", "5 hours", ""]
)
def test_anything_else_is_rejected_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(HumanTimeError) as info:
        parse_human_time(text)
    assert "\n" not in str(info.value)


def test_today_follows_the_configured_time_zone() -> None:
    now = 1_781_550_000_000  # 2026-06-15T19:00:00Z: already the 16th in Shanghai
    shanghai = parse_human_time("today 08:00", now_ms=now)
    utc = parse_human_time("today 08:00", now_ms=now, tz="UTC")
    assert shanghai == 1_781_568_000_000  # 2026-06-16T00:00:00Z
    assert utc == 1_781_510_400_000  # 2026-06-15T08:00:00Z


@pytest.mark.redis
def test_silence_until_tomorrow_0800(redis_url: str, config: Config) -> None:
    code, _, err = _run(
        ["silence", "add", "--redis-url", redis_url, "--zone", "z-1", "--until", "tomorrow 08:00"]
    )
    assert code == 0, err
    zone = ZoneInfo(config.flow.timezone)
    day = datetime.now(zone).date() + timedelta(days=1)
    expected = datetime(day.year, day.month, day.day, 8, 0, tzinfo=zone)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    [s] = SilenceStore(client, Keys(config.redis.prefix)).all()
    assert s.end_ms == int(expected.timestamp() * 1000)


@pytest.mark.redis
@pytest.mark.parametrize(
    "argv",
    [
        ["silence", "add", "--zone", "z-1", "--until", "next friday"],
        ["silence", "add", "--zone", "z-1", "--from", "soon", "--for", "1h"],
        ["silence", "add", "--zone", "z-1", "--for", "a while"],
        ["report", "--since", "last week"],
    ],
)
def test_a_bad_time_is_one_line_never_a_traceback(redis_url: str, argv: list[str]) -> None:
    code, _, err = _run([*argv, "--redis-url", redis_url])
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert "Traceback" not in err
    assert "1d" in lines[0]


def _order(client: redis.Redis, prefix: str, n: int) -> str:
    alert = Alert.make(
        "video.intrusion", "yellow", f"cam-{n}", "video", f"zone-{n}", 121.0, 32.0,
        ts_ms=1_781_528_400_000 + n, first_ts_ms=1_781_528_400_000 + n, evidence={"n": n},
    )  # fmt: skip
    d = Dispatch(alert, Route("town:a", "transport", "town", "town:a"), 600, 3600)
    return WorkOrderWriter(client, Keys(prefix)).write([d])[0].wo_id


@pytest.mark.redis
def test_report_since_keeps_the_orders_created_in_range(redis_url: str, config: Config) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    keys = Keys(config.redis.prefix)
    old, new = _order(client, config.redis.prefix, 1), _order(client, config.redis.prefix, 2)
    three_days_ago = int(time.time() * 1000) - 3 * 86_400_000
    client.hset(keys.wo(old), "created_ms", three_days_ago)
    assert new != old
    code, out, err = _run(["report", "--redis-url", redis_url, "--json", "--since", "1d"])
    assert code == 0, err
    assert orjson.loads(out)["department"]["transport"]["orders"] == 1
    code, out, err = _run(["report", "--redis-url", redis_url, "--json", "--until", "2d"])
    assert code == 0, err
    assert orjson.loads(out)["department"]["transport"]["orders"] == 1
    code, out, _ = _run(["report", "--redis-url", redis_url, "--json"])
    assert orjson.loads(out)["department"]["transport"]["orders"] == 2
