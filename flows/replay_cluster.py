"""``replay -p N``: one replay run by N processes on this host, as one Bytewax cluster.

The parent starts N children on loopback addresses (``replay ... -i K -a A``),
each writing its own alert, dead-letter and late files and its counters
(``--stats-out``) into a scratch directory; when they have all ended it joins
the files (process 0's lines first) and sums the counters for the summary.
The children die with the parent and get the Redis URL by environment, as
``run -p`` does. Which process holds which key is Bytewax's choice; the alerts
are those of one process (see ``flows/sources_split.py``), the order of the
lines of a joined file is by process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import orjson

from citywatch.flows.live import SPAWNED_ENV, _die_with_parent, free_ports
from citywatch.flows.runner import RunResult
from citywatch.flows.stats import RunStats

COUNTERS = ("events_ok", "dead", "alerts", "work_orders")


def stats_to_json(stats: RunStats) -> bytes:
    doc: dict[str, object] = {name: dict(getattr(stats, name)) for name in COUNTERS}
    doc.update(events_in=stats.events_in, late=stats.late, repeats=stats.repeats)
    return orjson.dumps(doc)


def add_stats(total: RunStats, data: bytes) -> None:
    doc = orjson.loads(data)
    total.events_in += int(doc["events_in"])
    total.late += int(doc["late"])
    total.repeats += int(doc["repeats"])
    for name in COUNTERS:
        counter: Counter[str] = getattr(total, name)
        counter.update(doc[name])


def replay_processes(
    argv: Sequence[str],
    processes: int,
    outputs: dict[str, Path | None],
    *,
    redis_url: str,
) -> tuple[int, RunResult]:
    """Run ``citywatch replay *argv`` in ``processes`` children; ``outputs`` maps the
    output options (``--alerts-out`` ...) to the files to join them into."""
    scratch = Path(tempfile.mkdtemp(prefix="citywatch-replay-"))
    addresses = ";".join(f"127.0.0.1:{p}" for p in free_ports(processes))
    env = dict(os.environ, CITYWATCH_REDIS_URL=redis_url)
    env[SPAWNED_ENV] = str(os.getpid())
    arm = _die_with_parent(os.getpid())
    t0 = time.perf_counter()
    try:
        children = []
        for i in range(processes):
            own = [
                arg
                for flag, path in outputs.items()
                if path is not None
                for arg in (flag, str(scratch / f"{flag.strip('-')}-{i}.jsonl"))
            ]
            cmd = [sys.executable, "-m", "citywatch.flows.cli", "replay", *argv, *own]
            cmd += ["-i", str(i), "-a", addresses, "--stats-out", str(scratch / f"stats-{i}")]
            children.append(subprocess.Popen(cmd, env=env, preexec_fn=arm))  # noqa: S603
        codes = [child.wait() for child in children]
        seconds = time.perf_counter() - t0
        stats = RunStats()
        for i in range(processes):
            part = scratch / f"stats-{i}"
            if part.exists():
                add_stats(stats, part.read_bytes())
        for flag, path in outputs.items():
            if path is not None:
                _join([scratch / f"{flag.strip('-')}-{i}.jsonl" for i in range(processes)], path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    bad = [c for c in codes if c != 0]
    return (bad[0] if bad else 0), RunResult(stats, seconds, redis_url)


def _join(parts: list[Path], target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as out:
        for part in parts:
            if part.exists():
                with part.open("rb") as fh:
                    shutil.copyfileobj(fh, out)
