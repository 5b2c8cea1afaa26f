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

from citywatch.detectors.events import parse_ts
from citywatch.flows.records import RawBatch
from citywatch.replay.recording import ENVELOPE_PREFIX, iter_lines, read_header, unwrap

# (raw event, type implied by the topic, source id "topic#partition" of an envelope,
#  recorded wall-clock arrival of an envelope)
_Line = tuple[bytes, str | None, str | None, int | None]


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


def _partition_of(env: dict[str, object] | None) -> str | None:
    """Recorded Kafka lines keep their partition as their source, so that watermarks
    are per partition, as in the live run that consumed them."""
    if env is None or not env.get("topic") or not isinstance(env.get("partition"), int):
        return None
    return f"{env['topic']}#{env['partition']}"


def _recorded_arrival(env: dict[str, object] | None) -> int | None:
    arrival = env.get("arrival_ms") if env is not None else None
    return arrival if isinstance(arrival, int) else None


def _file_lines(path: Path) -> Iterator[_Line]:
    for line in iter_lines(path):
        raw, implied, env = unwrap(line)
        yield raw, implied, _partition_of(env), _recorded_arrival(env)


def _keyed(path: Path, order: int) -> Iterator[tuple[int, int, int, _Line]]:
    for seq, text in enumerate(iter_lines(path)):
        raw, implied, env = unwrap(text)
        line = (raw, implied, _partition_of(env), _recorded_arrival(env))
        yield _arrival_ms(raw, env), order, seq, line


def _known(arrivals: list[int | None]) -> list[int] | None:
    """The recorded arrival times when every line has one, else None (median applies)."""
    if not arrivals or any(a is None for a in arrivals):
        return None
    return arrivals  # type: ignore[return-value]


def merged_lines(paths: Sequence[Path]) -> Iterator[_Line]:
    """All lines of the recordings, merged by arrival time when there are several."""
    if len(paths) == 1:
        yield from _file_lines(paths[0])
        return
    streams = [_keyed(p, i) for i, p in enumerate(paths)]
    for _, _, _, line in heapq.merge(*streams):
        yield line


def announced_partitions(paths: Sequence[Path]) -> tuple[str, ...]:
    """Every Kafka partition recorded in the files ("topic#partition"), from the
    recorder's header, else by reading the envelopes; empty for plain recordings."""
    found: set[str] = set()
    for path in paths:
        header = read_header(path) or {}
        listed = (header.get("recorder") or {}).get("partitions")
        if isinstance(listed, list):
            found.update(str(p) for p in listed)
            continue
        for line in iter_lines(path):
            if not line.startswith(ENVELOPE_PREFIX):
                break  # a plain recording: no partitions to announce
            part = _partition_of(unwrap(line)[2])
            if part is not None:
                found.add(part)
    return tuple(sorted(found))


class _RecordingPartition(StatefulSourcePartition[RawBatch, int]):
    def __init__(
        self, paths: Sequence[Path], batch_size: int, speed: float | None, skip: int
    ) -> None:
        self._lines = merged_lines(paths)
        self._batch_size = batch_size
        self._speed = speed
        self._emitted = 0
        self._partitions: dict[str, None] = {}  # recorded Kafka partitions, in order seen
        self._peers = announced_partitions(paths)
        for _ in range(skip):
            skipped = next(self._lines, None)
            if skipped is None:
                break
            if skipped[2] is not None:
                self._partitions.setdefault(skipped[2])
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
            if self._partitions:
                return self._end_of_partitions()
            raise StopIteration
        lines: list[bytes] = []
        types: list[str | None] = []
        parts: list[str | None] = []
        arrivals: list[int | None] = []
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
            parts.append(line[2])
            arrivals.append(line[3])
            any_type = any_type or line[1] is not None
        self._emitted += len(lines)
        if not lines:
            if self._done:
                return self._end_of_partitions()
            return []
        now_ns = time.time_ns()
        if all(p is None for p in parts):
            return [
                RawBatch(
                    "recording",
                    lines,
                    now_ns,
                    types if any_type else None,
                    arrival_ms=_known(arrivals),
                )
            ]
        return self._by_partition(lines, types, parts, arrivals, now_ns)

    def _by_partition(
        self,
        lines: list[bytes],
        types: list[str | None],
        parts: list[str | None],
        arrivals: list[int | None],
        now_ns: int,
    ) -> list[RawBatch]:
        groups: dict[str, tuple[list[bytes], list[str | None], list[int | None]]] = {}
        for raw, typ, part, arrival in zip(lines, types, parts, arrivals, strict=True):
            src = part if part is not None else "recording"
            if part is not None:
                self._partitions.setdefault(part)
            g = groups.setdefault(src, ([], [], []))
            g[0].append(raw)
            g[1].append(typ)
            g[2].append(arrival)
        return [
            RawBatch(src, ls, now_ns, ts, peers=self._peers, arrival_ms=_known(ar))
            for src, (ls, ts, ar) in groups.items()
        ]

    def _end_of_partitions(self) -> list[RawBatch]:
        # Like a live run that stops at the end: every partition goes idle, so the
        # shards' watermark reaches the latest of them.
        ends = [RawBatch(p, [], time.time_ns(), idle=True) for p in self._partitions]
        self._partitions = {}
        if not ends:
            raise StopIteration
        return ends

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
