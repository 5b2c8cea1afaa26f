"""How long the recovery snapshot of one detection shard stops a live flow.

A live run snapshots every stateful step each ``[run] snapshot_interval_s``
(10 s by default) and the worker processes nothing meanwhile, so the
snapshot's length is added to every event that arrives during it. This feeds
one :class:`~citywatch.flows.detect.DetectorSuite` (the bundled config, one
shard holding the whole city) a recording in batches of ``--batch`` events
with a watermark of the event time reached (the batches' median stamp)
minus ``max_out_of_order_s``, as
the single-loop baseline of ``citywatch bench`` does. After ``--warm-s``
seconds of event time it takes a first snapshot, then one after every
``--interval-s`` of event time that follows, as a live run does, and prints
each one's time (``citywatch.flows.recovery.snapshot``: ``state()`` and
encoding; wall clock, and the CPU time of the thread, which waiting for a busy
machine's cores does not inflate), its size, and the median. ``--parts`` then
prints each detector's own ``state()`` and encoding, its decoding (thread CPU,
median of 5) and its size. ``--precode`` encodes up to ``PRECODE_TICK_KEYS``
changed records each second of event time, as a live shard does on its wall
ticks at x1. ``--check`` restores a final snapshot into
a suite built fresh and checks that it holds the same state as the fed one.

    citywatch generate --scale city --minutes 7 --seed 5 --out c7.jsonl
    python -m citywatch.benchmarks.snapshot_cost c7.jsonl --warm-s 300 --interval-s 10
    python -m citywatch.benchmarks.snapshot_cost c7.jsonl --precode --check
    python -m citywatch.benchmarks.snapshot_cost c7.jsonl --warm-s 400 --interval-s 999 --parts
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

from citywatch.detectors.alerts import Alert
from citywatch.detectors.events import Event, parse_batch
from citywatch.detectors.state import decode, encode
from citywatch.flows.config import load_config
from citywatch.flows.detect import DetectorSuite
from citywatch.flows.recovery import restore, snapshot
from citywatch.flows.runner import load_reference


def _events(path: Path) -> list[Event]:
    with path.open("rb") as f:
        good, _bad = parse_batch(line.rstrip(b"\n") for line in f if line.strip())
    return good


def _same(a: DetectorSuite, b: DetectorSuite) -> bool | None:
    """Whether both hold the same state; None in an older tree, which cannot say."""
    try:
        from citywatch.detectors.base import same_state
    except ImportError:
        return None
    return same_state(decode(snapshot(a)), decode(snapshot(b)))


def _parts(suite: DetectorSuite) -> None:
    """Each detector's snapshot alone: ``state()`` and encoding, then decoding."""
    print("| detector | live keys | state + encode CPU (ms) | decode CPU (ms) | size (MB) |")
    print("|---|---:|---:|---:|---:|")
    for det in suite.detectors:
        enc: list[float] = []
        dec: list[float] = []
        blob = b""
        for _ in range(5):
            c0 = time.thread_time()
            blob = encode(det.state())
            c1 = time.thread_time()
            decode(blob)
            enc.append(c1 - c0)
            dec.append(time.thread_time() - c1)
        print(
            f"| {type(det).__name__} | {det.live_keys():,} | {statistics.median(enc) * 1000:.1f} "
            f"| {statistics.median(dec) * 1000:.1f} | {len(blob) / 2**20:.2f} |"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("recording", type=Path, help="a .jsonl recording (citywatch generate)")
    ap.add_argument("--warm-s", type=float, default=300.0, help="event time fed before the first")
    ap.add_argument("--interval-s", type=float, default=10.0, help="event time between snapshots")
    ap.add_argument("--batch", type=int, default=1_000, help="events per batch")
    ap.add_argument("--check", action="store_true", help="restore the last one and compare")
    ap.add_argument(
        "--precode",
        action="store_true",
        help="encode changed records each second of event time ahead of the snapshot, "
        "as a live shard does on its wall ticks (flows.detect.PRECODE_TICK_KEYS)",
    )
    ap.add_argument("--parts", action="store_true", help="per detector, at the end")
    args = ap.parse_args(argv)
    gc.set_threshold(200_000, 20, 100)  # as the command line runs the flow
    if args.precode:  # only in trees that have it: the script also measures older ones
        from citywatch.flows.detect import PRECODE_TICK_KEYS
    cfg = load_config()
    ref = load_reference(cfg)
    suite = DetectorSuite.from_config(cfg, ref.zone_catalog())
    events = _events(args.recording)
    lag_ms = cfg.flow.max_out_of_order_s * 1000
    start = min(ev.ts_ms for ev in events[: args.batch])
    next_ms = start + int(args.warm_s * 1000)
    out: list[Alert] = []
    top = start
    rows: list[tuple[int, int, float, int, float]] = []
    tick_ms = start
    blob = b""
    for i in range(0, len(events), args.batch):
        batch = events[i : i + args.batch]
        ref.annotate(batch)
        # The batch's median stamp: a gateway whose clock stepped ahead moves no time.
        top = max(top, sorted(ev.ts_ms for ev in batch)[len(batch) // 2])
        suite.process(batch, top - lag_ms, out)
        if args.precode and top >= tick_ms:
            suite.precode(PRECODE_TICK_KEYS)
            tick_ms = top + 1_000
        if top >= next_ms:
            t0, c0 = time.perf_counter(), time.thread_time()
            blob = snapshot(suite)
            took, cpu = time.perf_counter() - t0, time.thread_time() - c0
            rows.append((top - start, suite.live_keys(), took, len(blob), cpu))
            next_ms = top + int(args.interval_s * 1000)
    print(f"{len(events):,} events, {len(out):,} alerts, {len(rows)} snapshots")
    print("| # | event time (s) | live keys | snapshot (ms) | CPU (ms) | size (MB) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n, (at, keys, secs, size, cpu) in enumerate(rows):
        print(
            f"| {n} | {at / 1000:.0f} | {keys:,} | {secs * 1000:,.0f} | {cpu * 1000:,.0f} "
            f"| {size / 2**20:.1f} |"
        )
    later = [secs for _a, _k, secs, _s, _c in rows[1:]] or [rows[0][2]]
    cpus = [cpu for _a, _k, _s, _z, cpu in rows[1:]] or [rows[0][4]]
    print(
        f"first snapshot {rows[0][2] * 1000:,.0f} ms (CPU {rows[0][4] * 1000:,.0f}); median "
        f"of the {len(later)} after it {statistics.median(later) * 1000:,.0f} ms (CPU "
        f"{statistics.median(cpus) * 1000:,.0f}), max {max(later) * 1000:,.0f} ms"
    )
    if args.parts:
        _parts(suite)
    if args.check:
        blob = snapshot(suite)  # the events after the last interval's snapshot too
        fresh = DetectorSuite.from_config(cfg, ref.zone_catalog())
        t0, c0 = time.perf_counter(), time.thread_time()
        back = restore("detect", fresh, blob)
        took, cpu = time.perf_counter() - t0, time.thread_time() - c0
        same = _same(back, suite)
        print(
            f"restore {took * 1000:,.0f} ms (CPU {cpu * 1000:,.0f}); restored state equals "
            f"the fed one: {same}"
        )
        if same is False:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
