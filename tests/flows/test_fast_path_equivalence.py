"""The replay's fast paths change nothing: alerts and dead letters byte-identical to
the row-wise reference (the parser's general builders and timestamp parse, one field
check at a time) on a generated recording with field noise and corrupt lines."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from citywatch.detectors import events
from citywatch.flows.config import Config
from citywatch.flows.runner import run_recordings
from citywatch.geo.reference import Reference
from citywatch.replay.generator import GenParams, generate


@pytest.fixture(scope="module")
def noisy_recording(tmp_path_factory: pytest.TempPathFactory, reference: Reference) -> Path:
    d = tmp_path_factory.mktemp("fastpath")
    rec = d / "rec.jsonl"
    generate(reference, GenParams(minutes=30, seed=23), rec, d / "truth.json")
    return rec


def _replay(rec: Path, config: Config, reference: Reference, url: str, out: Path) -> None:
    redis.Redis.from_url(url).flushdb()
    run_recordings(
        [rec],
        config,
        url,
        alerts_out=out / "alerts.jsonl",
        dead_out=out / "dead.jsonl",
        progress=False,
        reference=reference,
    )


@pytest.mark.redis
def test_fast_paths_give_the_row_wise_alerts_and_dead_letters(
    noisy_recording: Path,
    config: Config,
    reference: Reference,
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fast, rows = tmp_path / "fast", tmp_path / "rows"
    fast.mkdir()
    rows.mkdir()
    _replay(noisy_recording, config, reference, redis_url, fast)
    monkeypatch.setattr(events, "_FAST", {})
    monkeypatch.setattr(events, "_utc_millis", lambda _value: None)
    _replay(noisy_recording, config, reference, redis_url, rows)
    alerts = (fast / "alerts.jsonl").read_bytes()
    assert alerts.count(b"\n") >= 10  # every detector family fires in the recording
    assert alerts == (rows / "alerts.jsonl").read_bytes()
    dead = (fast / "dead.jsonl").read_bytes()
    assert dead.count(b"\n") >= 10  # corrupt lines, rejected the general way
    assert dead == (rows / "dead.jsonl").read_bytes()
