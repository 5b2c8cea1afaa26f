"""``citywatch bench``: how fast, how late, how big and how right, in one command.

Over one recording (``citywatch generate`` writes them, with a truth file):

1. **scan**: count the lines and find the event-time span from the first and
   last lines' times (streaming; the header's ``minutes`` only as a fallback);
2. **max**: the full flow (every detector, the cross-key stages, incidents,
   routing, Redis dispatch) at ``--speed max`` into a fresh Redis: events/s,
   peak RSS of this process and of the Redis server, dead letters, alerts,
   incidents and work orders by kind, precision and recall per alert kind
   against the truth file (``citywatch.replay.truth.score``);
3. **baseline** (``--compare``): ``citywatch.flows.bench.baseline``, the same detections
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
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from citywatch.flows.bench.measure import (
    no_progress,
    peak_rss_mb,
    percentiles,
    redis_memory_mb,
    reset_peak_rss,
    scan,
    work_orders_by_kind,
    write_head,
)
from citywatch.flows.bench.report import write_report
from citywatch.flows.config import Config
from citywatch.flows.runner import Progress, RunResult, load_reference, redis_for, run_recordings
from citywatch.flows.stats import RunStats
from citywatch.geo.reference import Reference
from citywatch.replay.truth import load_truth, score


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


# -- phases -------------------------------------------------------------------------


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
    from citywatch.flows.bench.baseline import run_baseline

    pcfg = _phase_cfg(cfg, "baseline")
    reset = reset_peak_rss()
    stats = RunStats()
    with redis_for(pcfg, opts.redis_url) as (url, _):
        with Progress(stats, label="baseline", total=total) if opts.progress else no_progress():
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

    write_report(opts.out, report)

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
        write_report(opts.out, report)

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

    write_report(opts.out, report)
    return report
