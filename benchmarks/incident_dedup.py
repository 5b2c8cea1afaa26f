"""Dedup benchmark: duplicate-heavy alert traffic merged into incidents, scored against truth.

Generates traffic where each true incident is reported by several cameras,
sensors and vehicles (:mod:`citywatch.replay.incidents_dedup`), feeds it in arrival order
and batches to :class:`citywatch.detectors.incidents.IncidentMerger` with the shipped
``[incidents]`` config, and reports incident-level precision and recall, side by
side with two baselines: one work order per alert (no merging) and merging
within each alert family only (no ``[incidents.groups]``). Fails (exit 1) when
precision or recall of the shipped config is below ``--min`` (0.97).

    python -m citywatch.benchmarks.incident_dedup --seeds 1 2 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace

from citywatch.detectors.incidents import IncidentMerger, IncidentParams
from citywatch.flows.config import load_config
from citywatch.replay.incidents_dedup import DedupParams, DedupScore, dedup_traffic, score_incidents


def run_merge(params: IncidentParams, seed: int, batch: int) -> tuple[DedupScore, float, int]:
    alerts, truth = dedup_traffic(DedupParams(seed=seed))
    merger = IncidentMerger(params)
    t0 = time.perf_counter()
    out = []
    for i in range(0, len(alerts), batch):
        out += merger.push(alerts[i : i + batch])
    out += merger.flush()
    dt = time.perf_counter() - t0
    return score_incidents([(a.id, v.id) for a, v in out], truth), len(alerts) / dt, merger.late_


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--batch", type=int, default=200, help="alerts per push")
    ap.add_argument("--min", type=float, default=0.97, help="required precision and recall")
    args = ap.parse_args()
    shipped = load_config().incidents
    variants = {"shipped config": shipped, "families only": replace(shipped, groups={})}
    ok = True
    print(
        "| variant | seed | alerts | true incidents | incidents | precision | recall | "
        "complete | merge rate (alerts/s) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    rates: list[float] = []
    for seed in args.seeds:
        for name, params in variants.items():
            s, rate, late = run_merge(params, seed, args.batch)
            print(
                f"| {name} | {seed} | {s.alerts:,} | {s.truth_incidents:,} | "
                f"{s.predicted_incidents:,} | {s.precision:.4f} | {s.recall:.4f} | "
                f"{s.complete / s.truth_incidents:.4f} | {rate:,.0f} |"
            )
            if name == "shipped config":
                rates.append(rate)
                ok &= s.precision >= args.min and s.recall >= args.min and late == 0
        print(
            f"| one work order per alert | {seed} | {s.alerts:,} | {s.truth_incidents:,} | "
            f"{s.alerts:,} | {s.truth_incidents / s.alerts:.4f} | 1.0000 | - | - |"
        )
    print(f"\nmedian merge rate (shipped config): {statistics.median(rates):,.0f} alerts/s")
    if not ok:
        print(f"FAIL: precision or recall below {args.min} (or late alerts)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
