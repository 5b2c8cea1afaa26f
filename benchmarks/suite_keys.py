"""Peak RSS of one detection shard's whole suite at 10 k, 100 k and 1 M live keys.

Each key count runs in a fresh process: the suite of the bundled config
(``DetectorSuite.from_config``: every track, sensor, video and anomaly detector,
the teleport gate and the rendezvous span reporter) gets ``--rounds`` rounds of
one event per key, in batches of 5,000 with a watermark (event time minus 30 s)
after each, as a shard sees them. Keys are a city's mix: one in 15 a vehicle
(GPS fix every 30 s, half of them driving), the rest fixed sensors of four kinds
(one reading a minute, noisy levels under their limits). Events are made per
batch, so the input holds no memory. Reported per N: peak RSS (``VmHWM``), the
RSS of the same process before the first event (interpreter, numpy, the
reference data), their difference per key, and events/s.

    python -m citywatch.benchmarks.suite_keys --keys 10000 100000 1000000
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from collections.abc import Iterator

from citywatch.detectors.alerts import Alert
from citywatch.detectors.events import Event, GpsEvent, SensorEvent
from citywatch.flows.config import load_config
from citywatch.flows.detect import DetectorSuite
from citywatch.flows.runner import load_reference

T0 = 1_781_524_800_000
BATCH = 5_000
KINDS = ("pm25", "water_level", "noise", "pm10")


def _vm(field: str) -> int:
    """``VmHWM`` / ``VmRSS`` of this process in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def events(n_keys: int, rounds: int) -> Iterator[list[Event]]:
    """Batches of events: ``rounds`` rounds of one event per key, keys interleaved."""
    rng = random.Random(n_keys)
    vehicles = n_keys // 15
    step = 60_000 / n_keys
    batch: list[Event] = []
    for rnd in range(rounds):
        for i in range(n_keys):
            ts = T0 + rnd * 60_000 + int(i * step)
            if i < vehicles:
                drive = i % 2 == 0
                lon = 120.8 + (i % 1000) * 0.0005 + (rnd * 0.002 if drive else 0.0)
                lat = 31.95 + (i // 1000) * 0.0005
                speed = 40.0 if drive else 0.0
                batch.append(GpsEvent(ts, f"v-{i:07d}", lon, lat, "muck_truck", speed))
            else:
                kind = KINDS[i % len(KINDS)]
                value = round(20.0 + rng.gauss(0, 2.0), 3)
                batch.append(SensorEvent(ts, f"s-{kind}-{i:07d}", kind, value, 120.9, 32.0))
            if len(batch) == BATCH:
                yield batch
                batch = []
    if batch:
        yield batch


def one(n_keys: int, rounds: int) -> dict[str, float]:
    cfg = load_config()
    ref = load_reference(cfg)
    suite = DetectorSuite.from_config(cfg, ref.zone_catalog())
    base = _vm("VmRSS")
    out: list[Alert] = []
    n = 0
    t0 = time.perf_counter()
    for batch in events(n_keys, rounds):
        ref.annotate(batch)
        suite.process(batch, batch[-1].ts_ms - 30_000, out)
        n += len(batch)
    elapsed = time.perf_counter() - t0
    peak = _vm("VmHWM")
    return {
        "keys": n_keys,
        "live_keys": suite.live_keys(),
        "events": n,
        "ev_s": n / elapsed,
        "base_mb": base / 2**20,
        "peak_mb": peak / 2**20,
        "bytes_per_key": (peak - base) / n_keys,
        "alerts": len(out),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keys", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--rounds", type=int, default=3, help="events per key")
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one is not None:
        print(json.dumps(one(args.one, args.rounds)))
        return 0
    print(
        "| keys | live keys (sum over detectors) | events | ev/s | RSS before | peak RSS | "
        "(peak - before) / key |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n in args.keys:
        cmd = [sys.executable, "-m", "citywatch.benchmarks.suite_keys", "--one", str(n)]
        res = subprocess.run(
            [*cmd, "--rounds", str(args.rounds)], capture_output=True, text=True, check=True
        )
        r = json.loads(res.stdout.strip().splitlines()[-1])
        print(
            f"| {n:,} | {r['live_keys']:,} | {r['events']:,} | {r['ev_s']:,.0f} | "
            f"{r['base_mb']:,.0f} MB | {r['peak_mb']:,.0f} MB | {r['bytes_per_key']:,.0f} B |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
