"""``citywatch bench``: how fast, how late, how big and how right, in one command.

Over one recording (``citywatch generate`` writes them, with a truth file):

1. **scan**: count the lines and find the event-time span from the first and
   last lines' times (streaming; the header's ``minutes`` only as a fallback);
2. **max**: the full flow (every detector, the cross-key stages, incidents,
   routing, Redis dispatch) at ``--speed max`` into a fresh Redis: events/s,
   peak RSS of this process and of the Redis server, dead letters, alerts,
   incidents and work orders by kind, precision and recall per alert kind
   against the truth file (``citywatch.replay.truth.score``);
3. **baseline** (``--compare``): ``citywatch.benchmarks.baseline``, the same detections
   as a plain Python loop without Bytewax, into its own fresh Redis, in the
   same run; the ratio of the two and whether they found the same alerts;
4. **paced**: the flow again, paced on event time so that events arrive at
   ``--paced-rate`` events/s (speed = rate / the recording's event rate), over
   the first ``--paced-seconds`` of wall time; latency from the ingest of the
   batch that raised an alert to its work order's write in Redis, for every
   alert: p50, p95, p99, max.

The report is printed as Markdown and written as ``report.json`` and
``report.md`` in ``--out``. Peak RSS per phase: the kernel's high-water mark
(``VmHWM``) is reset before each phase (``/proc/self/clear_refs``), so each
phase's figure is its own; Redis's is read from its process by the pid that
``INFO`` reports (a server on this machine), else ``used_memory_peak``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import platform
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import redis

from citywatch.detectors.events import parse_ts
from citywatch.flows.config import Config
from citywatch.flows.runner import Progress, RunResult, load_reference, redis_for, run_recordings
from citywatch.flows.stats import RunStats
from citywatch.geo.reference import Reference
from citywatch.replay.recording import RecordingWriter, iter_lines, read_header, unwrap
from citywatch.replay.truth import load_truth, score

AIM_EVENTS_PER_S = 100_000
AIM_P99_MS = 250.0
AIM_RSS_MB = 1536.0


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchOptions:
    paths: tuple[Path, ...]
    out: Path
    truth: Path | None = None
    redis_url: str | None = None
    paced_rate: float | None = 10_000.0
    paced_seconds: float = 60.0
    compare: bool = False
    workers: int = 1
    # Input lines per batch for every run (None: the config's [flow] batch_size).
    batch_size: int | None = None
    progress: bool = True
    command: str = ""

    def __post_init__(self) -> None:
        if not self.paths:
            msg = "bench: give at least one recording"
            raise ValueError(msg)
        if self.paced_rate is not None and self.paced_rate <= 0:
            msg = f'bench: "paced_rate" must be > 0 events/s, got {self.paced_rate}'
            raise ValueError(msg)
        if self.batch_size is not None and self.batch_size <= 0:
            msg = f'bench: "batch_size" must be > 0 lines, got {self.batch_size}'
            raise ValueError(msg)
        if self.paced_seconds < 0:
            msg = (
                'bench: "paced_seconds" must be >= 0 (0: the whole recording), '
                f"got {self.paced_seconds}"
            )
            raise ValueError(msg)


# -- measuring ----------------------------------------------------------------------


def _status_kb(pid: int | str, field: str) -> int | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (Linux); False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mb() -> float:
    """Peak RSS of this process since the last reset (else since it started), in MB."""
    kb = _status_kb("self", "VmHWM")
    if kb is None:
        import resource

        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kb / 1024, 1)


def redis_memory_mb(url: str) -> dict[str, float | None]:
    """Peak RSS of the Redis server process (when it runs here) and Redis's own peak."""
    client = redis.Redis.from_url(url)
    try:
        server = client.info("server")
        memory = client.info("memory")
    finally:
        client.close()
    kb = _status_kb(int(server.get("process_id", 0)), "VmHWM") if server.get("process_id") else None
    return {
        "peak_rss_mb": round(kb / 1024, 1) if kb is not None else None,
        "used_memory_peak_mb": round(int(memory.get("used_memory_peak", 0)) / 2**20, 1),
    }


