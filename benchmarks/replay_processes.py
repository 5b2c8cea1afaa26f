"""``replay -p N`` against one process, side by side: wall, CPU per process, alerts.

Each round replays the recording with one process, then with N processes started
as one Bytewax cluster on loopback (``replay -i K -a ...``, what ``-p N`` starts),
each into its own embedded Redis. Per process it reports wall time and CPU time
(user + sys, from ``wait4``): on a shared machine the CPU of the busiest process
is the steadier measure of the critical path, wall time the one that counts on
a quiet machine. Exits 1 if the alert files differ (as sorted lines).

``--version NAME=TREE`` (twice or more) compares trees of the code in one run, each
laid out as the ``citywatch`` package (``replay_versions --tree REF DIR`` makes one
from a commit; TREE is its ``pkg`` folder) and run with ``PYTHONPATH`` set to it
from a scratch folder: each round runs every version in turn, ``-p 1`` then ``-p N``
(``--only-processes``: ``-p N`` alone). Without it, the code this interpreter imports.
``--config`` replays with another configuration (another ``[flow] shards``, say).

    python -m citywatch.benchmarks.replay_processes REC.jsonl --processes 2 --rounds 2
    python -m citywatch.benchmarks.replay_processes REC.jsonl --processes 2 --rounds 2 \\
        --version old=/tmp/old/pkg --version new=/tmp/new/pkg
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


def one_run(
    recording: Path,
    processes: int,
    out: Path,
    tree: Path | None = None,
    config: Path | None = None,
) -> Outcome:
    """Replay with ``processes`` processes; wall, CPU per process, peak RSS per process.
    ``tree``: run that tree's code (``PYTHONPATH``), from ``out``'s folder; ``config``:
    replay with that configuration."""
    with EmbeddedRedis() as server:
        env = {**os.environ, "CITYWATCH_REDIS_URL": server.url}
        if tree is not None:
            env["PYTHONPATH"] = str(tree.resolve())
        rec = str(recording.resolve())
        base = [sys.executable, "-m", "citywatch.flows.cli", "replay", rec, "--quiet"]
        if config is not None:
            base += ["--config", str(config.resolve())]
        cluster: list[str] = []
        if processes > 1:
            cluster = ["-a", ";".join(f"127.0.0.1:{p}" for p in free_ports(processes))]
        t0 = time.perf_counter()
        procs = []
        for i in range(processes):
            cmd = [*base, "--alerts-out", str(out.with_suffix(f".{i}.jsonl").resolve())]
            if cluster:
                cmd += ["-i", str(i), *cluster]
            # Not from a checkout, whose citywatch/ folder would shadow the tree's package.
            cwd = out.parent if tree is not None else None
            procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, cwd=cwd))  # noqa: S603
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
    ap.add_argument("--version", action="append", default=[], metavar="NAME=TREE")
    ap.add_argument("--only-processes", action="store_true", help="no -p 1 runs")
    ap.add_argument("--config", type=Path, default=None, help="replay with this configuration")
    args = ap.parse_args(argv)
    n = args.processes
    versions: dict[str, Path | None] = {
        name: Path(tree) for name, tree in (v.split("=", 1) for v in args.version)
    } or {"": None}
    counts = [n] if args.only_processes else [1, n]
    work = Path(tempfile.mkdtemp(prefix="citywatch-procs-"))
    walls: dict[tuple[str, int], list[float]] = {(v, c): [] for v in versions for c in counts}
    busiest: dict[tuple[str, int], list[float]] = {k: [] for k in walls}
    total: dict[tuple[str, int], list[float]] = {k: [] for k in walls}
    texts: set[bytes] = set()
    for r in range(args.rounds):
        for name, tree in versions.items():
            for c in counts:
                before = _load()
                out = work / f"r{r}-{name or 'here'}-p{c}.alerts"
                res = one_run(args.recording, c, out, tree, args.config)
                texts.add(out.read_bytes())
                walls[(name, c)].append(res.wall_s)
                busiest[(name, c)].append(max(res.cpu_s))
                total[(name, c)].append(sum(res.cpu_s))
                label = f"{name} " if name else ""
                print(f"round {r + 1} {label}-p {c}: load {before} -> {_load()}; {res}", flush=True)
    same = len(texts) == 1
    print(f"alerts identical in every run: {same}", flush=True)
    for name in versions:
        label = f"{name}: " if name else ""
        med = {c: statistics.median(walls[(name, c)]) for c in counts}
        cpu = {c: statistics.median(busiest[(name, c)]) for c in counts}
        both = statistics.median(total[(name, n)])
        line = (
            f"{label}median wall -p {n} {med[n]:.1f} s, CPU of the busiest process {cpu[n]:.1f} s"
        )
        line += f", of all {both:.1f} s"
        if not args.only_processes:
            line += (
                f"; -p 1 wall {med[1]:.1f} s, CPU {cpu[1]:.1f} s: wall {med[1] / med[n]:.2f}x, "
                f"busiest CPU {cpu[1] / cpu[n]:.2f}x"
            )
        print(line)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
