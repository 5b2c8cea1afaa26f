"""Dispatch throughput: work orders per second into a real redis-server, pipelined.

Writes generated dispatches through :class:`citywatch.sinks.dispatch.WorkOrderWriter`
(the sink's code path: one Lua upsert per alert that writes the order, its queue
entry, index, due sets and feed, in one pipelined round trip per batch) into an
embedded redis-server on loopback:

* ``new``: every alert opens its own incident -> one work order created each;
* ``merge``: duplicate-heavy traffic, ~13 alerts per incident -> mostly appends;
* ``citywatch.replay``: the ``new`` set again -> every write is an idempotent no-op.

Checks that the number of work orders equals the number of incidents and that
the replay created none; exits 1 otherwise.

    python -m citywatch.benchmarks.dispatch_throughput --orders 20000 --runs 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from citywatch.detectors.alerts import Alert
from citywatch.detectors.incidents import IncidentMerger
from citywatch.flows.config import load_config
from citywatch.replay.incidents_dedup import DedupParams, dedup_traffic
from citywatch.sinks.dispatch import Dispatch, Keys, Route, WorkOrderWriter, connect
from citywatch.sinks.embedded_redis import EmbeddedRedis

T0 = 1_781_528_400_000


def _new(n: int) -> list[Alert]:
    return [
        Alert.make(
            "video.intrusion",
            "yellow",
            f"cam-{i}",
            "video",
            None,
            120.3 + (i % 150) * 0.01,
            31.7 + (i // 150) * 0.01,
            ts_ms=T0 + i * 1000,
            first_ts_ms=T0 + i * 1000,
            evidence={"i": i},
        )
        for i in range(n)
    ]


def _dispatches(alerts: list[Alert]) -> list[Dispatch]:
    merger = IncidentMerger(load_config().incidents)
    pairs = merger.push(alerts) + merger.flush()
    return [
        Dispatch(a, Route("town:x", "public_security", "town", "town:x"), 1800, 172800, incident=v)
        for a, v in pairs
    ]


def _write(writer: WorkOrderWriter, ds: list[Dispatch], batch: int) -> tuple[float, int]:
    t0 = time.perf_counter()
    created = 0
    for i in range(0, len(ds), batch):
        created += sum(w.created for w in writer.write(ds[i : i + batch]))
    return time.perf_counter() - t0, created


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    new = _dispatches(_new(args.orders))
    merge_alerts, _ = dedup_traffic(DedupParams(incidents=args.orders // 13, seed=5))
    merge = _dispatches(merge_alerts)
    merge_incidents = len({d.alert.incident for d in merge})
    rows: dict[str, list[float]] = {"new": [], "merge": [], "replay": []}
    ok = True
    with EmbeddedRedis() as server:
        client = connect(server.url)
        for run in range(args.runs):
            client.flushall()
            writer = WorkOrderWriter(client, Keys(f"b{run}"))
            dt, created = _write(writer, new, args.batch)
            rows["new"].append(len(new) / dt)
            ok &= created == len(new)
            dt, created = _write(writer, new, args.batch)
            rows["replay"].append(len(new) / dt)
            ok &= created == 0
            dt, created = _write(writer, merge, args.batch)
            rows["merge"].append(len(merge) / dt)
            ok &= created == merge_incidents
        client.close()
    print("| case | alerts | work orders created | median alerts/s | median work orders/s |")
    print("|---|---|---|---|---|")
    med = {k: statistics.median(v) for k, v in rows.items()}
    print(
        f"| new (1 alert = 1 order) | {len(new):,} | {len(new):,} | {med['new']:,.0f} | "
        f"{med['new']:,.0f} |"
    )
    print(
        f"| merge (duplicate-heavy) | {len(merge):,} | {merge_incidents:,} | "
        f"{med['merge']:,.0f} | {med['merge'] * merge_incidents / len(merge):,.0f} |"
    )
    print(f"| replay (all repeats) | {len(new):,} | 0 | {med['replay']:,.0f} | - |")
    print(
        f"runs: {args.runs}, batch {args.batch}; all runs: "
        + "; ".join(f"{k} " + ", ".join(f"{x:,.0f}" for x in v) for k, v in rows.items())
    )
    if not ok:
        print("FAIL: work order counts wrong (duplicates or losses)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
