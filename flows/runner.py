"""Running the flow over recordings: Redis (embedded or given), outputs, progress."""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

from bytewax.inputs import Source
from bytewax.run import cli_main

from citywatch.detectors.alerts import Alert
from citywatch.detectors.events import DeadLetter, event_to_json
from citywatch.flows.config import Config
from citywatch.flows.pipeline import FlowOutputs, ReferenceHolder, build_flow
from citywatch.flows.placement import replay_fixed, shard_names, worker_of
from citywatch.flows.records import RawBatch
from citywatch.flows.sources import RecordingSource, announced_partitions
from citywatch.flows.sources_split import SharedRecordingSource, ShareProgress
from citywatch.flows.stats import RunStats
from citywatch.flows.zone_reload import watching_zones
from citywatch.geo.reference import Reference
from citywatch.sinks.base import BatchSink, BytewaxSink
from citywatch.sinks.client import (
    RedisOptions,
    open_client,
    persistence_warning,
    wait_for_redis,
)
from citywatch.sinks.dispatch import (
    Dispatch,
    Keys,
    RedisDeadLetterSink,
    RedisDispatchSink,
    Written,
)
from citywatch.sinks.embedded_redis import EmbeddedRedis
from citywatch.sinks.files import JsonLinesSink
from citywatch.sinks.writer import check_permissions

log = logging.getLogger("citywatch.run")

# A replay keeps no recovery snapshots, yet Bytewax pickles every touched stateful
# key (each shard's whole detector suite) at the end of every epoch (10 s by
# default): at city scale that was 40 % of the run. One long epoch avoids it.
REPLAY_EPOCH = timedelta(days=1)


@dataclass
class RunResult:
    stats: RunStats
    seconds: float
    redis_url: str
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def events_per_s(self) -> float:
        return self.stats.events_in / self.seconds if self.seconds > 0 else 0.0


def load_reference(cfg: Config) -> Reference:
    d = cfg.data
    return Reference.load(d.zones, d.jurisdictions, d.sensors, d.cameras, cfg.zone_kinds)


@contextlib.contextmanager
def redis_for(cfg: Config, url: str | None = None) -> Iterator[tuple[str, EmbeddedRedis | None]]:
    """The Redis URL to use: the given one, the configured one, or an embedded server."""
    chosen = url or cfg.redis.url
    if chosen:
        yield chosen, None
        return
    server = EmbeddedRedis().start()
    try:
        yield server.url, server
    finally:
        server.cleanup()


def announce_embedded(command: str, server: EmbeddedRedis) -> None:
    """Say on stderr that the work orders go to a throw-away server, and where it keeps them."""
    sys.stderr.write(
        f"citywatch {command}: no Redis URL given; started a throw-away embedded redis-server "
        f"at {server.url} with its data in {server.workdir} (deleted on exit). Set "
        "CITYWATCH_REDIS_URL or [redis] url for work orders that outlive this process.\n"
    )
    sys.stderr.flush()


def check_redis(cfg: Config, url: str, wait_s: float | None, *, warn: bool = True) -> None:
    """Wait for the server (``wait_s``: None = for ever); with ``warn``, warn if it keeps
    nothing on disk."""
    opts = cfg.redis.options(url)
    client = wait_for_redis(opts, wait_s, on_wait=log.warning)
    try:
        warning = persistence_warning(client, opts.masked_url) if warn else None
        if warning:
            log.warning(warning)
    finally:
        client.close()


def preflight(opts: RedisOptions, keys: Keys) -> None:
    """Reach Redis and check the ACL user's permissions before the flow starts, so that a
    problem is one line that says what to do."""
    client = open_client(opts)
    try:
        check_permissions(client, keys, opts)
    finally:
        client.close()


class Progress:
    """Prints counters to stderr while a run goes on (a line in place on a terminal)."""

    def __init__(
        self,
        stats: RunStats,
        stream: IO[str] | None = None,
        every_s: float = 0.5,
        label: str = "replay",
        total: int | None = None,
    ) -> None:
        self.stats = stats
        self.total = total  # events expected, for a bar and a percentage (bench)
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every_s = every_s if self.tty else 5.0
        self.label = label
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._t0 = time.monotonic()

    def line(self) -> str:
        s = self.stats
        dt = max(1e-9, time.monotonic() - self._t0)
        bar = ""
        if self.total:
            done = min(1.0, s.events_in / self.total)
            bar = f"[{'#' * int(done * 20):<20}] {done:4.0%} "
        return (
            f"{self.label}: {bar}{s.events_in:,} events ({s.events_in / dt:,.0f}/s), "
            f"{sum(s.dead.values()):,} dead letters, {s.late:,} late, "
            f"{sum(s.alerts.values()):,} alerts, {sum(s.work_orders.values()):,} work orders"
        )

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self._print()

    def _print(self, final: bool = False) -> None:
        if self.tty:
            self.stream.write("\r" + self.line() + ("\n" if final else "\x1b[K"))
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def __enter__(self) -> Progress:
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._print(final=True)


