"""End-to-end throughput of ``citywatch replay --speed max`` on a large recording.

Generates (once) a recording of about one million events at the ``medium``
scale, then replays it ``--runs`` times, each into a fresh embedded Redis, and
reports the median events/s. Every run's alerts are checked against the truth
file: a run that misses an injected incident or raises a false alert fails
the benchmark instead of reporting a number.

    python -m citywatch.benchmarks.replay_throughput --runs 3
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import orjson

from citywatch.flows.config import load_config
from citywatch.flows.runner import load_reference, redis_for, run_recordings
from citywatch.replay.generator import GenParams, generate
from citywatch.replay.truth import load_truth, score


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=int, default=400, help="medium-scale minutes (~2.5k ev/min)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=Path("out/bench"))
    args = ap.parse_args(argv)

    cfg = load_config()
    ref = load_reference(cfg)
    rec = args.workdir / f"medium-{args.minutes}m-s{args.seed}.jsonl"
    truth_path = rec.with_suffix(".truth.json")
    if not rec.exists() or not truth_path.exists():
        t0 = time.perf_counter()
        generate(
            ref, GenParams(minutes=args.minutes, seed=args.seed, scale="medium"), rec, truth_path
        )
        print(f"generated {rec} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    truth = load_truth(truth_path)
    rates: list[float] = []
    for i in range(args.runs):
        alerts_out = args.workdir / f"alerts-{i}.jsonl"
        with redis_for(cfg) as (url, _):
            result = run_recordings(
                [rec], cfg, url, alerts_out=alerts_out, progress=False, reference=ref
            )
        alerts = [orjson.loads(x) for x in alerts_out.read_bytes().splitlines() if x]
        sc = score(alerts, truth)
        if sc.missed or sc.false_alerts:
            print(
                f"run {i}: {len(sc.missed)} missed, {len(sc.false_alerts)} false alerts",
                file=sys.stderr,
            )
            return 1
        rates.append(result.events_per_s)
        print(
            f"run {i}: {result.stats.events_in:,} events in {result.seconds:.2f}s = "
            f"{result.events_per_s:,.0f} ev/s, {sum(result.stats.work_orders.values())} "
            "work orders, all incidents found, no false alerts"
        )
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    print(
        f"median {statistics.median(rates):,.0f} ev/s over {len(rates)} runs "
        f"(min {min(rates):,.0f}, max {max(rates):,.0f}); commit {commit or '-'}; "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{platform.machine()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
