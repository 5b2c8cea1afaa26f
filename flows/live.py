"""``citywatch run``: the flow from Kafka into Redis, with recovery, scale-out and metrics.

One process runs ``workers`` Bytewax worker threads; ``processes`` > 1 on one
host starts that many child processes that form one Bytewax cluster on
loopback addresses; across hosts each process is started by hand (or by the
orchestrator) with ``--process-id`` and the same ``--addresses`` list.

Recovery: the recovery directory is created and initialised by the first
start (``recovery_partitions`` SQLite files); every ``snapshot_interval_s``
Bytewax closes an epoch and stores each Kafka partition's next offset together
with the watermarks and detector shards. After a crash, the next start resumes
from the last stored epoch; what was dispatched after it is dispatched again
and the idempotent Redis sink ignores it.
"""

from __future__ import annotations

import ctypes
import dataclasses
import logging
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.run import cli_main

from citywatch.detectors.alerts import Alert
from citywatch.detectors.events import DeadLetter
from citywatch.flows.config import Config, ConfigError
from citywatch.flows.kafka_io import (
    CLOSE_WAIT_S,
    STOP,
    KafkaBatchSource,
    KafkaDeadLetterSink,
    PartitionHooks,
    await_consumers_closed,
    request_stop,
)
from citywatch.flows.metrics import Metrics, MetricsStats
from citywatch.flows.pipeline import FlowOutputs, ReferenceHolder, build_flow
from citywatch.flows.runner import _Multi, load_reference, preflight
from citywatch.flows.zone_reload import watching_zones
from citywatch.sinks.base import BatchSink, BytewaxSink
from citywatch.sinks.dispatch import (
    Dispatch,
    Keys,
    RedisDeadLetterSink,
    RedisDispatchSink,
    Written,
)
from citywatch.sinks.files import JsonLinesSink

log = logging.getLogger("citywatch.run")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RunOptions:
    workers: int = 1
    processes: int = 1
    process_id: int | None = None
    addresses: tuple[str, ...] = ()
    stop_at_end: bool = False
    alerts_out: Path | None = None
    metrics_port: int | None = None
    timers: str | None = None


def live_config(cfg: Config, timers: str | None = None) -> Config:
    """Timeouts on wall-clock for live runs, unless the file or ``timers`` chose explicitly."""
    flow_raw = cfg.raw.get("flow", {}) if isinstance(cfg.raw, dict) else {}
    if not hasattr(cfg.flow, "timers"):
        return cfg  # this build fires every timeout on event time
    chosen = timers or flow_raw.get("timers") or "wall"
    changes: dict[str, Any] = {"timers": chosen}
    return dataclasses.replace(cfg, flow=dataclasses.replace(cfg.flow, **changes))


# SQLite pages of the recovery store: a snapshot is a few large blobs (one per detection
# shard, MBs each), which SQLite stores as chains of overflow pages; with its default
# 4 KiB pages Bytewax's write of 64 MB took a median 295 ms, 216 ms with these
# (``benchmarks/snapshot_store.py``).
RECOVERY_PAGE_SIZE = 65_536


def init_recovery_files(path: Path, partitions: int, page_size: int = RECOVERY_PAGE_SIZE) -> None:
    """Create the recovery partitions' SQLite files (``part-N.sqlite3``, as Bytewax names
    them) with ``page_size`` pages and WAL journaling, before Bytewax's ``init_db_dir``
    makes its tables in them: a database's page size is fixed by its first write."""
    for i in range(partitions):
        db = sqlite3.connect(path / f"part-{i}.sqlite3")
        try:
            db.execute(f"PRAGMA page_size = {int(page_size)}")
            db.execute("PRAGMA journal_mode = WAL")
        finally:
            db.close()


