"""Two versions of the code replaying the same recording, alternating, in one run.

Each version is a tree laid out as the ``citywatch`` package (``--tree REF DIR``
makes one from a commit with ``git archive``), run with ``PYTHONPATH`` set to it
and the same interpreter. Each round runs every version once, in turn, under
``/usr/bin/time``: CPU (user + sys, the replay and the processes it waits for),
wall time and the peak RSS of the largest process, with the load average at the
start of each run. Prints the medians, the new/old ratios and whether the alert
files are byte-identical (as sorted lines with ``-p N``, whose joined file is in
process order). Exits 1 if they differ.

    python -m citywatch.benchmarks.replay_versions --tree de15e5e /tmp/old
    python -m citywatch.benchmarks.replay_versions --tree HEAD /tmp/new
    python -m citywatch.benchmarks.replay_versions city10.jsonl \\
        --version old=/tmp/old --version new=/tmp/new --rounds 2 [--processes 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

# The repository's folders and the package each one is (pyproject's package-dir).
FOLDERS = ("flows", "detectors", "geo", "sinks", "replay", "console", "benchmarks", "data")


def make_tree(ref: str, target: Path, repo: Path) -> Path:
    """``git archive REF`` of ``repo`` under ``target/src``, and ``target/pkg`` laid out
    as the installed package (``PYTHONPATH=target/pkg``); returns the latter."""
    src, pkg = target / "src", target / "pkg" / "citywatch"
    src.mkdir(parents=True)
    with tempfile.TemporaryFile() as tar:
        subprocess.run(["git", "-C", str(repo), "archive", ref], stdout=tar, check=True)
        tar.seek(0)
        with tarfile.open(fileobj=tar) as archive:
            archive.extractall(src, filter="data")
    pkg.mkdir(parents=True)
    for f in (src / "citywatch").glob("*.py"):
        (pkg / f.name).write_bytes(f.read_bytes())
    (pkg / "py.typed").touch()
    for folder in FOLDERS:
        (pkg / folder).symlink_to(src / folder)
    return pkg.parent


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


@dataclass
class Run:
    cpu_s: float
    wall_s: float
    rss_mb: float
    load: str


def one_run(tree: Path, recording: Path, processes: int, alerts: Path) -> Run:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    env.pop("CITYWATCH_REDIS_URL", None)  # each run its own embedded Redis
    load = _load()
    cmd = ["/usr/bin/time", "-f", "%U %S %e %M", sys.executable, "-m", "citywatch.flows.cli"]
    cmd += ["replay", str(recording.resolve()), "--quiet", "--alerts-out", str(alerts.resolve())]
    if processes > 1:
        cmd += ["-p", str(processes)]
    # Not in a checkout: its citywatch/ folder would shadow the tree's package.
    done = subprocess.run(  # noqa: S603
        cmd, env=env, capture_output=True, text=True, check=False, cwd=alerts.parent
    )
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-3000:])
        msg = f"replay with {tree} failed ({done.returncode})"
        raise SystemExit(msg)
    user, sys_s, wall, rss_kb = done.stderr.strip().splitlines()[-1].split()
    return Run(float(user) + float(sys_s), float(wall), int(rss_kb) / 1024, load)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recording", type=Path, nargs="?")
    ap.add_argument("--version", action="append", default=[], metavar="NAME=DIR")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--processes", type=int, default=1)
    ap.add_argument("--tree", nargs=2, metavar=("REF", "DIR"), help="make a tree and exit")
    ap.add_argument("--repo", type=Path, default=Path.cwd())
    args = ap.parse_args(argv)
    if args.tree:
        print(make_tree(args.tree[0], Path(args.tree[1]), args.repo))
        return 0
    versions = dict(v.split("=", 1) for v in args.version)
    if args.recording is None or len(versions) < 2:
        ap.error("a recording and at least two --version NAME=DIR")
    out = Path(tempfile.mkdtemp(prefix="replay-versions-"))
    runs: dict[str, list[Run]] = {name: [] for name in versions}
    files: dict[str, list[Path]] = {name: [] for name in versions}
    for rnd in range(1, args.rounds + 1):
        for name, tree in versions.items():
            alerts = out / f"{name}-{rnd}.jsonl"
            run = one_run(Path(tree), args.recording, args.processes, alerts)
            runs[name].append(run)
            files[name].append(alerts)
            print(
                f"round {rnd} {name}: CPU {run.cpu_s:.1f} s, wall {run.wall_s:.1f} s, "
                f"peak RSS {run.rss_mb:.0f} MB, load at start {run.load}",
                flush=True,
            )
    print(f"load at the end {_load()}")
    first = next(iter(versions))
    for name in versions:
        cpu = statistics.median(r.cpu_s for r in runs[name])
        wall = statistics.median(r.wall_s for r in runs[name])
        rss = statistics.median(r.rss_mb for r in runs[name])
        base_cpu = statistics.median(r.cpu_s for r in runs[first])
        base_wall = statistics.median(r.wall_s for r in runs[first])
        print(
            f"{name}: median CPU {cpu:.1f} s ({cpu / base_cpu:.2f}x {first}), wall {wall:.1f} s "
            f"({wall / base_wall:.2f}x), peak RSS {rss:.0f} MB"
        )
    texts = {sorted(p.read_bytes().splitlines()).__repr__() for fs in files.values() for p in fs}
    lines = len(files[first][0].read_bytes().splitlines())
    same = len(texts) == 1
    print(f"alerts: {'identical' if same else 'DIFFERENT'} in every run ({lines} lines)")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