def percentiles(values: Sequence[float]) -> dict[str, float | int | None]:
    """p50, p95, p99 and max of ``values`` (None when there are none).

    >>> percentiles([1.0, 2.0, 3.0, 4.0])["max"]
    4.0
    """
    if not values:
        return {"count": 0, "p50": None, "p95": None, "p99": None, "max": None}
    arr = np.asarray(values, dtype=float)
    p50, p95, p99 = np.percentile(arr, [50, 95, 99]).tolist()
    return {
        "count": int(arr.size),
        "p50": round(p50, 1),
        "p95": round(p95, 1),
        "p99": round(p99, 1),
        "max": round(float(arr.max()), 1),
    }


def work_orders_by_kind(url: str, prefix: str) -> dict[str, int]:
    """Work orders in Redis under ``prefix``, counted by kind (read from their hashes)."""
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        ids = [str(x) for x in client.zrange(f"{prefix}:index:{{wo}}", 0, -1)]
        counts: Counter[str] = Counter()
        for start in range(0, len(ids), 1000):
            pipe = client.pipeline(transaction=False)
            for wo in ids[start : start + 1000]:
                pipe.hget(f"{prefix}:wo:{{{wo}}}", "kind")
            counts.update(str(k) for k in pipe.execute())
    finally:
        client.close()
    return dict(sorted(counts.items()))


def work_orders(url: str, prefix: str, fields: Sequence[str]) -> dict[str, dict[str, str]]:
    """``fields`` of every work order under ``prefix``, by work-order id."""
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        ids = [str(x) for x in client.zrange(f"{prefix}:index:{{wo}}", 0, -1)]
        pipe = client.pipeline(transaction=False)
        for wo in ids:
            pipe.hmget(f"{prefix}:wo:{{{wo}}}", list(fields))
        rows = pipe.execute()
    finally:
        client.close()
    return {wo: dict(zip(fields, row, strict=True)) for wo, row in zip(ids, rows, strict=True)}


# -- the recording ------------------------------------------------------------------


@dataclass(slots=True)
class RecordingInfo:
    lines: int
    span_s: float
    header: dict[str, Any] | None

    @property
    def events_per_s(self) -> float:
        return self.lines / self.span_s if self.span_s > 0 else 0.0


def _ts_of(line: bytes) -> int | None:
    raw, _, _ = unwrap(line)
    try:
        obj = orjson.loads(raw)
        return parse_ts(obj["ts"]) if isinstance(obj, dict) and "ts" in obj else None
    except Exception:  # noqa: BLE001 - a corrupt line has no time; look at the next one
        return None


def scan(paths: Sequence[Path], progress: bool) -> RecordingInfo:
    """Lines and event-time span of recordings, reading them once as a stream."""
    header = read_header(paths[0])
    gen = (header or {}).get("generator") or {}
    lines = 0
    lo, hi = 2**62, -(2**62)
    stats = RunStats()  # only for the progress line
    with Progress(stats, label="scan") if progress else _null():
        for path in paths:
            first: int | None = None
            last_line = b""
            for line in iter_lines(path):
                lines += 1
                if first is None:
                    first = _ts_of(line)
                last_line = line
                if lines % 100_000 == 0:
                    stats.events_in = lines
            for ts in (first, _ts_of(last_line) if last_line else None):
                if ts is not None:
                    lo, hi = min(lo, ts), max(hi, ts)
        stats.events_in = lines
    # Measured from the events (a head cut from a longer recording keeps its header);
    # the header's length only when no line has a readable time.
    span_s = (hi - lo) / 1000 if hi > lo else float(gen.get("minutes", 0)) * 60
    return RecordingInfo(lines, span_s, header)