def ensure_recovery_dir(path: Path, partitions: int) -> bool:
    """Create and initialise the recovery directory once; True if it was new. The files
    are made in a folder of their own and moved in once complete, so the other processes
    of a cluster (:func:`wait_recovery_dir`), or a start after a crash meanwhile, never
    find a partition without its tables."""
    path.mkdir(parents=True, exist_ok=True)
    if any(path.glob("part-*.sqlite3")):
        return False
    work = Path(tempfile.mkdtemp(prefix=".init-", dir=path))
    try:
        init_recovery_files(work, partitions)
        init_db_dir(work, partitions)
        for db in sorted(work.glob("part-*.sqlite3")):
            os.replace(db, path / db.name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return True


def wait_recovery_dir(path: Path, partitions: int, timeout_s: float = 120.0) -> None:
    """Wait for process 0 (or the ``-p`` parent) to initialise the shared recovery
    directory: the other processes of a cluster never create it themselves."""
    deadline = time.monotonic() + timeout_s
    told = False
    while len(list(path.glob("part-*.sqlite3"))) < partitions:
        if time.monotonic() > deadline:
            msg = (
                f"recovery directory {path} has no {partitions} recovery partitions after "
                f"{timeout_s:.0f} s: start process 0 (it initialises them) with the same "
                f"recovery_dir, or initialise it once with a single-process run"
            )
            raise ConfigError(msg)
        if not told:
            log.info("waiting for process 0 to initialise the recovery directory")
            told = True
        time.sleep(0.2)


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _on_term(signum: int, _frame: FrameType | None) -> None:
    if STOP.is_set():  # a second signal: stop now, recovery covers the rest
        raise KeyboardInterrupt
    log.info("stopping: inputs close, the last epoch is snapshotted", extra={"signal": signum})
    request_stop()


def run_live(cfg: Config, redis_url: str, opts: RunOptions) -> MetricsStats:
    """Run one process of the live flow until the inputs end or SIGTERM/SIGINT."""
    cfg = live_config(cfg, opts.timers)
    metrics = Metrics()
    stats = MetricsStats(metrics)
    pid = opts.process_id or 0
    if opts.metrics_port:
        metrics.serve(opts.metrics_port + pid)
    holder = ReferenceHolder(load_reference(cfg))
    keys = Keys(cfg.redis.prefix)
    redis_opts = cfg.redis.options(redis_url)
    preflight(redis_opts, keys)

    def on_written(items: list[Dispatch], results: list[Written]) -> None:
        created = [d.route.queue for d, w in zip(items, results, strict=True) if w.created]
        stats.add_work_orders(created, sum(w.repeat for w in results))
        metrics.on_written(items, results)

    def dead_sink(_w: int) -> BatchSink[DeadLetter]:
        return _Multi(
            [
                RedisDeadLetterSink(
                    redis_opts,
                    keys,
                    maxlen=cfg.redis.dead_letter_maxlen,
                    give_up_s=cfg.redis.dead_letter_give_up_s,
                    on_retry=metrics.on_redis_retry,
                ),
                KafkaDeadLetterSink(cfg.kafka),
            ]
        )

    alerts_out = opts.alerts_out
    outputs = FlowOutputs(
        dispatch=BytewaxSink(
            lambda _w: RedisDispatchSink(
                redis_opts,
                keys,
                feed_maxlen=cfg.redis.feed_maxlen,
                silence_cache_s=cfg.redis.silence_cache_s,
                on_written=on_written,
                on_retry=metrics.on_redis_retry,
            )
        ),
        dead=BytewaxSink(dead_sink),
        alerts=BytewaxSink(lambda _w: JsonLinesSink(alerts_out, Alert.to_json))
        if alerts_out
        else None,
    )
    source = KafkaBatchSource(
        cfg.kafka,
        batch_size=cfg.flow.batch_size,
        stop_at_end=opts.stop_at_end,
        hooks=PartitionHooks(metrics.on_messages, metrics.on_lag),
        quiet_every_s=cfg.flow.tick_ms / 1000,
    )
    flow = build_flow(source, outputs, cfg, holder, stats)
    rec_dir = Path(cfg.run.recovery_dir)
    if not opts.process_id:  # one process, or process 0 of a cluster started by hand
        if ensure_recovery_dir(rec_dir, cfg.run.recovery_partitions):
            log.info("recovery directory initialised", extra={"dir": str(rec_dir)})
    else:
        wait_recovery_dir(rec_dir, cfg.run.recovery_partitions)
    recovery = RecoveryConfig(str(rec_dir), timedelta(seconds=cfg.run.backup_interval_s))
    kwargs: dict[str, Any] = {}
    if opts.addresses:
        kwargs = {"process_id": pid, "addresses": list(opts.addresses)}
    STOP.clear()
    previous = signal.signal(signal.SIGTERM, _on_term)
    t0 = time.monotonic()
    log.info(
        "started",
        extra={
            "bootstrap": cfg.kafka.bootstrap,
            "topics": list(cfg.kafka.topics()),
            "workers": opts.workers,
            "process_id": pid,
            "recovery_dir": str(rec_dir),
            "snapshot_interval_s": cfg.run.snapshot_interval_s,
        },
    )
    reporter = _Reporter(stats)
    reporter.start()
    try:
        # Zones hot-reload in production too: on a change of the file or on SIGHUP.
        with watching_zones(holder, cfg):
            cli_main(
                flow,
                workers_per_process=opts.workers,
                epoch_interval=timedelta(seconds=cfg.run.snapshot_interval_s),
                recovery_config=recovery,
                **kwargs,
            )
    finally:
        reporter.stop()
        signal.signal(signal.SIGTERM, previous)
        unclosed = await_consumers_closed()
        if unclosed:
            log.warning(
                "kafka consumers still closing (brokers unreachable?); exiting without them",
                extra={"consumers": unclosed, "waited_s": CLOSE_WAIT_S},
            )
    log.info("finished", extra={"seconds": round(time.monotonic() - t0, 3), **stats_fields(stats)})
    return stats


def stats_fields(stats: MetricsStats) -> dict[str, Any]:
    return {
        "events_in": stats.events_in,
        "dead_letters": sum(stats.dead.values()),
        "late": stats.late,
        "alerts": sum(stats.alerts.values()),
        "work_orders": sum(stats.work_orders.values()),
        "repeats": stats.repeats,
    }


class _Reporter:
    """A JSON log line with the counters every 30 s while the flow runs."""

    def __init__(self, stats: MetricsStats, every_s: float = 30.0) -> None:
        self.stats = stats
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            log.info("progress", extra=stats_fields(self.stats))

    def stop(self) -> None:
        self._stop.set()


PR_SET_PDEATHSIG = 1
SPAWNED_ENV = "CITYWATCH_SPAWNED_BY"  # set in -p children: the parent checked Redis


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    """In the child before exec: the kernel sends SIGKILL when the parent dies (as after a
    crash, recovery covers the rest); a parent already gone ends the child at once."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork

    def arm() -> None:
        if prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            os._exit(70)  # no guarantee the child would die with the parent: do not start
        if os.getppid() != parent_pid:
            os._exit(70)

    return arm


def spawn_processes(
    argv: Sequence[str], cfg: Config, processes: int, *, redis_url: str | None = None
) -> int:
    """Run ``processes`` child processes on loopback as one cluster; forward SIGTERM/SIGINT.

    The children die with this process (``PR_SET_PDEATHSIG``), and get the Redis URL
    through their environment (``CITYWATCH_REDIS_URL``), never on their command line,
    where any local user could read its password.
    """
    ensure_recovery_dir(Path(cfg.run.recovery_dir), cfg.run.recovery_partitions)
    addresses = ";".join(f"127.0.0.1:{p}" for p in free_ports(processes))
    base = [sys.executable, "-m", "citywatch.flows.cli", "run", *argv]
    env = dict(os.environ)
    if redis_url:
        env["CITYWATCH_REDIS_URL"] = redis_url
    env[SPAWNED_ENV] = str(os.getpid())
    arm = _die_with_parent(os.getpid())
    children = [
        subprocess.Popen(  # noqa: S603
            [*base, "--process-id", str(i), "--addresses", addresses], env=env, preexec_fn=arm
        )
        for i in range(processes)
    ]

    def forward(signum: int, _frame: FrameType | None) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    prev_term = signal.signal(signal.SIGTERM, forward)
    prev_int = signal.signal(signal.SIGINT, forward)
    try:
        codes = [child.wait() for child in children]
    finally:
        signal.signal(signal.SIGTERM, prev_term)
        signal.signal(signal.SIGINT, prev_int)
    bad = [c for c in codes if c != 0]
    return bad[0] if bad else 0
