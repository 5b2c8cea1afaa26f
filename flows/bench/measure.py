"""What ``citywatch bench`` measures: peak memory, latency percentiles, work orders in
Redis, and the recording's size and event-time span."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import redis

from citywatch.detectors.events import parse_ts
from citywatch.flows.runner import Progress
from citywatch.flows.stats import RunStats
from citywatch.replay.recording import RecordingWriter, iter_lines, read_header, unwrap
from citywatch.sinks.keys import Keys


def no_progress() -> AbstractContextManager[None]:
    """Stands in for a progress line when ``--quiet``."""
    return contextlib.nullcontext()


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
        ids = [str(x) for x in client.zrange(Keys(prefix).index(), 0, -1)]
        counts: Counter[str] = Counter()
        for start in range(0, len(ids), 1000):
            pipe = client.pipeline(transaction=False)
            for wo in ids[start : start + 1000]:
                pipe.hget(Keys(prefix).wo(wo), "kind")
            counts.update(str(k) for k in pipe.execute())
    finally:
        client.close()
    return dict(sorted(counts.items()))


def work_orders(url: str, prefix: str, fields: Sequence[str]) -> dict[str, dict[str, str]]:
    """``fields`` of every work order under ``prefix``, by work-order id."""
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        ids = [str(x) for x in client.zrange(Keys(prefix).index(), 0, -1)]
        pipe = client.pipeline(transaction=False)
        for wo in ids:
            pipe.hmget(Keys(prefix).wo(wo), list(fields))
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
    with Progress(stats, label="scan") if progress else no_progress():
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
