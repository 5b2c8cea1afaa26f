"""The ``citywatch bench`` report: the aims it is held to, and its Markdown form."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

AIM_EVENTS_PER_S = 100_000
AIM_P99_MS = 250.0
AIM_RSS_MB = 1536.0


def write_report(out: Path, report: dict[str, Any]) -> None:
    """Write the report so far (after every phase: a long run that is stopped keeps
    the figures of the phases it finished)."""
    report["aims"] = _aims(report)
    (out / "report.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    (out / "report.md").write_text(markdown(report))


def _aims(report: dict[str, Any]) -> dict[str, Any]:
    flow = report["flow"]
    aims: dict[str, Any] = {
        "events_per_s": {
            "aim": f">= {AIM_EVENTS_PER_S:,} events/s at --speed max",
            "got": flow["events_per_s"],
            "met": flow["events_per_s"] >= AIM_EVENTS_PER_S,
        },
        "peak_rss": {
            "aim": f"< {AIM_RSS_MB:,.0f} MB (flow process + Redis)",
            "got": round(flow["peak_rss_mb"] + (flow["redis"]["peak_rss_mb"] or 0), 1),
        },
    }
    aims["peak_rss"]["met"] = aims["peak_rss"]["got"] < AIM_RSS_MB
    paced = report.get("paced")
    if paced is not None:
        p99 = paced["latency_ms"]["p99"]
        aims["p99_latency"] = {
            "aim": f"p99 < {AIM_P99_MS:.0f} ms at a paced "
            f"{paced['rate_aimed_per_s']:,.0f} events/s",
            "got": p99,
            "met": p99 is not None and p99 < AIM_P99_MS,
        }
    return aims


# -- the report as Markdown ---------------------------------------------------------


def _kv_table(title: str, counts: dict[str, Any]) -> list[str]:
    if not counts:
        return [f"**{title}**: none", ""]
    rows = [f"**{title}**", "", "| kind | count |", "|---|---:|"]
    rows += [f"| {k} | {v:,} |" for k, v in counts.items()]
    return [*rows, ""]


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:,.1f}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown (what ``citywatch bench`` prints)."""
    rec, flow, m = report["recording"], report["flow"], report["machine"]
    out = [
        f"# citywatch bench — {report['date']}",
        "",
        f"- recording: {', '.join(rec['paths'])}: {rec['lines']:,} lines over "
        f"{rec['event_span_s'] / 60:,.1f} min of event time "
        f"({rec['events_per_s_of_event_time']:,.0f} events/s)",
        f"- commit {report['commit'] or '-'}; {m['cpus']} CPUs; load average before "
        f"{m['load_avg_before'][0]}, after the max run {flow['load_avg_after'][0]}; "
        f"Python {m['python']}; batch size {report['batch_size']:,}, {report['shards']} shards",
        f"- command: `{report['command']}`" if report["command"] else "",
        "",
        "## Throughput and memory",
        "",
        "| run | events | seconds | events/s | peak RSS MB | Redis peak RSS MB | alerts "
        "| work orders |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    runs = [("flow, --speed max", flow)]
    if "baseline" in report:
        runs.append(("baseline (no Bytewax)", report["baseline"]))
    if "paced" in report:
        runs.append((f"flow, paced ×{report['paced']['speed']}", report["paced"]))
    for name, r in runs:
        out.append(
            f"| {name} | {r['events']:,} | {r['seconds']:.1f} | {r['events_per_s']:,} | "
            f"{_fmt(r['peak_rss_mb'])} | {_fmt(r['redis']['peak_rss_mb'])} | "
            f"{r['alerts']:,} | {r['work_orders']:,} |"
        )
    out.append("")
    if "baseline" in report:
        b = report["baseline"]
        out += [
            f"Flow / baseline events/s: **{_fmt(b['flow_over_baseline'])}**; same alerts: "
            f"{'yes' if b['same_alerts'] else 'NO'} ({len(b['only_flow'])} only in the flow, "
            f"{len(b['only_baseline'])} only in the baseline, first 20 listed in the JSON); "
            f"{b['distinct_keys']:,} distinct keys (entities, sensors, cameras) in the "
            f"recording; the baseline's detectors held {b['live_keys_at_end']:,} per-detector "
            "keys at the end.",
            "",
        ]
    if "paced" in report:
        p = report["paced"]
        lat = p["latency_ms"]
        out += [
            "## Latency, ingest to work order",
            "",
            f"Paced at {p['rate_aimed_per_s']:,.0f} events/s (speed ×{p['speed']}), "
            f"{p['events']:,} events in {p['seconds']:.1f} s ({p['events_per_s']:,}/s achieved).",
            "",
            "| alerts measured | p50 ms | p95 ms | p99 ms | max ms |",
            "|---:|---:|---:|---:|---:|",
            f"| {lat['count']:,} | {_fmt(lat['p50'])} | {_fmt(lat['p95'])} | "
            f"{_fmt(lat['p99'])} | {_fmt(lat['max'])} |",
            "",
        ]
    out += ["## Detections (flow, --speed max)", ""]
    out += _kv_table("Alerts by kind", flow["alerts_by_kind"])
    out += _kv_table("Incidents by kind (of the opening alert)", flow["incidents_by_kind"])
    out += _kv_table("Work orders by kind", flow["work_orders_by_kind"])
    out.append(f"Dead letters: {flow['dead_letters']:,}; late events: {flow['late']:,}.")
    out.append("")
    q = report.get("quality")
    if q is not None:
        out += [
            "## Quality against the truth",
            "",
            f"{q['incidents_injected']} injected incidents in `{q['truth']}`; "
            f"{len(q['missed'])} missed, {q['false_alerts']} false alerts. Overall: "
            + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in q.get("overall", {}).items()),
            "",
            "| kind | incidents | found | alerts | true alerts | precision | recall |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for kind, s in q["per_kind"].items():
            out.append(
                f"| {kind} | {s['incidents']} | {s['found']} | {s['alerts']} | "
                f"{s['true_alerts']} | {s['precision']:.3f} | {s['recall']:.3f} |"
            )
        out.append("")
        out += [f"- missed: {x}" for x in q["missed"][:20]]
        out += [f"- false: {x}" for x in q["false_alert_examples"]]
        out.append("")
    out += ["## Aims", "", "| aim | got | met |", "|---|---:|---|"]
    for a in report["aims"].values():
        out.append(f"| {a['aim']} | {_fmt(a['got'])} | {'yes' if a['met'] else 'no'} |")
    out.append("")
    return "\n".join(out)
