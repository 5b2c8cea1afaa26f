"""Dispatch throughput: work orders per second into a real redis-server, pipelined.

Writes generated dispatches through :class:`citywatch.sinks.dispatch.WorkOrderWriter`
(the sink's code path: one Lua upsert per alert that writes the order, its queue
entry, index, due sets and feed, in one pipelined round trip per batch) into an
embedded redis-server on loopback:

* ``new``: every alert opens its own incident -> one work order created each;
* ``merge``: duplicate-heavy traffic, ~13 alerts per incident -> mostly appends;
* ``citywatch.replay``: the ``new`` set again -> every write is an idempotent no-op.

Checks that the number of work orders equals the number of incidents and that
the replay created none; exits 1 otherwise. ``--topologies`` compares one
redis-server with a 3-master Redis Cluster (and one with a replica per master and
``wait_replicas = 1``), side by side in each run; all keys of a prefix share one
hash slot, so a cluster serves one prefix's dispatch from one master.

    python -m citywatch.benchmarks.dispatch_throughput --orders 20000 --runs 3
    python -m citywatch.benchmarks.dispatch_throughput --topologies node cluster cluster-wait
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time

import redis

from citywatch.detectors.alerts import Alert
from citywatch.detectors.incidents import IncidentMerger
from citywatch.flows.config import load_config
from citywatch.replay.incidents_dedup import DedupParams, dedup_traffic
from citywatch.sinks.dispatch import Dispatch, Keys, Route, WorkOrderWriter, connect
from citywatch.sinks.embedded_cluster import EmbeddedRedisCluster
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


TOPOLOGIES = ("node", "cluster", "cluster-wait")


def _keys_per_master(cluster: EmbeddedRedisCluster) -> list[int]:
    """DBSIZE of every master: where the prefix's single hash slot put the keys."""
    out = []
    for node in cluster.live_nodes():
        c = redis.Redis(host="127.0.0.1", port=node.port)
        if c.info("replication")["role"] == "master":
            out.append(int(c.dbsize()))
        c.close()
    return sorted(out, reverse=True)


def _upsert_us(url: str) -> float:
    """The server's mean time per EVALSHA (the upsert script), in microseconds, on the
    node that holds the keys: 1e6 / it bounds one slot's upserts per second."""
    c = redis.Redis.from_url(url.replace("redis+cluster://", "redis://"))
    stats = c.info("commandstats").get("cmdstat_evalsha", {})
    c.close()
    return float(stats.get("usec_per_call", 0.0))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--topologies",
        nargs="+",
        choices=TOPOLOGIES,
        default=["node"],
        help="node: one redis-server; cluster: 3 masters; cluster-wait: 3 masters + 3 "
        "replicas with wait_replicas = 1. Several run side by side, in turn, each run",
    )
    args = ap.parse_args()
    new = _dispatches(_new(args.orders))
    merge_alerts, _ = dedup_traffic(DedupParams(incidents=args.orders // 13, seed=5))
    merge = _dispatches(merge_alerts)
    merge_incidents = len({d.alert.incident for d in merge})
    rows: dict[str, dict[str, list[float]]] = {
        t: {"new": [], "merge": [], "replay": []} for t in args.topologies
    }
    ok = True
    spread: dict[str, list[int]] = {}
    server_us: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        urls: dict[str, str] = {}
        clusters: dict[str, EmbeddedRedisCluster] = {}
        for t in args.topologies:
            if t == "node":
                urls[t] = stack.enter_context(EmbeddedRedis()).url
            else:
                replicas = 1 if t == "cluster-wait" else 0
                clusters[t] = stack.enter_context(EmbeddedRedisCluster(replicas=replicas))
                urls[t] = clusters[t].url
        clients = {t: connect(u) for t, u in urls.items()}
        for run in range(args.runs):
            for t, client in clients.items():
                if t in clusters:
                    clusters[t].flush()
                else:
                    client.flushall()
                wait = 1 if t == "cluster-wait" else 0
                writer = WorkOrderWriter(client, Keys(f"b{run}"), wait_replicas=wait)
                dt, created = _write(writer, new, args.batch)
                rows[t]["new"].append(len(new) / dt)
                ok &= created == len(new)
                dt, created = _write(writer, new, args.batch)
                rows[t]["replay"].append(len(new) / dt)
                ok &= created == 0
                dt, created = _write(writer, merge, args.batch)
                rows[t]["merge"].append(len(merge) / dt)
                ok &= created == merge_incidents
                if t in clusters:
                    spread[t] = _keys_per_master(clusters[t])
                    holder = clusters[t].master_of(Keys(f"b{run}").index())
                    server_us[t] = _upsert_us(f"redis://127.0.0.1:{holder.port}")
                else:
                    server_us[t] = _upsert_us(urls[t])
        for client in clients.values():
            client.close()
    print("| topology | new: work orders/s | merge: alerts/s (orders/s) | replay: alerts/s |")
    print("|---|---|---|---|")
    base = statistics.median(rows[args.topologies[0]]["new"])
    for t, r in rows.items():
        med = {k: statistics.median(v) for k, v in r.items()}
        print(
            f"| {t} | {med['new']:,.0f} ({med['new'] / base:.2f}x) | {med['merge']:,.0f} "
            f"({med['merge'] * merge_incidents / len(merge):,.0f}) | {med['replay']:,.0f} |"
        )
    print(
        f"{len(new):,} new alerts, {len(merge):,} merge alerts into {merge_incidents:,} "
        f"orders; runs: {args.runs}, batch {args.batch}; all runs: "
        + "; ".join(
            f"{t} {k} " + ", ".join(f"{x:,.0f}" for x in v)
            for t, r in rows.items()
            for k, v in r.items()
        )
    )
    for t, sizes in spread.items():
        print(f"{t}: keys per master after the last run {sizes} (one prefix = one hash slot)")
    for t, us in server_us.items():
        print(f"{t}: server time per upsert {us:.1f} us (all runs), <= {1e6 / us:,.0f}/s per slot")
    if not ok:
        print("FAIL: work order counts wrong (duplicates or losses)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
