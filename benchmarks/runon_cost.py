"""Cost of a quiet partition's run-on tick in one detection shard, against its sources.

In a live run a caught-up Kafka partition moves every one of its sources' lanes on
once a ``[flow] tick_ms`` (``flows/stage_watermark.py``), and each detection shard
gets them all. This builds the bundled config's suite with ``N`` trucks, each its
own source (as the city mix's trackers are), three fixes each, then times 200 ticks
of ``DetectorSuite.process`` with no events and every source's clock moved on by
250 ms: wall and CPU medians. Run as a file to measure another tree of the code:

    PYTHONPATH=/tmp/old/pkg python benchmarks/runon_cost.py 1000
"""

from __future__ import annotations

import statistics
import sys
import time

from citywatch.detectors.alerts import Alert
from citywatch.detectors.events import Event, GpsEvent
from citywatch.flows.config import load_config
from citywatch.flows.detect import DetectorSuite
from citywatch.flows.runner import load_reference

T0 = 1_767_225_600_000


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    n = int(args[0]) if args else 1000
    cfg = load_config()
    ref = load_reference(cfg)
    suite = DetectorSuite.from_config(cfg, ref.zone_catalog())
    out: list[Alert] = []
    part, last = "gps#0", T0
    for rnd in range(3):
        batch: list[Event] = []
        for i in range(n):
            lon = 120.8 + (i % 100) * 0.001 + rnd * 0.0005
            lat = 31.95 + (i // 100) * 0.001
            ts = T0 + rnd * 10_000 + i
            batch.append(
                GpsEvent(ts, f"v-{i:06d}", lon, lat, "muck_truck", 30.0, src=f"tr-{i:06d}")
            )
        ref.annotate(batch)
        last = batch[-1].ts_ms
        clocks = {f"tr-{i:06d}": last - 500 for i in range(n)}
        suite.process(batch, last - 30_000, out, clocks=clocks, partition=part)
    wall: list[float] = []
    cpu: list[float] = []
    for k in range(200):
        now = last + (k + 1) * 250
        clocks = {f"tr-{i:06d}": now - 500 for i in range(n)}
        t0, c0 = time.perf_counter(), time.process_time()
        suite.process([], last - 30_000, out, clocks=clocks, partition=part)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    print(
        f"sources {n:,}: run-on tick p50 {statistics.median(wall) * 1e3:.2f} ms wall, "
        f"{statistics.median(cpu) * 1e3:.2f} ms CPU; alerts {len(out)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