def write_head(paths: Sequence[Path], out: Path, lines: int) -> Path:
    """The first ``lines`` lines of a recording (header kept), streamed into ``out``."""
    header = {k: v for k, v in (read_header(paths[0]) or {}).items() if k != "citywatch_recording"}
    with RecordingWriter(out, header=header) as w:
        for i, line in enumerate(iter_lines(paths[0])):
            if i >= lines:
                break
            w.write_line(line)
    return out


# -- phases -------------------------------------------------------------------------


def _null() -> AbstractContextManager[None]:
    import contextlib

    return contextlib.nullcontext()


def _phase_cfg(cfg: Config, phase: str) -> Config:
    """A config whose Redis prefix is this phase's own, so phases never share keys."""
    prefix = f"{cfg.redis.prefix}-bench-{phase}-{os.getpid()}"
    return dataclasses.replace(cfg, redis=dataclasses.replace(cfg.redis, prefix=prefix))


def _read_alerts(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("rb") as fh:
        for line in fh:
            if line.strip():
                yield orjson.loads(line)


def _incidents_by_kind(alerts: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Incidents counted by the kind of the alert that opened them."""
    first: dict[str, str] = {}
    for a in sorted(alerts, key=lambda a: (a["ts"], a["id"])):
        inc = a.get("incident")
        if inc and inc not in first:
            first[inc] = a["kind"]
    return dict(sorted(Counter(first.values()).items()))


def _run_summary(result: RunResult | Any, seconds: float) -> dict[str, Any]:
    s = result.stats
    return {
        "events": s.events_in,
        "seconds": round(seconds, 2),
        "events_per_s": round(s.events_in / seconds) if seconds > 0 else 0,
        "dead_letters": sum(s.dead.values()),
        "late": s.late,
        "alerts": sum(s.alerts.values()),
        "alerts_by_kind": dict(sorted(s.alerts.items())),
        "work_orders_created": sum(s.work_orders.values()),
    }


def _measured(
    result: RunResult | Any, seconds: float, url: str, prefix: str, reset: bool
) -> dict[str, Any]:
    """A run's figures, with memory and work orders read while its Redis is still up."""
    out = _run_summary(result, seconds)
    out["peak_rss_mb"] = peak_rss_mb()
    out["peak_rss_is_phase_own"] = reset
    out["redis"] = redis_memory_mb(url)
    out["work_orders_by_kind"] = work_orders_by_kind(url, prefix)
    out["work_orders"] = sum(out["work_orders_by_kind"].values())
    out["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
    return out


def _flow_phase(
    opts: BenchOptions,
    cfg: Config,
    ref: Reference,
    paths: Sequence[Path],
    phase: str,
    *,
    speed: float | None,
    total: int,
    alerts_out: Path | None,
) -> tuple[dict[str, Any], RunResult]:
    pcfg = _phase_cfg(cfg, phase)
    reset = reset_peak_rss()
    with redis_for(pcfg, opts.redis_url) as (url, _):
        result = run_recordings(
            paths,
            pcfg,
            url,
            speed=speed,
            workers=opts.workers,
            alerts_out=alerts_out,
            progress=opts.progress,
            reference=ref,
            progress_label=phase,
            total_events=total,
        )
        out = _measured(result, result.seconds, url, pcfg.redis.prefix, reset)
    return out, result


def _baseline_phase(
    opts: BenchOptions, cfg: Config, ref: Reference, total: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from citywatch.benchmarks.baseline import run_baseline

    pcfg = _phase_cfg(cfg, "baseline")
    reset = reset_peak_rss()
    stats = RunStats()
    with redis_for(pcfg, opts.redis_url) as (url, _):
        with Progress(stats, label="baseline", total=total) if opts.progress else _null():
            res = run_baseline(opts.paths, pcfg, url, ref, stats=stats)
        out = _measured(res, res.seconds, url, pcfg.redis.prefix, reset)
        out["live_keys_at_end"] = res.live_keys
        out["distinct_keys"] = res.distinct_keys
    return out, [a.to_json() for a in res.alerts]


def _git_commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git on PATH, read-only
            capture_output=True,
            text=True,
            check=False,
            cwd=Path(__file__).resolve().parent,
        )
    except OSError:
        return None
    return done.stdout.strip() or None


def run_bench(
    opts: BenchOptions, cfg: Config, reference: Reference | None = None
) -> dict[str, Any]:
    """Run every phase and return the report (also written to ``opts.out``)."""
    opts.out.mkdir(parents=True, exist_ok=True)
    ref = reference or load_reference(cfg)
    if opts.batch_size is not None:
        cfg = dataclasses.replace(
            cfg, flow=dataclasses.replace(cfg.flow, batch_size=opts.batch_size)
        )
    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": _git_commit(),
        "command": opts.command,
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg_before": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "batch_size": cfg.flow.batch_size,
        "shards": cfg.flow.shards,
    }
    info = scan(opts.paths, opts.progress)
    report["recording"] = {
        "paths": [str(p) for p in opts.paths],
        "lines": info.lines,
        "event_span_s": info.span_s,
        "events_per_s_of_event_time": round(info.events_per_s, 1),
        "generator": (info.header or {}).get("generator"),
    }
    alerts_path = opts.out / "alerts.jsonl"
    flow, _ = _flow_phase(
        opts, cfg, ref, opts.paths, "max", speed=None, total=info.lines, alerts_out=alerts_path
    )
    flow["workers"] = opts.workers
    alerts = list(_read_alerts(alerts_path))
    flow["incidents_by_kind"] = _incidents_by_kind(alerts)
    flow["incidents"] = sum(flow["incidents_by_kind"].values())
    report["flow"] = flow

    if opts.truth is not None:
        truth = load_truth(opts.truth)
        sc = score(alerts, truth)
        report["quality"] = {
            "truth": str(opts.truth),
            "incidents_injected": len(truth["incidents"]),
            "per_kind": sc.to_json(),
            "overall": sc.summary(),
            "missed": [f"{i['id']} {i['kind']} {i['subject']}" for i in sc.missed],
            "false_alerts": len(sc.false_alerts),
            "false_alert_examples": [
                f"{a['kind']} {a['subject']} {a.get('zone')} {a['ts']}"
                for a in sc.false_alerts[:10]
            ],
        }

    _write(opts.out, report)

    if opts.compare:
        base, base_alerts = _baseline_phase(opts, cfg, ref, info.lines)
        flow_ids = {a["id"] for a in alerts}
        base_ids = {a["id"] for a in base_alerts}
        base["only_flow"] = sorted(flow_ids - base_ids)[:20]
        base["only_baseline"] = sorted(base_ids - flow_ids)[:20]
        base["same_alerts"] = flow_ids == base_ids
        base["flow_over_baseline"] = (
            round(flow["events_per_s"] / base["events_per_s"], 2) if base["events_per_s"] else None
        )
        report["baseline"] = base
        _write(opts.out, report)

    if opts.paced_rate is not None:
        speed = opts.paced_rate / info.events_per_s if info.events_per_s > 0 else 1.0
        paths: Sequence[Path] = opts.paths
        total = info.lines
        if opts.paced_seconds > 0 and len(opts.paths) == 1:
            head = int(opts.paced_rate * opts.paced_seconds)
            if head < info.lines:
                paths = [write_head(opts.paths, opts.out / "paced-head.jsonl", head)]
                total = head
        paced, result = _flow_phase(
            opts, cfg, ref, paths, "paced", speed=speed, total=total, alerts_out=None
        )
        paced["rate_aimed_per_s"] = opts.paced_rate
        paced["speed"] = round(speed, 3)
        paced["latency_ms"] = percentiles(result.latencies_ms)
        report["paced"] = paced

    _write(opts.out, report)
    return report


def _write(out: Path, report: dict[str, Any]) -> None:
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


def main(argv: list[str] | None = None) -> int:
    """``python -m citywatch.benchmarks.bench``: the same as ``citywatch bench``."""
    from citywatch.flows.cli import main as cli_main

    return cli_main(["bench", *(argv if argv is not None else sys.argv[1:])])


if __name__ == "__main__":
    sys.exit(main())
