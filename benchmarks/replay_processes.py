"""``replay -p N`` against one process, side by side: wall, CPU per process, alerts.

Each round replays the recording with one process, then with N processes started
as one Bytewax cluster on loopback (``replay -i K -a ...``, what ``-p N`` starts),
each into its own embedded Redis. Per process it reports wall time and CPU time
(user + sys, from ``wait4``): on a shared machine the CPU of the busiest process
is the steadier measure of the critical path, wall time the one that counts on
a quiet machine. Exits 1 if the alert files differ (as sorted lines).

    python -m citywatch.benchmarks.replay_processes REC.jsonl --processes 2 --rounds 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from citywatch.flows.live import free_ports
from citywatch.sinks.embedded_redis import EmbeddedRedis


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


@dataclass
class Outcome:
    wall_s: float
    cpu_s: list[float]  # per process
    rss_mb: list[int]  # per process
    alerts: int


def one_run(recording: Path, processes: int, out: Path) -> Outcome:
    """Replay with ``processes`` processes; wall, CPU per process, peak RSS per process."""
    with EmbeddedRedis() as server:
        env = {**os.environ, "CITYWATCH_REDIS_URL": server.url}
        base = [sys.executable, "-m", "citywatch.flows.cli", "replay", str(recording), "--quiet"]
        cluster: list[str] = []
        if processes > 1:
            cluster = ["-a", ";".join(f"127.0.0.1:{p}" for p in free_ports(processes))]
        t0 = time.perf_counter()
        procs = []
        for i in range(processes):
            cmd = [*base, "--alerts-out", str(out.with_suffix(f".{i}.jsonl"))]
            if cluster:
                cmd += ["-i", str(i), *cluster]
            procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL))  # noqa: S603
        cpu: list[float] = []
        rss: list[int] = []
        for proc in procs:
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode != 0:
                msg = f"process {proc.args!r} failed with {proc.returncode}"
                raise RuntimeError(msg)
            cpu.append(usage.ru_utime + usage.ru_stime)
            rss.append(usage.ru_maxrss // 1024)
        wall = time.perf_counter() - t0
    lines = sorted(
        line
        for i in range(processes)
        for line in out.with_suffix(f".{i}.jsonl").read_bytes().splitlines()
    )
    out.write_bytes(b"\n".join(lines) + b"\n")
    return Outcome(round(wall, 1), [round(c, 1) for c in cpu], rss, len(lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recording", type=Path)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="citywatch-procs-"))
    walls: dict[int, list[float]] = {1: [], args.processes: []}
    busiest: dict[int, list[float]] = {1: [], args.processes: []}
    same = True
    for r in range(args.rounds):
        files = {}
        for n in (1, args.processes):
            before = _load()
            res = one_run(args.recording, n, work / f"r{r}-p{n}.alerts")
            files[n] = (work / f"r{r}-p{n}.alerts").read_bytes()
            walls[n].append(res.wall_s)
            busiest[n].append(max(res.cpu_s))
            print(f"round {r + 1} -p {n}: load {before} -> {_load()}; {res}", flush=True)
        same = same and files[1] == files[args.processes]
        print(f"round {r + 1}: alerts identical: {files[1] == files[args.processes]}", flush=True)
    n = args.processes
    w1, wn = statistics.median(walls[1]), statistics.median(walls[n])
    c1, cn = statistics.median(busiest[1]), statistics.median(busiest[n])
    print(
        f"median wall -p 1 {w1:.1f} s, -p {n} {wn:.1f} s: {w1 / wn:.2f}x; "
        f"CPU of the busiest process -p 1 {c1:.1f} s, -p {n} {cn:.1f} s: {c1 / cn:.2f}x"
    )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
