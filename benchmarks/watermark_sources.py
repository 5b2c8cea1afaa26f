"""Per-source watermarks: events per second of :class:`Watermarker.observe` as the number
of sources (gateways) in one partition grows, beside the walk over every source that the
bisect replaced (same verdicts; ``tests/detectors/test_watermark.py`` checks that).

    python -m citywatch.benchmarks.watermark_sources [--events 200000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from citywatch.detectors.watermark import Watermarker


class _Walking(Watermarker):
    __slots__ = ()

    def _advance_by_time(self) -> None:
        self.advance()


def _rate(cls: type[Watermarker], sources: int, events: int) -> float:
    wm = cls(30_000)
    names = [f"gw-{i}" for i in range(sources)]
    rnd = random.Random(1)
    t = 0
    t0 = time.perf_counter()
    for i in range(events):
        t += rnd.randint(0, 20)
        wm.observe(t, names[i % sources])
    return events / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print("| sources | bisect ev/s (median) | walk ev/s (median) | ratio |")
    print("|---:|---:|---:|---:|")
    for sources in (3, 100, 2000):
        walk_events = args.events if sources < 1000 else args.events // 10
        fast = statistics.median(
            _rate(Watermarker, sources, args.events) for _ in range(args.repeat)
        )
        slow = statistics.median(_rate(_Walking, sources, walk_events) for _ in range(args.repeat))
        print(f"| {sources:,} | {fast:,.0f} | {slow:,.0f} | {fast / slow:.1f}x |")


if __name__ == "__main__":
    main()
