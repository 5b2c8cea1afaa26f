"""What Bytewax's own write of a recovery snapshot costs, by the store's SQLite page size.

A live run stores every stateful step's snapshot at the end of each epoch, in the
recovery partitions' SQLite files, on the worker's thread: the flow reads nothing
meanwhile. This runs a bare flow (no detectors): ``--keys`` keys of one stateful step,
each of whose snapshots is ``--mb`` MB of bytes (already encoded, as a detection shard's
are), an epoch every ``--epoch-s``, and times from the last ``snapshot()`` call of an epoch
to the next batch the step is given: Bytewax's part of the stop alone. It does so for a
store made by ``bytewax.recovery.init_db_dir`` (SQLite's 4 KiB pages) and for one whose
files were made first with ``--page-size`` pages (``citywatch.flows.live.init_recovery_files``;
``citywatch run`` uses ``RECOVERY_PAGE_SIZE``),
alternating, and prints each one's stops and their median.

    python -m citywatch.benchmarks.snapshot_store --keys 8 --mb 8 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bytewax import operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import DynamicSource, StatelessSourcePartition
from bytewax.operators import StatefulBatchLogic
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.run import cli_main

from citywatch.flows.live import init_recovery_files


class _Ticks(StatelessSourcePartition[tuple[str, int]]):
    def __init__(self, keys: int, until: float) -> None:
        self._keys, self._until, self._i = keys, until, 0

    def next_batch(self) -> list[tuple[str, int]]:
        if time.monotonic() > self._until:
            raise StopIteration
        self._i += 1
        return [(str(k), self._i) for k in range(self._keys)]

    def next_awake(self) -> datetime | None:
        return datetime.now(UTC) + timedelta(milliseconds=5)


class _Source(DynamicSource[tuple[str, int]]):
    def __init__(self, keys: int, seconds: float) -> None:
        self._keys, self._seconds = keys, seconds

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Ticks:
        return _Ticks(self._keys, time.monotonic() + self._seconds)


class _Held(StatefulBatchLogic[int, int, bytes]):
    """A key holding ``blob`` as its snapshot; notes when snapshots end and batches come."""

    def __init__(self, blob: bytes, marks: list[tuple[str, float]]) -> None:
        self._blob, self._marks = blob, marks

    def on_batch(self, values: list[int]) -> tuple[Iterable[int], bool]:
        self._marks.append(("batch", time.perf_counter()))
        return [], StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes:
        self._marks.append(("snap", time.perf_counter()))
        return self._blob


def stops(marks: list[tuple[str, float]]) -> list[float]:
    """Seconds from each epoch's last snapshot call to the next batch after it."""
    out: list[float] = []
    last_snap: float | None = None
    for what, at in marks:
        if what == "snap":
            last_snap = at
        elif last_snap is not None:
            out.append(at - last_snap)
            last_snap = None
    return out


def run(keys: int, mb: float, epoch_s: float, seconds: float, page_size: int | None) -> list[float]:
    blob = os.urandom(int(mb * 1_000_000))
    marks: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp)
        if page_size is not None:
            init_recovery_files(store, 1, page_size)
        init_db_dir(store, 1)
        flow = Dataflow("snapshot_store")
        stream = op.input("in", flow, _Source(keys, seconds))
        held = op.stateful_batch("held", stream, lambda _resume: _Held(blob, marks))
        op.inspect("sink", held, lambda _step, _item: None)
        cli_main(
            flow,
            epoch_interval=timedelta(seconds=epoch_s),
            recovery_config=RecoveryConfig(str(store)),
        )
    return stops(marks)[1:]  # the first epoch's keys are new: not a steady one


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, default=8, help="keys (detection shards)")
    ap.add_argument("--mb", type=float, default=8.0, help="each key's snapshot, MB")
    ap.add_argument("--epoch-s", type=float, default=2.0)
    ap.add_argument("--seconds", type=float, default=21.0, help="each run's length")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--page-size", type=int, default=65536, help="the other store's pages")
    args = ap.parse_args(argv)
    ms: dict[str, list[float]] = {}
    for r in range(args.rounds):
        for label, size in (("4096 (init_db_dir)", None), (str(args.page_size), args.page_size)):
            got = [s * 1000 for s in run(args.keys, args.mb, args.epoch_s, args.seconds, size)]
            ms.setdefault(label, []).extend(got)
            print(f"round {r + 1} pages {label}: " + " ".join(f"{x:.0f}" for x in got), flush=True)
    total = args.keys * args.mb
    for label, got in ms.items():
        med = statistics.median(got)
        print(
            f"pages {label}: {len(got)} stops of {total:.0f} MB, median {med:.0f} ms "
            f"({med / total:.1f} ms/MB), min {min(got):.0f}, max {max(got):.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
