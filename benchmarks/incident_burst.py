"""A burst of absence alerts merged into incidents: the open incidents found by index
(subject, zone, grid cell) against a scan of every open incident.

At the end of a live input every silent truck's ``track.gap`` comes due at once
(~1,500 in the ×1 city mix of ``benchmarks.live_latency``). This merges ``--alerts``
such alerts (distinct trucks spread over ``--km`` square around the city centre,
deadlines within a few seconds, in batches of ``--batch``) with the shipped
``[incidents]`` config, once with the index and once with the scan, alternating,
``--rounds`` times; prints the CPU time of each (medians) and checks that both give
the same incidents.

    python -m citywatch.benchmarks.incident_burst --alerts 1500 --rounds 3
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from citywatch.detectors.alerts import Alert
from citywatch.detectors.incidents import IncidentMerger
from citywatch.flows.config import load_config

T0 = 1_781_528_400_000


def burst(n: int, km: float, seed: int = 7) -> list[Alert]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        t = T0 + rnd.randint(0, 5_000)
        lon = 120.86 + rnd.uniform(-0.5, 0.5) * km / 94.5
        lat = 32.01 + rnd.uniform(-0.5, 0.5) * km / 111.0
        out.append(
            Alert.make(
                "track.gap",
                "yellow",
                f"truck-{i:05d}",
                "vehicle",
                None,
                lon,
                lat,
                ts_ms=t,
                first_ts_ms=t - 300_000,
                evidence={"n": i},
            )  # fmt: skip
        )
    return out


def one(alerts: list[Alert], scan: bool, batch: int) -> tuple[float, list[tuple[str, str]]]:
    m = IncidentMerger(load_config().incidents)
    m.scan = scan
    got = []
    c0 = time.process_time()
    for i in range(0, len(alerts), batch):
        got += m.push(alerts[i : i + batch])
    cpu = time.process_time() - c0
    return cpu, [(a.id, v.id) for a, v in got]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--alerts", type=int, default=1500)
    ap.add_argument("--km", type=float, default=30.0, help="side of the square they lie in")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    alerts = burst(args.alerts, args.km)
    cpu: dict[bool, list[float]] = {True: [], False: []}
    seen: dict[bool, list[tuple[str, str]]] = {}
    for _ in range(args.rounds):
        for scan in (True, False):
            fresh = [Alert(**{f: getattr(a, f) for f in a.__dataclass_fields__}) for a in alerts]
            t, seen[scan] = one(fresh, scan, args.batch)
            cpu[scan].append(t)
    incidents = len({v for _a, v in seen[False]})
    print(
        f"{args.alerts:,} track.gap over {args.km:g} km square, batches of {args.batch}: "
        f"{incidents:,} incidents; CPU median scan {statistics.median(cpu[True]) * 1e3:,.1f} ms, "
        f"index {statistics.median(cpu[False]) * 1e3:,.1f} ms; same output: "
        f"{seen[True] == seen[False]}"
    )
    return 0 if seen[True] == seen[False] else 1


if __name__ == "__main__":
    raise SystemExit(main())
