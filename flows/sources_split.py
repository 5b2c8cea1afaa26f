"""A recording read by every worker of a cluster, each parsing its share of the batches.

``replay -p N`` runs the flow in N processes. With the one-partition
:class:`~citywatch.flows.sources.RecordingSource`, one worker would read and
parse every line and the others would only detect. Here every worker reads
the whole recording (cheap: lines are not parsed) and cuts it into the same
batches as the one-partition source at full speed, ``batch_size`` lines each,
split by recorded Kafka partition; batch ``b`` is emitted only by worker
``b % workers``, so parsing (a quarter of a replay's time) runs everywhere.

Each batch carries its number among its source's batches (``RawBatch.seq``),
which every worker counts alike; the watermark step, keyed by source, puts the
batches back in that order before it stamps them (see
:class:`~citywatch.flows.stage_watermark.WatermarkLogic`). So each source's
events reach the watermarks and the detection shards in the order a single
process gives them, and the alerts are the same.

Backpressure: Bytewax slows no reader down within an epoch (a replay has one),
so a process that parses its share faster than another would run ahead, and
the batches it sent would wait in the watermark step for the slower one's
(the largest process's memory grew with how far the reader got). So the
detection shards tell a :class:`ShareProgress` of their process the number of
each batch that reaches them (every shard gets every stamped batch), and a
reader sends its next batch only once the batches of ``ahead`` chunks before
it (every worker's) have been stamped: at most about ``ahead`` chunks per
reader are read and not yet through the watermark step, however long the
recording. A reader that waits returns no batch and is asked again a little
later; it never blocks its worker. The bound needs a detection shard in the
process (:func:`citywatch.flows.runner.run_recordings` checks it); without one
the reader runs free, as before.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bytewax.inputs import DynamicSource, StatelessSourcePartition

from citywatch.flows.records import RawBatch
from citywatch.flows.sources import _known, _Line, announced_partitions, merged_lines

RECORDING = "recording"
# Chunks (``batch_size`` lines of the recording) a reader may be ahead of the
# batches stamped so far (see the module docstring).
SHARE_AHEAD = 8
# How soon a reader that waited is asked again.
SHARE_RETRY = timedelta(milliseconds=2)


class ShareProgress:
    """The numbered batches of each source that reached this process's detection shards
    (stamped in order, so the highest number says it all). Shared by the process's
    workers (threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stamped: dict[str, int] = {}

    def note(self, source: str, seq: int) -> None:
        with self._lock:
            if seq > self._stamped.get(source, -1):
                self._stamped[source] = seq

    def stamped(self, source: str) -> int:
        """The highest number of ``source`` stamped so far (-1: none)."""
        return self._stamped.get(source, -1)


class _SharePartition(StatelessSourcePartition[RawBatch]):
    def __init__(
        self,
        paths: Sequence[Path],
        batch_size: int,
        index: int,
        count: int,
        progress: ShareProgress | None = None,
        ahead: int = SHARE_AHEAD,
    ) -> None:
        self._lines = merged_lines(paths)
        self._progress = progress
        # Each source's batch count after each of the last ``ahead + 1`` chunks.
        self._marks: deque[dict[str, int]] = deque(maxlen=max(1, ahead) + 1)
        self._held: list[RawBatch] | None = None  # our next batches, read, not yet sent
        self.waits = 0  # calls that returned nothing because the flow was behind
        self._batch_size = batch_size
        self._index = index
        self._count = count
        self._batch_no = 0
        self._seq: dict[str, int] = {}  # batches of each source so far, on every worker
        self._partitions: dict[str, None] = {}  # recorded Kafka partitions, in order seen
        self._peers = announced_partitions(paths)
        self._done = False

    def next_batch(self) -> list[RawBatch]:
        if self._held is None:
            if self._done:
                raise StopIteration
            self._held = self._next_share()
        if not self._may_send():
            self.waits += 1
            return []
        out, self._held = self._held, None
        return out

    def next_awake(self) -> datetime | None:
        return datetime.now(UTC) + SHARE_RETRY if self._held is not None else None

    def _may_send(self) -> bool:
        """Whether the chunk ``ahead`` before ours has been stamped, all its sources."""
        marks = self._marks
        if self._progress is None or self._done or len(marks) < (marks.maxlen or 0):
            return True
        stamped = self._progress.stamped
        return all(stamped(src) >= n - 1 for src, n in marks[0].items())

    def _next_share(self) -> list[RawBatch]:
        # One batch of ours; the others' batches before it are only counted.
        while True:
            chunk: list[_Line] = []
            for line in self._lines:
                chunk.append(line)
                if len(chunk) >= self._batch_size:
                    break
            mine = self._batch_no % self._count == self._index
            self._batch_no += 1
            if not chunk:
                self._done = True
                return self._end_of_partitions()
            out = self._batches(chunk, mine)
            if mine:
                return out

    def _batches(self, chunk: list[_Line], mine: bool) -> list[RawBatch]:
        """The chunk's batches by source, as the one-partition source cuts them; only
        numbered unless ``mine``."""
        groups: dict[str, list[_Line]] = {}
        for line in chunk:
            part = line[2]
            if part is not None:
                self._partitions.setdefault(part)
            groups.setdefault(part if part is not None else RECORDING, []).append(line)
        plain = all(line[2] is None for line in chunk)  # no recorded partitions: no peers
        now_ns = time.time_ns()
        out: list[RawBatch] = []
        for src, lines in groups.items():
            seq = self._seq.get(src, 0)
            self._seq[src] = seq + 1
            if not mine:
                continue
            types: list[str | None] | None = [ln[1] for ln in lines]
            if plain and all(t is None for t in types or ()):
                types = None
            batch = RawBatch(
                src,
                [ln[0] for ln in lines],
                now_ns,
                types,
                peers=() if plain else self._peers,
                arrival_ms=_known([ln[3] for ln in lines]),
                seq=seq,
            )
            out.append(batch)
        self._marks.append(dict(self._seq))
        return out

    def _end_of_partitions(self) -> list[RawBatch]:
        # As the one-partition source: every recorded partition goes idle at the end.
        # Worker 0 says so, numbered after the source's last batch.
        if self._index != 0:
            return []
        now_ns = time.time_ns()
        return [
            RawBatch(p, [], now_ns, idle=True, seq=self._seq.get(p, 0)) for p in self._partitions
        ]


class SharedRecordingSource(DynamicSource[RawBatch]):
    """Replays recordings at full speed with every worker parsing its share of the batches."""

    def __init__(
        self,
        paths: Sequence[str | Path],
        *,
        batch_size: int = 1000,
        progress: ShareProgress | None = None,
        ahead: int = SHARE_AHEAD,
    ) -> None:
        """``progress``: what this process's detection shards were told (the flow's
        ``on_stamped``); None lets the readers run free."""
        if not paths:
            msg = "SharedRecordingSource needs at least one recording"
            raise ValueError(msg)
        self.paths = [Path(p) for p in paths]
        self.batch_size = batch_size
        self.progress = progress
        self.ahead = ahead

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _SharePartition:
        return _SharePartition(
            self.paths,
            self.batch_size,
            worker_index,
            worker_count,
            self.progress,
            self.ahead,
        )
