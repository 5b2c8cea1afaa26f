"""Track detectors at 1 k, 10 k and 100 k live keys: events/s and memory per key.

For each track detector (``track.stop``, ``track.gap``, ``track.speeding``,
``track.rendezvous`` with both halves in one process, and the teleport filter)
and each key count N, a fresh detector gets ``--warm`` rounds of one fix per
vehicle (so N keys are live), then ``--rounds`` timed rounds, with a watermark
every 1,000 fixes, as the shards see them. Every vehicle sees the same
fixes whatever N, so only the number of live keys differs; for small N, more
detectors are timed in turn until ``--events`` fixes were timed. Vehicles come
in tanker/truck pairs 12 m apart; half the pairs drive at 30-60 km/h, half
stand still, jittering (these feed stop spans to the rendezvous matcher).
Memory per key is the tracemalloc delta over all rounds divided by N.

It checks its own output: every detector must hold exactly N live keys after
the warm-up (so the state really is per key), memory per key must stay under
4 KiB, and the events/s of each repeat are reported with the median and the
100 k / 1 k ratio (the aim: within 20 %).

    python -m citywatch.benchmarks.track_keys --events 200000 --repeat 3
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable

from citywatch.detectors.alerts import Alert
from citywatch.detectors.base import Detector
from citywatch.detectors.events import DeadLetter, Event, GpsEvent
from citywatch.detectors.track import StopDetector, StopParams
from citywatch.detectors.tracks_gap import GapDetector, GapParams
from citywatch.detectors.tracks_jump import JumpFilter, JumpParams
from citywatch.detectors.tracks_rendezvous import RendezvousDetector, RendezvousParams
from citywatch.detectors.tracks_speeding import SpeedingDetector, SpeedingParams

T0 = 1_767_225_600_000
PERIOD_MS = 15_000


class _Gate(Detector):
    """The teleport filter behind the detector interface, to time it alike."""

    event_type = "gps"

    def __init__(self) -> None:
        self.f = JumpFilter(JumpParams())
        self._dead: list[DeadLetter] = []
        self._one: list[Event] = [GpsEvent(0, "", 0.0, 0.0)]

    def on_event(self, ev: Event, out: list[Alert]) -> None:
        self._one[0] = ev
        self.f.admit(self._one, self._dead)

    def on_watermark(self, wm_ms: int, out: list[Alert]) -> None:
        self.f.on_watermark(wm_ms)

    def live_keys(self) -> int:
        return self.f.live_keys()


DETECTORS: dict[str, Callable[[], Detector]] = {
    "track.stop": lambda: StopDetector(StopParams(), {}),
    "track.gap": lambda: GapDetector(GapParams()),
    "track.speeding": lambda: SpeedingDetector(SpeedingParams(), {}),
    "track.rendezvous": lambda: RendezvousDetector(RendezvousParams(), {}),
    "gps.jump (filter)": _Gate,
}


def round_fixes(n_keys: int, rnd: int) -> list[GpsEvent]:
    """One fix for each of ``n_keys`` vehicles, round ``rnd`` (15 s of event time each).

    Vehicles come in pairs 12 m apart (a tanker and a hazmat truck), pairs 1 km
    apart on a grid, so the density around each vehicle, and with it the work
    per fix, is the same at any key count. Even pairs drive, odd pairs stand.
    """
    out: list[GpsEvent] = []
    for i in range(n_keys):
        pair = i // 2
        base_lon = 120.0 + (pair % 500) * 0.01 + (i % 2) * 0.000127
        base_lat = 30.0 + (pair // 500) * 0.01
        wiggle = ((i * 7 + rnd * 13) % 11 - 5) * 1e-5
        if pair % 2 == 0:
            lon, kmh = base_lon + rnd * 0.002, 30.0 + (pair % 31)
        else:
            lon, kmh = base_lon + wiggle, 0.0
        ts = T0 + rnd * PERIOD_MS + (pair * 997) % PERIOD_MS + (i % 2) * 100
        cls = "tanker" if i % 2 == 0 else "hazmat_truck"
        out.append(GpsEvent(ts, f"v-{i:06d}", lon, base_lat + wiggle, cls, kmh))
    return out


def feed(det: Detector, events: list[GpsEvent], wm_every: int = 1000) -> int:
    out: list[Alert] = []
    on_event, on_wm = det.on_event, det.on_watermark
    for k, ev in enumerate(events):
        on_event(ev, out)
        if k % wm_every == wm_every - 1 or k == len(events) - 1:
            on_wm(ev.ts_ms - 30_000, out)
    return len(out)


def measure(name: str, n_keys: int, min_events: int, warm: int, timed: int) -> float:
    """Events/s over rounds ``warm .. warm + timed`` of fresh detectors holding ``n_keys``
    keys each, as many detectors as it takes to time ``min_events`` fixes."""
    instances = -(-min_events // (n_keys * timed))
    seconds, events = 0.0, 0
    for _ in range(instances):
        det = DETECTORS[name]()
        for rnd in range(warm):
            feed(det, round_fixes(n_keys, rnd))
        if det.live_keys() != n_keys:
            msg = f"{name}: expected {n_keys} live keys after warm-up, got {det.live_keys()}"
            raise SystemExit(msg)
        for rnd in range(warm, warm + timed):
            batch = round_fixes(n_keys, rnd)
            t0 = time.perf_counter()
            feed(det, batch)
            seconds += time.perf_counter() - t0
            events += len(batch)
    return events / seconds


def memory_per_key(name: str, n_keys: int, rounds: int) -> float:
    batches = [round_fixes(n_keys, rnd) for rnd in range(rounds)]
    gc.collect()
    tracemalloc.start()
    det = DETECTORS[name]()
    before = tracemalloc.get_traced_memory()[0]
    for batch in batches:
        feed(det, batch)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / n_keys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000, help="timed fixes per measurement")
    ap.add_argument("--warm", type=int, default=4, help="untimed rounds of fixes first")
    ap.add_argument("--rounds", type=int, default=12, help="timed rounds (15 s each)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keys", default="1000,10000,100000")
    ap.add_argument("--only", default="", help="comma-separated detector names")
    args = ap.parse_args(argv)
    sizes = [int(k) for k in args.keys.split(",")]
    names = [n for n in DETECTORS if not args.only or n in args.only.split(",")]
    print(
        "| detector | "
        + " | ".join(f"{n:,} keys ev/s" for n in sizes)
        + f" | {sizes[-1] // 1000} k / {sizes[0] // 1000} k | bytes/key at {sizes[-1]:,} |"
    )
    print("|---|" + "---|" * (len(sizes) + 2))
    ok = True
    for name in names:
        # Sizes alternate within each repeat, so drift in machine load hits all alike.
        runs: dict[int, list[float]] = {n: [] for n in sizes}
        for _ in range(args.repeat):
            for n in sizes:
                runs[n].append(measure(name, n, args.events, args.warm, args.rounds))
        medians = [statistics.median(runs[n]) for n in sizes]
        for n in sizes:
            print(f"  {name} {n} keys: " + ", ".join(f"{r:,.0f}" for r in runs[n]), file=sys.stderr)
        mem = memory_per_key(name, sizes[-1], args.warm + args.rounds)
        if mem > 4096:
            print(f"{name}: {mem:.0f} bytes per key is over the 4 KiB bound", file=sys.stderr)
            ok = False
        ratio = medians[-1] / medians[0]
        print(
            f"| {name} | "
            + " | ".join(f"{m:,.0f}" for m in medians)
            + f" | {ratio:.2f} | {mem:,.0f} |",
            flush=True,
        )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
