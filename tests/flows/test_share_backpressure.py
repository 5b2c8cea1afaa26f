"""The readers of a shared recording (``replay -p N``) keep within a bound of the batches
the flow has stamped, so a process's memory does not grow with how far its reader ran
ahead (``flows/sources_split.py``).

The flow is played by hand here: two readers asked in turn, and a "watermark step"
that stamps the batches in their numbers' order, more slowly than the readers read.
Counted, never timed: the batches sent and not yet stamped.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from citywatch.flows.config import Config
from citywatch.flows.detect import DetectorSuite, ShardLogic
from citywatch.flows.records import RawBatch, ShardBatch
from citywatch.flows.sources_split import SharedRecordingSource, ShareProgress

LINES = 400
BATCH = 10  # 40 chunks
AHEAD = 3


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    path = tmp_path / "rec.jsonl"
    with path.open("wb") as out:
        for i in range(LINES):
            fix = {"type": "gps", "entity": f"v{i % 7}", "ts": 1_781_528_400_000 + i * 1000,
                   "lon": 120.9, "lat": 32.0}  # fmt: skip
            out.write(orjson.dumps(fix) + b"\n")
    return path


def _play(
    recording: Path, progress: ShareProgress | None, *, stamp_every: int
) -> tuple[int, list[int], int]:
    """Ask two readers in turn; after every ``stamp_every`` asks the flow stamps the
    next batch in order (if it got it). Returns the most batches sent and not yet
    stamped at any time, the numbers stamped, and the readers' waits."""
    source = SharedRecordingSource([recording], batch_size=BATCH, progress=progress, ahead=AHEAD)
    readers = [source.build("input", i, 2) for i in range(2)]
    sent: dict[int, RawBatch] = {}
    stamped: list[int] = []
    most, asks = 0, 0
    live = [True, True]
    while any(live) or len(stamped) < len(sent):
        for i, reader in enumerate(readers):
            if not live[i]:
                continue
            try:
                for batch in reader.next_batch():
                    if not batch.idle:
                        assert batch.seq is not None and batch.seq not in sent
                        sent[batch.seq] = batch
            except StopIteration:
                live[i] = False
            asks += 1
            if asks % stamp_every == 0 and len(stamped) in sent:
                stamped.append(len(stamped))
                if progress is not None:
                    progress.note("recording", stamped[-1])
            most = max(most, len(sent) - len(stamped))
        if not any(live):  # the flow drains what is left
            while len(stamped) in sent:
                stamped.append(len(stamped))
    return most, stamped, sum(r.waits for r in readers)


def test_readers_stay_within_the_bound_of_what_was_stamped(recording: Path) -> None:
    most, stamped, waits = _play(recording, ShareProgress(), stamp_every=4)
    assert stamped == list(range(LINES // BATCH)), "every batch once, in order"
    assert waits > 0, "the flow was slower than the readers: they must have waited"
    # A reader sends its chunk only once the chunk AHEAD before it was stamped.
    assert most <= AHEAD


def test_without_progress_the_readers_run_ahead(recording: Path) -> None:
    """What the bound prevents: the same play without it has most of the recording sent
    and not stamped (the check above is not met by the play itself)."""
    most, stamped, waits = _play(recording, None, stamp_every=4)
    assert stamped == list(range(LINES // BATCH))
    assert waits == 0
    assert most > 4 * AHEAD


def test_a_reader_waits_for_the_other_readers_chunks(recording: Path) -> None:
    """Nothing stamped: the two readers together send the first AHEAD chunks, then
    return nothing, however often asked."""
    progress = ShareProgress()
    source = SharedRecordingSource([recording], batch_size=BATCH, progress=progress, ahead=AHEAD)
    readers = [source.build("input", i, 2) for i in range(2)]
    seqs = sorted(b.seq for _ in range(50) for r in readers for b in r.next_batch())
    assert seqs == list(range(AHEAD))
    progress.note("recording", 0)  # chunk 0 stamped: chunk AHEAD may go
    seqs = [b.seq for _ in range(50) for r in readers for b in r.next_batch()]
    assert seqs == [AHEAD]


def test_a_detection_shard_tells_each_numbered_batch(config: Config) -> None:
    """What the readers wait for: a shard reports each numbered batch that reaches it
    (and nothing for unnumbered ones, as a one-reader replay or Kafka sends)."""
    progress = ShareProgress()
    logic = ShardLogic(
        lambda: DetectorSuite.from_config(config, {}), lambda: {}, None, on_stamped=progress.note
    )
    batches = [ShardBatch([], 1_000, 0, "p#0", seq=0), ShardBatch([], 2_000, 0, "p#1", seq=0),
               ShardBatch([], 3_000, 0, "p#0", seq=1), ShardBatch([], 4_000, 0, "p#1")]  # fmt: skip
    logic.on_batch(batches)
    assert (progress.stamped("p#0"), progress.stamped("p#1"), progress.stamped("x")) == (1, 0, -1)