def run_recordings(
    paths: Sequence[str | Path],
    cfg: Config,
    redis_url: str,
    *,
    speed: float | None = None,
    workers: int = 1,
    alerts_out: str | Path | None = None,
    dead_out: str | Path | None = None,
    late_out: str | Path | None = None,
    progress: bool = True,
    reference: Reference | None = None,
    progress_label: str = "replay",
    total_events: int | None = None,
    epoch_interval: timedelta | None = REPLAY_EPOCH,
    process_id: int | None = None,
    addresses: Sequence[str] = (),
) -> RunResult:
    """Replay recordings through the full flow into Redis; blocks until done.

    With ``addresses`` this is process ``process_id`` of a cluster that replays the
    same recordings together (``replay -p N``, or by hand across hosts): at full speed
    every process parses its share of the batches (``flows/sources_split.py``)."""
    stats = RunStats()
    holder = ReferenceHolder(reference or load_reference(cfg))
    keys = Keys(cfg.redis.prefix)
    latencies: list[float] = []
    lat_lock = threading.Lock()

    def on_written(items: list[Dispatch], results: list[Written]) -> None:
        now = time.time_ns()
        created = [d.route.queue for d, w in zip(items, results, strict=True) if w.created]
        stats.add_work_orders(created, sum(w.repeat for w in results))
        with lat_lock:
            latencies.extend((now - d.ingest_ns) / 1e6 for d in items if d.ingest_ns)

    redis_opts = cfg.redis.options(redis_url)
    preflight(redis_opts, keys)
    dispatch = BytewaxSink(
        lambda _w: RedisDispatchSink(
            redis_opts,
            keys,
            feed_maxlen=cfg.redis.feed_maxlen,
            silence_cache_s=cfg.redis.silence_cache_s,
            on_written=on_written,
        )
    )
    dead_sinks: list[Callable[[], BatchSink[DeadLetter]]] = [
        lambda: RedisDeadLetterSink(
            redis_opts,
            keys,
            maxlen=cfg.redis.dead_letter_maxlen,
            give_up_s=cfg.redis.dead_letter_give_up_s,
        )
    ]
    if dead_out:
        dead_sinks.append(lambda: JsonLinesSink(dead_out, DeadLetter.to_json))
    outputs = FlowOutputs(
        dispatch=dispatch,
        dead=BytewaxSink(lambda _w: _Multi([f() for f in dead_sinks])),
        late=BytewaxSink(lambda _w: JsonLinesSink(late_out, event_to_json)) if late_out else None,
        alerts=BytewaxSink(lambda _w: JsonLinesSink(alerts_out, Alert.to_json))
        if alerts_out
        else None,
    )
    for path in (alerts_out, dead_out, late_out):
        if path:  # a fresh, empty file: a reader finds "nothing", never "file not found"
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_bytes(b"")
    source: Source[RawBatch] = RecordingSource(paths, batch_size=cfg.flow.batch_size, speed=speed)
    cluster: dict[str, Any] = {}
    names = None
    share: ShareProgress | None = None
    if addresses:
        cluster = {"process_id": process_id or 0, "addresses": list(addresses)}
        # Shards named to even out the workers, the single-key stages counted.
        sources = announced_partitions([Path(p) for p in paths]) or ("recording",)
        fixed = replay_fixed(sources, peer=cfg.anomaly.peer is not None, shards=cfg.flow.shards)
        names = shard_names(cfg.flow.shards, len(addresses) * workers, fixed)
        if speed is None:
            # The readers keep within SHARE_AHEAD chunks of what this process's shards
            # were told was stamped: only if a shard runs here (else they run free).
            mine = range(cluster["process_id"] * workers, (cluster["process_id"] + 1) * workers)
            if any(worker_of(n, len(addresses) * workers) in mine for n in names):
                share = ShareProgress()
            source = SharedRecordingSource(paths, batch_size=cfg.flow.batch_size, progress=share)
    flow = build_flow(
        source,
        outputs,
        cfg,
        holder,
        stats,
        recoverable=False,
        shard_names=names,
        on_stamped=share.note if share is not None else None,
    )
    t0 = time.perf_counter()
    bar = Progress(stats, label=progress_label, total=total_events)
    with bar if progress else contextlib.nullcontext(), watching_zones(holder, cfg):
        cli_main(flow, workers_per_process=workers, epoch_interval=epoch_interval, **cluster)
    return RunResult(stats, time.perf_counter() - t0, redis_url, latencies)


class _Multi(BatchSink[Any]):
    def __init__(self, sinks: list[BatchSink[Any]]) -> None:
        self.sinks = sinks

    def setup(self) -> None:
        for s in self.sinks:
            s.setup()

    def write_batch(self, items: list[Any]) -> None:
        for s in self.sinks:
            s.write_batch(items)

    def close(self) -> None:
        for s in self.sinks:
            s.close()
