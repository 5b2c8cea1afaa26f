"""CPU per event of the records that cross between processes in ``replay -p N``.

Bytewax moves an item to another process as ``pickle.dumps`` of ``(key, record)``
and reads it with ``pickle.loads``. Two records cross: the parsed batches on
their way to the watermark step (:class:`~citywatch.flows.records.EventBatch`,
keyed by source) and the detection shards' batches
(:class:`~citywatch.flows.records.ShardBatch`, one per shard of each stamped
batch). This builds both from the first ``--batches`` batches of a recording
with the flow's own parse, watermark and shard steps, then serialises and
deserialises every one of them, each way in turn, ``--rounds`` times:

* **old**: pickle's default form of the record (``copyreg.__newobj__`` and the
  dataclass's field list, each event an object with its own ``__setstate__``),
  what every record was written as before ``flows/exchange.py``;
* **new**: the record's own ``__reduce__`` (``flows/exchange.py``: the events as
  plain tuples of their field values).

Prints, per record type and way, the CPU time (``time.process_time``) per event
(each shard batch's events counted once), the bytes per event, and the median
over the rounds; each once with Python's cyclic garbage collector running (it
runs on every 700 new objects, and every event read back is one) and once with
it stopped, which leaves the encoding's own cost. Every new round trip is
checked against the record it came from.

    citywatch generate --scale city --minutes 10 --seed 1 --out city10.jsonl
    python -m citywatch.benchmarks.exchange_cost city10.jsonl --batches 20 --rounds 5
"""

from __future__ import annotations

import argparse
import copyreg
import gc
import io
import pickle
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from citywatch.flows.config import load_config
from citywatch.flows.pipeline import ReferenceHolder, parse_step, shard_step
from citywatch.flows.records import EventBatch, RawBatch, ShardBatch
from citywatch.flows.runner import load_reference
from citywatch.flows.sources import RecordingSource
from citywatch.flows.stage_watermark import watermark_step
from citywatch.flows.stats import RunStats


def _default_form(record: Any) -> tuple[Any, ...]:
    """What ``object.__reduce_ex__`` gives a frozen slotted dataclass (the old form)."""
    newobj = copyreg.__newobj__  # type: ignore[attr-defined]  # not in typeshed
    return newobj, (type(record),), record.__getstate__()


_OLD = {EventBatch: _default_form, ShardBatch: _default_form}


def dumps_old(item: Any) -> bytes:
    buf = io.BytesIO()
    pickler = pickle.Pickler(buf)
    pickler.dispatch_table = _OLD
    pickler.dump(item)
    return buf.getvalue()


def records(
    recording: Path, batches: int
) -> tuple[list[tuple[str, EventBatch]], list[tuple[str, ShardBatch]]]:
    """The (key, record) items of the first ``batches`` raw batches, as the flow keys them."""
    cfg = load_config()
    holder = ReferenceHolder(load_reference(cfg))
    stats = RunStats()
    parse, stamp = parse_step(holder, stats), watermark_step(cfg.flow, stats)
    split = shard_step(cfg.flow.shards)
    part = RecordingSource([recording], batch_size=cfg.flow.batch_size).build_part(
        "input", "recording", None
    )
    raw: list[RawBatch] = []
    while len(raw) < batches:
        try:
            raw.extend(part.next_batch())
        except StopIteration:
            break
    parsed: list[tuple[str, EventBatch]] = []
    shards: list[tuple[str, ShardBatch]] = []
    wm = None
    for r in raw[:batches]:
        e = parse(r)
        parsed.append((e.source, e))
        wm, s = stamp(wm, e)
        shards.extend(split(s))
    return parsed, shards


def _cpu(
    items: list[Any], dumps: Callable[[Any], bytes], collect: bool
) -> tuple[float, float, int]:
    """CPU seconds to serialise all ``items``, to deserialise them, and their bytes;
    ``collect``: with the cyclic garbage collector running."""
    gc.collect()
    if not collect:
        gc.disable()
    t0 = time.process_time()
    blobs = [dumps(it) for it in items]
    t1 = time.process_time()
    for b in blobs:
        pickle.loads(b)  # noqa: S301 - bytes it made itself
    t2 = time.process_time()
    gc.enable()
    return t1 - t0, t2 - t1, sum(map(len, blobs))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("recording", type=Path, help="a .jsonl recording (citywatch generate)")
    ap.add_argument("--batches", type=int, default=20, help="raw batches of the recording")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    parsed, shards = records(args.recording, args.batches)
    for key, rec in [*parsed, *shards]:  # every record survives the new way unchanged
        assert pickle.loads(pickle.dumps((key, rec))) == (key, rec)  # noqa: S301
    events = sum(len(e.events) for _, e in parsed)
    print(f"{len(parsed)} EventBatch, {len(shards)} ShardBatch, {events:,} events", flush=True)
    ways: dict[str, Callable[[Any], bytes]] = {"old": dumps_old, "new": pickle.dumps}
    rows: dict[tuple[str, str, bool, str], list[float]] = {}
    size: dict[tuple[str, str], float] = {}
    for r in range(args.rounds):
        for collect in (True, False):
            for way, dumps in ways.items():
                for name, items in (("EventBatch", parsed), ("ShardBatch", shards)):
                    ser, de, nbytes = _cpu(items, dumps, collect)
                    rows.setdefault((name, way, collect, "dumps"), []).append(ser / events * 1e6)
                    rows.setdefault((name, way, collect, "loads"), []).append(de / events * 1e6)
                    size[(name, way)] = nbytes / events
        print(f"round {r + 1} done", flush=True)
    print("| record | way | gc | dumps µs/event | loads µs/event | both | bytes/event |")
    print("|---|---|---|---:|---:|---:|---:|")
    for name in ("EventBatch", "ShardBatch"):
        for collect in (True, False):
            for way in ways:
                d = statistics.median(rows[(name, way, collect, "dumps")])
                lo = statistics.median(rows[(name, way, collect, "loads")])
                on = "on" if collect else "off"
                nb = size[(name, way)]
                print(f"| {name} | {way} | {on} | {d:.2f} | {lo:.2f} | {d + lo:.2f} | {nb:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
