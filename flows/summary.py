"""End-of-run summaries: what came in, what was rejected, what went where."""

from __future__ import annotations

from pathlib import Path

import orjson

from citywatch.flows.config import Config
from citywatch.flows.runner import RunResult
from citywatch.sinks.dispatch import Keys


def _table(title: str, counts: dict[str, int], indent: str = "  ") -> list[str]:
    if not counts:
        return [f"{title}: none"]
    width = max(len(k) for k in counts)
    lines = [f"{title}:"]
    for key, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"{indent}{key:<{width}}  {n:>8,}")
    return lines


def summary_lines(result: RunResult, cfg: Config, embedded: bool) -> list[str]:
    s = result.stats
    keys = Keys(cfg.redis.prefix)
    lines = [
        f"events: {s.events_in:,} in {result.seconds:.1f}s ({result.events_per_s:,.0f}/s); "
        f"accepted {sum(s.events_ok.values()):,} "
        f"({', '.join(f'{k} {v:,}' for k, v in sorted(s.events_ok.items()))}), "
        f"late {s.late:,}",
    ]
    lines += _table("dead letters by reason", dict(s.dead))
    lines += _table("alerts by kind", dict(s.alerts))
    lines += _table("work orders by queue (centre|department)", dict(s.work_orders))
    n_alerts, n_orders = sum(s.alerts.values()), sum(s.work_orders.values())
    if n_orders:
        lines.append(
            f"incidents: {n_alerts:,} alerts merged into {n_orders:,} new work orders "
            f"({n_alerts / n_orders:.1f} alerts per order)"
        )
    if s.repeats:
        lines.append(f"repeat deliveries ignored (idempotent): {s.repeats:,}")
    host = result.redis_url.split("@")[-1].removeprefix("redis://").split("/")[0]
    hostname, _, port = host.partition(":")
    cli = f"redis-cli -h {hostname} -p {port or 6379}"
    lines += [
        f"Redis: {result.redis_url.split('@')[-1]}" + (" (embedded)" if embedded else ""),
        "inspect it with:",
        f"  {cli} --scan --pattern '{keys.queue_pattern()}'     # the receiving queues",
        f"  {cli} XRANGE '{keys.queue('CENTRE|DEPT')}' - +        # one queue's work orders",
        f"  {cli} HGETALL '{keys.wo('WO-ID')}'                    # one work order",
        f"  {cli} XRANGE '{keys.audit('WO-ID')}' - +               # its audit trail",
        f"  {cli} LRANGE '{keys.alerts('WO-ID')}' 0 -1             # its alerts (evidence)",
        "  citywatch officer --centre CENTRE --dept DEPT             # a duty officer's queue",
        "  citywatch report                                          # accountability",
        f"  {cli} XREVRANGE '{keys.dlq()}' + - COUNT 5          # latest dead letters",
    ]
    return lines


def print_summary(
    result: RunResult,
    cfg: Config,
    embedded: bool,
    *,
    alerts_out: Path | None = None,
    truth: Path | None = None,
) -> None:
    for line in summary_lines(result, cfg, embedded):
        print(line)
    if truth is not None and alerts_out is not None and alerts_out.exists():
        from citywatch.replay.truth import load_truth, score

        alerts = [orjson.loads(x) for x in alerts_out.read_bytes().splitlines() if x]
        sc = score(alerts, load_truth(truth))
        print("detection quality against the truth file:")
        for kind, ks in sorted(sc.per_kind.items()):
            print(
                f"  {kind:<20} found {ks.found}/{ks.incidents} incidents, "
                f"{ks.true_alerts}/{ks.alerts} alerts true "
                f"(precision {ks.precision:.2f}, recall {ks.recall:.2f})"
            )
        for inc in sc.missed:
            print(f"  MISSED {inc['id']} {inc['kind']} {inc['subject']} ({inc['note']})")
        for a in sc.false_alerts[:10]:
            print(f"  FALSE  {a['kind']} {a['subject']} zone={a['zone']} at {a['ts']}")
    if embedded:
        print("(the embedded Redis stops now: set CITYWATCH_REDIS_URL to keep the results)")
