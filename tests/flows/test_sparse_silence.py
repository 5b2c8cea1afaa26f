"""A sparse stream that falls silent for longer than ``max_future_s`` loses nothing.

In a plain recording (no arrival times) the future-timestamp guard measures an
event against its source's recent event times, so the first events after a
long silence look "ahead". They are held until their source's next events say
whether time moved on (kept, in order) or one event was wrong (refused); an
event still held when the input ends is refused. The same files at every batch
size.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import orjson
import pytest

from citywatch.detectors.events import format_ts
from citywatch.flows.config import Config
from citywatch.flows.runner import run_recordings
from citywatch.geo.reference import Reference

pytestmark = [pytest.mark.redis]

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
MIN = 60_000


def _recording(path: Path) -> None:
    events = []
    for minute in [*range(0, 30), *range(75, 100)]:  # 45 minutes of silence between
        for k in range(3):
            events.append(
                {
                    "type": "gps",
                    "ts": format_ts(T0 + minute * MIN + k * 15_000),
                    "entity": f"tk-{k}",
                    "lon": 120.70 + 0.01 * k + 0.0005 * minute,
                    "lat": 32.10,
                    "speed": 40.0,
                    "class": "hazmat_truck",
                    "src": "gw-1",
                }
            )
    # The last line: one fix an hour ahead, with nothing after it to vouch for it.
    events.append({**events[-1], "ts": format_ts(T0 + 160 * MIN), "entity": "tk-0"})
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))


def test_nothing_is_lost_after_a_long_silence(
    tmp_path: Path, config: Config, redis_url: str, reference: Reference
) -> None:
    rec = tmp_path / "sparse.jsonl"
    _recording(rec)
    runs = {}
    for batch in (5000, 7, 1):
        cfg = dataclasses.replace(
            config,
            flow=dataclasses.replace(config.flow, batch_size=batch),
            redis=dataclasses.replace(config.redis, prefix=f"cw-sparse-{batch}"),
        )
        out = {n: tmp_path / f"{n}-{batch}.jsonl" for n in ("alerts", "dead", "late")}
        run_recordings(
            [rec],
            cfg,
            redis_url,
            alerts_out=out["alerts"],
            dead_out=out["dead"],
            late_out=out["late"],
            progress=False,
            reference=reference,
        )
        runs[batch] = {n: p.read_bytes() for n, p in out.items()}
    dead = [orjson.loads(x) for x in runs[5000]["dead"].splitlines()]
    assert [d["category"] for d in dead] == ["future-timestamp"]  # only the last line
    assert format_ts(T0 + 160 * MIN) in dead[0]["raw"]
    assert runs[5000]["late"] == b""
    gaps = [orjson.loads(x) for x in runs[5000]["alerts"].splitlines()]
    assert {a["subject"] for a in gaps if a["kind"] == "track.gap"} == {"tk-0", "tk-1", "tk-2"}
    assert runs[7] == runs[5000] == runs[1]
