"""What each part of a detection shard's full recovery snapshot costs.

Feeds one :class:`~citywatch.flows.detect.DetectorSuite` (the bundled config, one
shard holding the whole city) a recording up to ``--until-s`` seconds of event
time, as ``snapshot_cost`` does, then takes ``--rounds`` full snapshots: each
detector's state (and the jump filter's and the rendezvous reporter's) written
with every ``KeyedState`` as a full one (as at 10,000 ev/s, where nearly every
key changes between two snapshots), then the whole suite's snapshot
(``citywatch.flows.recovery.snapshot``) and its restore into a suite built
fresh. Prints, per part, the CPU time of the thread (min and median over the
rounds: waiting for a busy machine's cores does not count), the unpickle time
and the size, and the sum of the track detectors' parts. ``--per-event`` first
times each track-side part alone (built fresh, fed only the GPS fixes in the same
batches, best of three) per fix. Runs on an older tree through ``PYTHONPATH`` as
well (``replay_versions --tree``).

    citywatch generate --scale city --minutes 7 --seed 5 --out c7.jsonl
    python -m citywatch.benchmarks.snapshot_parts c7.jsonl --until-s 402 --rounds 5
"""

from __future__ import annotations

import argparse
import gc
import pickle
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from citywatch.detectors.alerts import Alert
from citywatch.detectors.base import KeyedState, keyed_states
from citywatch.detectors.events import parse_batch
from citywatch.flows.config import load_config
from citywatch.flows.detect import DetectorSuite
from citywatch.flows.recovery import restore, snapshot
from citywatch.flows.runner import load_reference

TRACK = ("GapDetector", "StopDetector", "SpeedingDetector", "GeofenceDetector", "JumpFilter")


def _all_full(states: list[KeyedState[Any]]) -> None:
    """Make the next snapshot of each a full one (most keys changed since the last)."""
    for ks in states:
        ks._uncoded = True
        ks._busy = True


def _per_event(cfg: Any, ref: Any, events: list[Any], lag: int) -> None:
    """CPU per GPS fix of each track-side part alone (best of three runs)."""
    fixes = [ev for ev in events if ev.type == "gps"]
    print(f"per fix, each part alone on {len(fixes):,} fixes:")
    for name in (*TRACK, "SpanReporter"):
        best = float("inf")
        for _ in range(3):
            suite = DetectorSuite.from_config(cfg, ref.zone_catalog())
            part: Any = {type(d).__name__: d for d in suite.detectors}.get(name)
            part = suite.gate if name == "JumpFilter" else part or suite.reporter
            out: list[Any] = []
            top = fixes[0].ts_ms
            t0 = time.process_time()
            for k in range(0, len(fixes), 1000):
                batch = fixes[k : k + 1000]
                top = max(top, sorted(ev.ts_ms for ev in batch)[len(batch) // 2])
                if name == "JumpFilter":
                    part.admit(batch, out)
                    part.on_watermark(top - lag)
                    continue
                for ev in batch:
                    part.on_event(ev, out)
                if name == "SpanReporter":
                    part.on_watermark(top - lag)
                else:
                    part.on_watermark(top - lag, out)
            best = min(best, time.process_time() - t0)
        print(f"  {name}: {best / len(fixes) * 1e6:.1f} us, {part.live_keys():,} keys")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("recording", type=Path, help="a .jsonl recording (citywatch generate)")
    ap.add_argument("--until-s", type=float, default=402.0, help="event time fed")
    ap.add_argument("--rounds", type=int, default=5, help="snapshots of each part")
    ap.add_argument("--per-event", action="store_true", help="time the track parts per fix")
    args = ap.parse_args(argv)
    gc.set_threshold(200_000, 20, 100)  # as the command line runs the flow
    cfg = load_config()
    ref = load_reference(cfg)
    suite = DetectorSuite.from_config(cfg, ref.zone_catalog())
    with args.recording.open("rb") as f:
        events, _bad = parse_batch(line.rstrip(b"\n") for line in f if line.strip())
    lag = cfg.flow.max_out_of_order_s * 1000
    start = top = min(ev.ts_ms for ev in events[:1000])
    out: list[Alert] = []
    fed = 0
    for i in range(0, len(events), 1000):
        batch = events[i : i + 1000]
        ref.annotate(batch)
        top = max(top, sorted(ev.ts_ms for ev in batch)[len(batch) // 2])
        suite.process(batch, top - lag, out)
        fed = i + len(batch)
        if top - start > args.until_s * 1000:
            break
    if args.per_event:
        _per_event(cfg, ref, events[:fed], lag)
    parts: dict[str, Any] = {type(d).__name__: d for d in suite.detectors}
    parts["JumpFilter"], parts["SpanReporter"] = suite.gate, suite.reporter
    states = [ks for part in parts.values() for ks in keyed_states(part)]
    rows: dict[str, list[tuple[float, float, int]]] = {}
    for _ in range(args.rounds):
        for name, part in parts.items():
            _all_full(states)
            t0 = time.thread_time()
            blob = pickle.dumps(part.state(), protocol=5)
            t1 = time.thread_time()
            pickle.loads(blob)  # noqa: S301 - written just above
            rows.setdefault(name, []).append((t1 - t0, time.thread_time() - t1, len(blob)))
        _all_full(states)
        t0 = time.thread_time()
        blob = snapshot(suite)
        t1 = time.thread_time()
        restore("detect", DetectorSuite.from_config(cfg, ref.zone_catalog()), blob)
        rows.setdefault("whole suite", []).append((t1 - t0, time.thread_time() - t1, len(blob)))
    load = Path("/proc/loadavg").read_text().split()[0]
    print(
        f"fed {(top - start) / 1000:.0f} s of event time, {suite.live_keys():,} live keys, "
        f"KeyedState version {KeyedState.STATE_VERSION}, load {load}"
    )
    print("| part | snapshot CPU min / median (ms) | unpickle (suite: restore) min (ms) | MB |")
    print("|---|---|---|---:|")
    track = [0.0, 0.0, 0]
    for name, got in sorted(rows.items(), key=lambda kv: -min(r[0] for r in kv[1])):
        took, back = [r[0] for r in got], [r[1] for r in got]
        print(
            f"| {name} | {min(took) * 1000:,.1f} / {statistics.median(took) * 1000:,.1f} "
            f"| {min(back) * 1000:,.1f} | {got[-1][2] / 2**20:.2f} |"
        )
        if name in TRACK:
            track[0] += min(took)
            track[1] += statistics.median(took)
            track[2] += got[-1][2]
    print(
        f"| track side ({', '.join(TRACK)}) | {track[0] * 1000:,.1f} / {track[1] * 1000:,.1f} "
        f"| | {track[2] / 2**20:.2f} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
