"""State size and speed of the anomaly step at 100,000 sensors.

Builds the per-sensor detector for one kind, feeds ``--rounds`` readings of each
of ``--sensors`` sensors through ``on_event`` / ``on_watermark`` in batches of
``--batch`` (as a detection shard does), and reports: the per-sensor arrays'
bytes, the pickled snapshot (what Bytewax recovery stores), the traced Python
memory of the whole detector, and readings per second. For comparison it pickles
one river ``HalfSpaceTrees`` after learning, the cost of a model per sensor.
Also the peer stage: ``--sensors`` household meters (a third each of water,
power, gas). Checks its own output: state under 500 MB.

Run: ``python -m citywatch.benchmarks.anomaly_memory [--sensors 100000 --rounds 5]``.
"""

from __future__ import annotations

import argparse
import gc
import pickle
import random
import statistics
import sys
import time
import tracemalloc

from citywatch.detectors.alerts import Alert
from citywatch.detectors.anomaly.params import BaselineParams, PeerParams
from citywatch.detectors.anomaly.peer import PeerGroupDetector
from citywatch.detectors.anomaly.sensor import SensorAnomalyDetector
from citywatch.detectors.events import SensorEvent

T0 = 1_781_528_400_000
MB = 1024 * 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sensors", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=10_000)
    args = ap.parse_args(argv)
    rng = random.Random(1)
    names = [f"ns-{i:06d}" for i in range(args.sensors)]
    tracemalloc.start()
    det = SensorAnomalyDetector({"noise": BaselineParams(warmup_readings=3, min_scale=0.5)})
    out: list[Alert] = []
    rates = []
    for r in range(args.rounds):
        events = [
            SensorEvent(T0 + r * 60_000 + i % 50_000, n, "noise", rng.gauss(55, 1.5))
            for i, n in enumerate(names)
        ]
        t = time.perf_counter()
        for k in range(0, len(events), args.batch):
            for ev in events[k : k + args.batch]:
                det.on_event(ev, out)
            det.on_watermark(T0 + r * 60_000, out)
        rates.append(len(events) / (time.perf_counter() - t))
    gc.collect()
    traced, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    bank = det.bank("noise")
    snap = len(pickle.dumps(det, protocol=pickle.HIGHEST_PROTOCOL))
    print(f"per-sensor detector, {args.sensors:,} sensors x {args.rounds} readings:")
    print(
        f"  arrays {bank.nbytes() / MB:.1f} MB ({bank.nbytes() / len(bank):.0f} B/sensor at "
        f"capacity {bank.field('n').shape[0]:,}); snapshot {snap / MB:.1f} MB; "
        f"traced Python memory after the run {traced / MB:.1f} MB "
        "(includes the last round's events)"
    )
    print(
        f"  readings/s per round (first round allocates): "
        f"{', '.join(f'{x:,.0f}' for x in rates)}; median of rounds 2+ "
        f"{statistics.median(rates[1:] or rates):,.0f}"
    )
    # peer stage: household meters
    kinds = ("water", "power", "gas")
    peer = PeerGroupDetector(PeerParams())
    dwellings = args.sensors // 3
    meters = [(f"hh-e{d % 2000:04d}-{d:06d}-{k}", k) for d in range(dwellings) for k in kinds]
    t = time.perf_counter()
    pout: list[Alert] = []
    for r in range(2):
        for i, (sid, kind) in enumerate(meters):
            peer.on_event(
                SensorEvent(T0 + r * 900_000 + i, sid, kind, rng.uniform(0.01, 0.04)), pout
            )
    peer_rate = 2 * len(meters) / (time.perf_counter() - t)
    psnap = len(pickle.dumps(peer, protocol=pickle.HIGHEST_PROTOCOL))
    print(
        f"peer stage, {len(meters):,} meters ({dwellings:,} dwellings, 2,000 estates): "
        f"snapshot {psnap / MB:.1f} MB, {peer_rate:,.0f} readings/s"
    )
    from river.anomaly import HalfSpaceTrees

    tracemalloc.start()
    hst = HalfSpaceTrees(seed=1)
    for _ in range(600):
        hst.learn_one({"v": rng.random()})
    gc.collect()
    one, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    pickled = len(pickle.dumps(hst))
    print(
        f"river HalfSpaceTrees (defaults), one learned instance: {one / MB:.2f} MB in memory, "
        f"{pickled / MB:.2f} MB pickled -> {args.sensors:,} per-sensor models would take "
        f"{one * args.sensors / MB / 1024:.0f} GB"
    )
    ok = traced < 500 * MB and snap < 500 * MB and psnap < 500 * MB
    print("check:", "ok" if ok else "FAILED: state over 500 MB")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
