"""Cost of one live wake-up of a detection shard against its number of live keys.

A live run (``--timers wall``) wakes every detection shard each ``[flow] tick_ms``
and advances its detectors to the wall clock, input or not. This measures that
wake-up (``DetectorSuite.process`` with no events, as ``ShardLogic.on_notify``
calls it) on the bundled config's suite after ``--rounds`` rounds of one event per
key (the key mix of ``benchmarks.suite_keys``: vehicles and four sensor kinds),
the clock moving on by one tick each time, with few or no timers due: its cost
should not grow with the keys. Also one tick with a lane's clock moving on
(``clocks``), the per-source path of the absence detectors. Medians of
``--ticks`` wake-ups, one fresh process per key count.

    python -m citywatch.benchmarks.tick_cost --keys 10000 100000 --tick-ms 250
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from citywatch.benchmarks.suite_keys import events
from citywatch.detectors.alerts import Alert
from citywatch.flows.config import load_config
from citywatch.flows.detect import DetectorSuite
from citywatch.flows.runner import load_reference


def one(n_keys: int, rounds: int, ticks: int, tick_ms: int) -> dict[str, float]:
    cfg = load_config()
    ref = load_reference(cfg)
    suite = DetectorSuite.from_config(cfg, ref.zone_catalog())
    out: list[Alert] = []
    last = 0
    for batch in events(n_keys, rounds):
        ref.annotate(batch)
        last = batch[-1].ts_ms
        suite.process(batch, last - 30_000, out, clocks={"gps": last, "sensor": last})
    wm = last - 30_000
    plain: list[float] = []
    lane: list[float] = []
    due = len(out)
    for k in range(ticks):
        wm += tick_ms
        t0 = time.perf_counter()
        suite.process([], wm, out)
        plain.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        now = last + (k + 1) * tick_ms
        suite.process([], wm, out, clocks={"gps": now, "sensor": now})
        lane.append(time.perf_counter() - t0)
    return {
        "keys": n_keys,
        "live_keys": suite.live_keys(),
        "tick_us": statistics.median(plain) * 1e6,
        "tick_max_us": max(plain) * 1e6,
        "lane_tick_us": statistics.median(lane) * 1e6,
        "alerts_during_ticks": len(out) - due,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keys", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--rounds", type=int, default=3, help="events per key")
    ap.add_argument("--ticks", type=int, default=400)
    ap.add_argument("--tick-ms", type=int, default=250)
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one is not None:
        print(json.dumps(one(args.one, args.rounds, args.ticks, args.tick_ms)))
        return 0
    print("| keys | live keys (sum over detectors) | wake-up p50 | max | with a lane moving, p50 |")
    print("|---:|---:|---:|---:|---:|")
    for n in args.keys:
        cmd = [sys.executable, "-m", "citywatch.benchmarks.tick_cost", "--one", str(n)]
        opts = ["--rounds", str(args.rounds), "--ticks", str(args.ticks)]
        res = subprocess.run(
            [*cmd, *opts, "--tick-ms", str(args.tick_ms)],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(res.stdout.strip().splitlines()[-1])
        print(
            f"| {n:,} | {r['live_keys']:,} | {r['tick_us']:,.0f} µs | {r['tick_max_us']:,.0f} µs "
            f"| {r['lane_tick_us']:,.0f} µs |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
