"""Cost of one live partition's run-on, against its number of sources.

While a live Kafka partition is read to its end, once a ``[flow] tick_ms`` its watermark
step runs every source's lane on with the wall clock and each detection shard takes
them in (``citywatch.flows.stage_watermark``, ``citywatch.detectors.lanes``). This
times, per tick, on one partition of ``--sources`` sources with a few keys' timers
filed (none due):

- ``watermark``: the watermark step's run-on (every source's lane, once a partition);
- ``shard, per source``: a shard writing every source's lane into its own table, as
  shards did before (``LaneClocks.update`` with a plain dict of the lanes);
- ``shard, by reference``: a shard keeping the run-on as one table (``RunOn``) and
  reading a lane from it only when a timer of it may be due.

Medians of ``--ticks`` ticks, per shard; a flow runs one watermark step per partition
and every shard for each.

    python -m citywatch.benchmarks.run_on_cost --sources 500 2000 5000
"""

from __future__ import annotations

import argparse
import statistics
import time

from citywatch.detectors.lanes import LaneClocks, LaneTimers, RunOn, lane_name
from citywatch.detectors.watermark import Watermarker
from citywatch.flows.stage_watermark import _run_on

SLACK_MS = 500
T0 = 1_767_225_600_000


def one(sources: int, ticks: int, tick_ms: int) -> dict[str, float]:
    wm = Watermarker(30_000, by="gateway")
    names = [f"gw-{i:05d}" for i in range(sources)]
    for k in range(20):  # each source heard a few times, with its own transit
        for i, source in enumerate(names):
            ts = T0 + k * 1_000 + i % 997
            wm.observe(ts, source, ts + 200 + i % 2_000)
    walked, kept = LaneClocks(), LaneClocks()
    timers_walked, timers_kept = LaneTimers(), LaneTimers()
    for i, source in enumerate(names[:: max(1, sources // 200)]):  # ~200 keys, none due
        lane = lane_name("gps#0", source)
        timers_walked.add(f"k{i}", T0 + 3_600_000, lane)
        timers_kept.add(f"k{i}", T0 + 3_600_000, lane)
    times: dict[str, list[float]] = {"watermark": [], "per source": [], "by reference": []}
    caught = T0 + 25_000
    for _ in range(ticks):
        caught += tick_ms
        t = time.perf_counter()
        run_on = _run_on(wm, caught, SLACK_MS)
        times["watermark"].append(time.perf_counter() - t)
        plain = dict(run_on)
        t = time.perf_counter()
        moved = walked.update("gps#0", plain, {})
        timers_walked.pop_due(T0, moved)
        times["per source"].append(time.perf_counter() - t)
        t = time.perf_counter()
        lanes = kept.update("gps#0", run_on, {})
        timers_kept.pop_due(T0, lanes)
        times["by reference"].append(time.perf_counter() - t)
    assert isinstance(run_on, RunOn)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sources", type=int, nargs="+", default=[500, 2_000, 5_000])
    ap.add_argument("--ticks", type=int, default=200)
    ap.add_argument("--tick-ms", type=int, default=100)
    args = ap.parse_args(argv)
    print("ms a tick (median): sources | watermark (a partition) | shard, per source | "
          "shard, by reference")  # fmt: skip
    for n in args.sources:
        r = one(n, args.ticks, args.tick_ms)
        print(f"{n:,} | {r['watermark']:.3f} | {r['per source']:.3f} | {r['by reference']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
