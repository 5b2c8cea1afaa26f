"""One bad clock cannot break time: the poison test.

clean recording (30 min, every injector)      ──► alerts A
the same + 3 poison events in the middle:
  a fix dated +1 h, one in year 2099, one -1 day  ──► alerts B
B minus the source.clock_skew alert == A   (no alert lost, none added)
the +1 h and 2099 fixes are future-timestamp dead letters, the -1 day one is late,
and the bad gateway is reported once, to the operations department.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from citywatch.detectors.events import format_ts, parse_ts
from citywatch.flows.bench.measure import work_orders
from citywatch.flows.config import Config
from citywatch.flows.runner import run_recordings
from citywatch.geo.reference import Reference
from citywatch.replay.generator import GenParams, generate

pytestmark = [pytest.mark.redis]

HOUR_MS = 3_600_000


def _run(rec: Path, config: Config, redis_url: str, reference: Reference, out: Path) -> dict:
    alerts, dead, late = out / "alerts.jsonl", out / "dead.jsonl", out / "late.jsonl"
    run_recordings(
        [rec],
        config,
        redis_url,
        alerts_out=alerts,
        dead_out=dead,
        late_out=late,
        progress=False,
        reference=reference,
    )
    return {
        name: [orjson.loads(x) for x in path.read_bytes().splitlines() if x]
        for name, path in (("alerts", alerts), ("dead", dead), ("late", late))
    }


def _poisoned(clean: Path, out: Path) -> Path:
    lines = clean.read_bytes().splitlines()
    body = [i for i, x in enumerate(lines) if b'"type":"gps"' in x]
    # A fix of a real vehicle, resent by a gateway with a wrong clock three times.
    at = body[len(body) // 2]
    ev = orjson.loads(lines[at])
    t = parse_ts(ev["ts"])
    poison = [
        {**ev, "ts": format_ts(t + HOUR_MS), "src": "gw-bad"},
        {**ev, "ts": "2099-01-01T00:00:00Z", "src": "gw-bad"},
        {**ev, "ts": format_ts(t - 24 * HOUR_MS), "src": "gw-bad"},
    ]
    rec = out / "poisoned.jsonl"
    rec.write_bytes(
        b"\n".join(lines[: at + 1] + [orjson.dumps(p) for p in poison] + lines[at + 1 :])
    )
    return rec


def test_a_bad_gateway_clock_loses_no_alert_and_adds_none(
    tmp_path: Path, config: Config, redis_url: str, reference: Reference
) -> None:
    clean = tmp_path / "clean.jsonl"
    generate(reference, GenParams(minutes=30, seed=11), clean, None)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    base = _run(clean, config, redis_url, reference, tmp_path / "a")
    got = _run(_poisoned(clean, tmp_path), config, redis_url, reference, tmp_path / "b")

    field = sorted(a["id"] for a in got["alerts"] if a["kind"] != "source.clock_skew")
    assert len(base["alerts"]) >= 5, "the clean run must raise alerts to compare"
    assert field == sorted(a["id"] for a in base["alerts"])

    future = [d for d in got["dead"] if d["category"] == "future-timestamp"]
    assert len(future) == 2
    assert all("gw-bad" in d["raw"] for d in future)
    assert [x for x in got["late"] if x.get("src") == "gw-bad"] != []
    assert len(got["late"]) == len(base["late"]) + 1

    skew = [a for a in got["alerts"] if a["kind"] == "source.clock_skew"]
    assert [a["subject"] for a in skew] == ["gw-bad"]
    assert skew[0]["evidence"]["ahead_s"] >= 3600
    orders = work_orders(redis_url, config.redis.prefix, ["kind", "department"]).values()
    assert [o["department"] for o in orders if o["kind"] == "source.clock_skew"] == ["operations"]
