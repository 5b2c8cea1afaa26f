"""Bytewax input from recordings: batches of raw lines, at full speed or paced.

One partition reads all the given files. With several files, lines are merged
in order of their envelope arrival time, else their event time, so that a set
of per-topic recordings replays as the one stream it was. The partition's
snapshot is the number of lines already emitted, so a resumed run starts
where the last snapshot left it.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from detectors.events import parse_ts
from flows.model import RawBatch
from replay.recording import iter_lines, unwrap

_Line = tuple[bytes, str | None]


def _event_ms(raw: bytes) -> int | None:
    try:
        obj = orjson.loads(raw)
        return parse_ts(obj["ts"]) if isinstance(obj, dict) and "ts" in obj else None
    except Exception:  # noqa: BLE001 - any bad line has no known time; the parser reports it
        return None


def _arrival_ms(raw: bytes, env: dict[str, object] | None) -> int:
    arrival = env.get("arrival_ms") if env is not None else None
    if isinstance(arrival, int):
        return arrival
    ts = _event_ms(raw)
    return ts if ts is not None else 0


def _file_lines(path: Path) -> Iterator[_Line]:
    for line in iter_lines(path):
        raw, implied, _ = unwrap(line)
        yield raw, implied


def _keyed(path: Path, order: int) -> Iterator[tuple[int, int, int, _Line]]:
    for seq, line in enumerate(iter_lines(path)):
        raw, implied, env = unwrap(line)
        yield _arrival_ms(raw, env), order, seq, (raw, implied)


def merged_lines(paths: Sequence[Path]) -> Iterator[_Line]:
    """All lines of the recordings, merged by arrival time when there are several."""
    if len(paths) == 1:
        yield from _file_lines(paths[0])
        return
    streams = [_keyed(p, i) for i, p in enumerate(paths)]
    for _, _, _, line in heapq.merge(*streams):
        yield line


class _RecordingPartition(StatefulSourcePartition[RawBatch, int]):
    def __init__(
        self, paths: Sequence[Path], batch_size: int, speed: float | None, skip: int
    ) -> None:
        self._lines = merged_lines(paths)
        self._batch_size = batch_size
        self._speed = speed
        self._emitted = 0
        for _ in range(skip):
            if next(self._lines, None) is None:
                break
            self._emitted += 1
        self._pending: _Line | None = None
        self._pending_due: float = 0.0
        self._t0_event: int | None = None
        self._t0_wall: float = 0.0
        self._done = False

    def _due(self, raw: bytes) -> float:
        """Wall-clock time (monotonic seconds) a line is due in paced mode."""
        ts = _event_ms(raw)
        if ts is None:
            return time.monotonic()
        if self._t0_event is None:
            self._t0_event, self._t0_wall = ts, time.monotonic()
        assert self._speed is not None
        return self._t0_wall + (ts - self._t0_event) / 1000.0 / self._speed

    def next_batch(self) -> list[RawBatch]:
        if self._done:
            raise StopIteration
        lines: list[bytes] = []
        types: list[str | None] = []
        any_type = False
        now = time.monotonic()
        while len(lines) < self._batch_size:
            if self._pending is not None:
                line = self._pending
            else:
                nxt = next(self._lines, None)
                if nxt is None:
                    self._done = True
                    break
                line = nxt
                if self._speed is not None:
                    self._pending_due = self._due(line[0])
            if self._speed is not None and self._pending_due > now:
                self._pending = line
                break
            self._pending = None
            lines.append(line[0])
            types.append(line[1])
            any_type = any_type or line[1] is not None
        self._emitted += len(lines)
        if not lines:
            if self._done:
                raise StopIteration
            return []
        return [RawBatch("recording", lines, time.time_ns(), types if any_type else None)]

    def next_awake(self) -> datetime | None:
        if self._speed is None or self._pending is None:
            return None
        delay = max(0.0, self._pending_due - time.monotonic())
        return datetime.now(UTC) + timedelta(seconds=delay)

    def snapshot(self) -> int:
        # Lines held back for pacing were counted as emitted only once sent.
        return self._emitted


class RecordingSource(FixedPartitionedSource[RawBatch, int]):
    """Replays recordings as batches of raw lines; ``speed=None`` means as fast as possible."""

    def __init__(
        self, paths: Sequence[str | Path], *, batch_size: int = 1000, speed: float | None = None
    ) -> None:
        if not paths:
            msg = "RecordingSource needs at least one recording"
            raise ValueError(msg)
        if speed is not None and speed <= 0:
            msg = f"speed must be > 0 (or None for max), got {speed}"
            raise ValueError(msg)
        self.paths = [Path(p) for p in paths]
        self.batch_size = batch_size
        self.speed = speed

    def list_parts(self) -> list[str]:
        return ["recording"]

    def build_part(
        self, step_id: str, for_part: str, resume_state: int | None
    ) -> _RecordingPartition:
        return _RecordingPartition(self.paths, self.batch_size, self.speed, resume_state or 0)
