"""Sensor and video detectors at 1 k, 10 k and 100 k live keys: events/s and memory per key.

For each detector (``sensor.threshold``, ``sensor.rate``, ``sensor.window``,
``sensor.offline``, ``sensor.stuck``, the video rules) and each key count N,
the script first gives each of N sensors (cameras) ``--warm-rounds`` events
(25: past the rate's 20-minute minimum span), so N keys are live and their
windows hold data, then times ``--events`` further events, but at least ten
per key (ten minutes of event time, so every key's sliding window closes once
and the work per event is the same at any N), round-robin over the N keys,
each key reading once a minute, with a watermark (event time minus 30 s)
every 1,000 events, as the shards see them. Readings are noisy levels that mostly stay
under the limits, as in normal traffic. Memory per key is the tracemalloc
delta of the warm-up divided by N, in a separate pass at 10 k keys.

A first row times a bare ``dict`` store per event over the same keys, the
floor set by memory alone, to read the detectors' ratios against.

It checks its own output: every detector must hold exactly N live keys after
the warm-up (the state really is per key; ``sensor.threshold`` holds none, as
it keeps state only while a sensor is over its limit), memory per key must stay under
4 KiB, the sliding window must have judged windows (timers fired), and the
events/s of each repeat are reported with the median and the 100 k / 1 k
ratio (the aim: within 20 %).

    python -m citywatch.benchmarks.sensor_keys --events 200000 --repeat 3
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterable, Iterator

from citywatch.detectors.alerts import Alert
from citywatch.detectors.base import Detector, ZoneMeta
from citywatch.detectors.events import Event, SensorEvent, VideoEvent
from citywatch.detectors.sensor import ThresholdDetector, ThresholdParams
from citywatch.detectors.sensor_health import (
    OfflineDetector,
    OfflineParams,
    StuckDetector,
    StuckParams,
)
from citywatch.detectors.sensor_rate import RateDetector, RateParams
from citywatch.detectors.sensor_window import WindowDetector, WindowParams
from citywatch.detectors.video import VideoRule, VideoRuleDetector

T0 = 1_781_524_800_000
PERIOD_MS = 60_000
MIN_TIMED_ROUNDS = 10  # one slide of the hourly window: it closes once per key
ZONES = {"ap": ZoneMeta("ap", "airport_site"), "nf": ZoneMeta("nf", "no_fishing")}


class _DictFloor(Detector):
    """The floor: one plain ``dict`` look-up and store per event, no detection at all.
    Its own 100 k / 1 k ratio shows what memory (cache misses) alone costs."""

    event_type = "sensor"

    def __init__(self) -> None:
        self._d: dict[str, float] = {}

    def on_event(self, ev: Event, out: list[Alert]) -> None:
        if isinstance(ev, SensorEvent):
            self._d[ev.sensor] = ev.value

    def live_keys(self) -> int:
        return len(self._d)


DETECTORS: dict[str, Callable[[], Detector]] = {
    "(floor: dict look-up)": _DictFloor,
    "sensor.threshold": lambda: ThresholdDetector(
        {"pm10": ThresholdParams(limit=150.0, clear_at=120.0, min_readings=3)}
    ),
    "sensor.rate": lambda: RateDetector(
        {"pm10": RateParams(window_s=1800, rise_per_h=200.0, min_readings=15, min_span_s=1200)}
    ),
    "sensor.window": lambda: WindowDetector(
        {
            "pm10": [
                WindowParams(
                    size_s=3600, slide_s=600, limit=115.0, min_readings=40, allowed_lateness_s=60
                )
            ]
        }
    ),
    "sensor.offline": lambda: OfflineDetector({"pm10": OfflineParams(silent_s=900)}),
    "sensor.stuck": lambda: StuckDetector({"pm10": StuckParams(min_readings=15)}),
    "video rules": lambda: VideoRuleDetector(
        (
            VideoRule(
                kind="video.construction", labels=("excavator",), zone_kinds=("airport_site",)
            ),
            VideoRule(kind="video.fishing", labels=("fishing",), zone_kinds=("no_fishing",)),
        ),
        ZONES,
    ),
}


def events_for(name: str, n_keys: int, n_events: int, start_round: int) -> Iterator[Event]:
    """``n_events`` events round-robin over ``n_keys`` keys, one per key per minute."""
    rng = random.Random(n_keys * 7919 + start_round)
    step = PERIOD_MS / n_keys
    video = name == "video rules"
    labels = ("fishing", "excavator", "bird", "boat")
    names = [f"{'cam' if video else 'pm'}-{i:06d}" for i in range(n_keys)]
    for j in range(n_events):
        rnd, i = divmod(j, n_keys)
        ts = T0 + (start_round + rnd) * PERIOD_MS + int(i * step)
        if video:  # every camera sees its zone's rule label every other minute
            zone = "ap" if i % 2 else "nf"
            label = labels[i % 2] if (start_round + rnd + i) % 2 == 0 else labels[2 + i % 2]
            conf = round(0.6 + 0.4 * rng.random(), 3)
            yield VideoEvent(ts, names[i], label, conf, zones=(zone,))
        else:
            value = round(60.0 + rng.gauss(0, 8.0), 3)
            yield SensorEvent(ts, names[i], "pm10", value, zones=("ap",))


def feed(det: Detector, events: Iterable[Event]) -> int:
    out: list[Alert] = []
    on_event, on_wm = det.on_event, det.on_watermark
    for k, ev in enumerate(events, 1):
        on_event(ev, out)
        if k % 1000 == 0:
            on_wm(ev.ts_ms - 30_000, out)
    return len(out)


def warm(name: str, n_keys: int, rounds: int) -> tuple[Detector, int]:
    det = DETECTORS[name]()
    feed(det, events_for(name, n_keys, n_keys * rounds, 0))
    return det, rounds


def rate(name: str, n_keys: int, n_events: int, rounds: int) -> tuple[float, int]:
    """Events/s over at least ``MIN_TIMED_ROUNDS`` minutes of event time (so windows
    close and timers fire as often per event at any key count), and the events timed."""
    det, start = warm(name, n_keys, rounds)
    # sensor.threshold keeps state only while a sensor is over its limit (none here).
    if det.live_keys() != (0 if name == "sensor.threshold" else n_keys):
        msg = f"{name}: {det.live_keys()} live keys after the warm-up, expected {n_keys}"
        raise SystemExit(msg)
    n_events = max(n_events, n_keys * MIN_TIMED_ROUNDS)
    events = list(events_for(name, n_keys, n_events, start))
    gc.collect()
    t0 = time.perf_counter()
    feed(det, events)
    elapsed = time.perf_counter() - t0
    if name == "sensor.window" and isinstance(det, WindowDetector) and not len(det._timers):
        msg = "sensor.window: no pending window timers: windows are not being scheduled"
        raise SystemExit(msg)
    return n_events / elapsed, n_events


def memory_per_key(name: str, n_keys: int, rounds: int) -> float:
    events = list(events_for(name, n_keys, n_keys * rounds, 0))
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    det = DETECTORS[name]()
    feed(det, events)
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    del det
    return used / n_keys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000, help="timed events per run")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keys", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    ap.add_argument(
        "--warm-rounds", type=int, default=25, help="events (minutes) per key before timing"
    )
    ap.add_argument("--only", nargs="*", default=None, help="detector names to run")
    args = ap.parse_args(argv)
    names = args.only or list(DETECTORS)
    print(
        "| detector | "
        + " | ".join(f"{k:,} keys (ev/s)" for k in args.keys)
        + f" | {args.keys[-1]:,} / {args.keys[0]:,} | bytes/key (10 k) |"
    )
    print("|---|" + "---:|" * (len(args.keys) + 2))
    worst = 1.0
    for name in names:
        medians: list[float] = []
        cells: list[str] = []
        for n in args.keys:
            timed = [rate(name, n, args.events, args.warm_rounds) for _ in range(args.repeat)]
            runs = [r for r, _ in timed]
            med = statistics.median(runs)
            medians.append(med)
            cells.append(f"{med:,.0f} ({min(runs):,.0f}–{max(runs):,.0f})")
        mem = memory_per_key(name, 10_000, args.warm_rounds)
        if mem > 4096:
            print(f"{name}: {mem:,.0f} bytes per key is over the 4 KiB budget", file=sys.stderr)
            return 1
        ratio = medians[-1] / medians[0]
        if not name.startswith("("):  # the floor row is a reference, not a detector
            worst = min(worst, ratio)
        print(f"| {name} | " + " | ".join(cells) + f" | {ratio:.2f} | {mem:,.0f} |", flush=True)
    print(f"\nworst {args.keys[-1]:,} / {args.keys[0]:,} ratio: {worst:.2f} (aim: >= 0.80)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
