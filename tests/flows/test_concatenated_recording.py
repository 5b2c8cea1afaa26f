"""A recording header met in the middle of a file (recordings joined with ``cat``)
becomes a dead letter that says so; it is neither dropped nor replayed as an event."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from citywatch.flows.config import Config
from citywatch.flows.runner import run_recordings
from citywatch.geo.reference import Reference
from citywatch.replay.recording import RecordingWriter, iter_lines

GPS = b'{"type":"gps","ts":"2026-03-01T08:00:00Z","entity":"veh-1","lon":120.86,"lat":32.01}'


def _concatenated(tmp_path: Path) -> Path:
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    for p in (one, two):
        with RecordingWriter(p, header={"seed": 1}) as w:
            w.write_line(GPS)
    joined = tmp_path / "joined.jsonl"
    joined.write_bytes(one.read_bytes() + two.read_bytes())
    return joined


def test_reader_keeps_a_header_found_after_the_first_line(tmp_path: Path) -> None:
    lines = list(iter_lines(_concatenated(tmp_path)))
    assert len(lines) == 3
    assert lines[1].startswith(b'{"citywatch_recording"')


@pytest.mark.redis
def test_mid_file_header_goes_to_the_dead_letters_with_a_reason(
    config: Config, reference: Reference, redis_url: str, tmp_path: Path
) -> None:
    dead_out = tmp_path / "dead.jsonl"
    result = run_recordings(
        [_concatenated(tmp_path)],
        config,
        redis_url,
        dead_out=dead_out,
        progress=False,
        reference=reference,
    )
    dead = [orjson.loads(line) for line in dead_out.read_bytes().splitlines() if line]
    assert len(dead) == 1
    assert dead[0]["category"] == "recording"
    assert "header in the middle of the file" in dead[0]["reason"]
    assert "split them or pass each file separately" in dead[0]["reason"]
    assert dead[0]["raw"].startswith('{"citywatch_recording"')
    assert result.stats.events_in == 3
