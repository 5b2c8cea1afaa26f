"""Kafka in and out: the batch source of ``citywatch run``, the dead-letter topic, producers.

The source has one Bytewax partition per Kafka partition of the gps, sensor
and video topics. Each emits :class:`~citywatch.flows.records.RawBatch` items: the raw
message values as they came, the event type the topic implies, the message
keys, and its own source id ``topic#partition`` so that the watermark step
stamps event time per Kafka partition (order is only guaranteed within one).
Its snapshot is the next offset to read: Bytewax stores it with the detector
shards' state at every epoch, so a restarted run resumes from the last
snapshot and its offsets; work orders written after that snapshot are written
again, and the Redis sink ignores the repeat.

The consumer group is used for offsets that monitoring tools read (committed
at each snapshot), never to decide where to resume: the recovery snapshot does
that. Partitions are assigned explicitly, so the consumer group never
rebalances under Bytewax.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from citywatch.detectors.events import DeadLetter, parse_ts
from citywatch.flows.config import Config, ConfigError, KafkaSettings
from citywatch.flows.records import CAUGHT_UP_FOR_GOOD, NOT_CAUGHT_UP, RawBatch
from citywatch.replay.recording import iter_lines, unwrap
from citywatch.sinks.base import BatchSink

log = logging.getLogger("citywatch.kafka")

# Set by ``request_stop`` (SIGTERM): every partition ends at its next poll, so the
# dataflow drains, takes its last snapshot and closes its sinks.
STOP = threading.Event()

_IDLE_POLL_S = 0.05
# A caught-up partition that returned events is polled again this much later, not at
# once: each poll is a batch through every stage, and polled as fast as the worker could
# loop, the batches stayed small whatever the rate, so the flow spent most of a core on
# per-batch work (0.9 of a core at 5,000 and at 10,000 ev/s alike). A partition with a
# backlog (a full batch) is polled again at once.
_DATA_POLL_S = 0.02
# A consumer's close() waits for its broker threads: about 4 s each when the brokers are
# gone, and Bytewax closes the partitions one after the other (46 s for 12 partitions).
# They close side by side instead, and a stopping run waits this long for them in all.
CLOSE_WAIT_S = 5.0
_closing: list[threading.Thread] = []
_closing_lock = threading.Lock()
FETCH_WAIT_MS = 50  # the flow's consumers' fetch.wait.max.ms unless [kafka.client] sets it
_KEY_FIELDS = {"gps": "entity", "sensor": "sensor", "video": "camera"}


class KafkaSetupError(ConfigError):
    """Kafka could not be reached or a topic is missing; check bootstrap, topics and security."""


def request_stop() -> None:
    STOP.set()


def client_config(k: KafkaSettings, **extra: Any) -> dict[str, Any]:
    """librdkafka settings: the bootstrap, then ``[kafka.client]`` (security), then ``extra``."""
    if not k.bootstrap:
        msg = (
            "kafka: no bootstrap servers; set [kafka] bootstrap in the config or "
            "CITYWATCH_KAFKA_BOOTSTRAP (e.g. broker1:9092,broker2:9092), or pass --bootstrap"
        )
        raise KafkaSetupError(msg)
    return {"bootstrap.servers": k.bootstrap, **dict(k.client), **extra}


def list_partitions(
    conf: Mapping[str, Any], topics: Sequence[str], timeout_s: float = 15.0
) -> list[tuple[str, int]]:
    """``(topic, partition)`` for every partition of ``topics``, through a consumer's metadata."""
    consumer = Consumer({**conf, "group.id": conf.get("group.id", "citywatch-metadata")})
    try:
        out: list[tuple[str, int]] = []
        for topic in topics:
            try:
                md = consumer.list_topics(topic, timeout=timeout_s)
            except KafkaException as exc:
                msg = (
                    f"kafka: cannot read metadata of topic {topic!r} from "
                    f"{conf.get('bootstrap.servers')} ({exc}); check bootstrap and security "
                    "settings"
                )
                raise KafkaSetupError(msg) from None
            tmd = md.topics.get(topic)
            if tmd is None or tmd.error is not None or not tmd.partitions:
                why = (
                    tmd.error.str()
                    if tmd is not None and tmd.error is not None
                    else "no partitions"
                )
                msg = (
                    f"kafka: topic {topic!r}: {why}; create it (with at least as many "
                    "partitions as workers) or fix the topic names in [kafka]"
                )
                raise KafkaSetupError(msg)
            out += [(topic, p) for p in sorted(tmd.partitions)]
        return out
    finally:
        consumer.close()


def part_name(topic: str, partition: int) -> str:
    return f"{topic}#{partition}"


@dataclass(frozen=True, slots=True)
class PartitionHooks:
    """Callbacks of the source partitions (metrics); all optional."""

    on_messages: Callable[[str, int], None] | None = None
    on_lag: Callable[[str, int, int], None] | None = None


class _KafkaPartition(StatefulSourcePartition[RawBatch, int]):
    def __init__(
        self,
        conf: dict[str, Any],
        topic: str,
        partition: int,
        event_type: str,
        resume: int | None,
        *,
        peers: tuple[str, ...],
        start: str,
        batch_size: int,
        stop_at_end: bool,
        idle_s: float,
        hooks: PartitionHooks,
        quiet_every_s: float = 0.25,
    ) -> None:
        self._topic, self._partition, self._type = topic, partition, event_type
        self._peers = peers
        self._name = part_name(topic, partition)
        self._hooks = hooks
        self._batch_size = batch_size
        self._stop_at_end = stop_at_end
        self._idle_s = idle_s
        self._consumer = Consumer(
            {
                **conf,
                "enable.auto.commit": False,
                "enable.partition.eof": stop_at_end,
                "statistics.interval.ms": 5000,
                "stats_cb": self._stats,
            }
        )
        tp = self._tp = TopicPartition(topic, partition)
        self._fetch_wait_ms = int(conf.get("fetch.wait.max.ms", FETCH_WAIT_MS))
        self._quiet_every_s = quiet_every_s
        self._last_sent = time.monotonic()
        if resume is None:
            low, high = self._consumer.get_watermark_offsets(tp, timeout=15)
            resume = low if start == "earliest" else high
        self._offset: int = resume
        self._consumer.assign([TopicPartition(topic, partition, resume)])
        self._registered = False
        self._idle = False
        self._done = False
        self._last_data = time.monotonic()
        self._awake: datetime | None = None
        log.info(
            "partition assigned",
            extra={"topic": topic, "partition": partition, "offset": resume},
        )

    def _stats(self, raw: str) -> None:
        if self._hooks.on_lag is None:
            return
        try:
            parts = orjson.loads(raw)["topics"][self._topic]["partitions"]
            high = int(parts[str(self._partition)]["hi_offset"])
        except (KeyError, TypeError, ValueError, orjson.JSONDecodeError):
            return
        if high >= 0:
            self._hooks.on_lag(self._topic, self._partition, max(0, high - self._offset))

    def _batch(
        self, lines: list[bytes], keys: list[bytes | None], idle: bool, peers: tuple[str, ...] = (),
        *, caught_ms: int = NOT_CAUGHT_UP, now_ns: int | None = None,
    ) -> RawBatch:  # fmt: skip
        self._last_sent = time.monotonic()
        return RawBatch(
            self._name,
            lines,
            time.time_ns() if now_ns is None else now_ns,
            [self._type] * len(lines),
            keys,
            idle,
            peers,
            wall_clock=True,
            caught_ms=caught_ms,
        )

    def _caught_ms(self, now_ns: int) -> int:
        """The poll's wall time less the fetch wait when the consumer's position reached the
        high watermark of the last fetch response (sent at most the fetch wait after
        anything new came): all was read by then; else :data:`NOT_CAUGHT_UP` (behind)."""
        _low, high = self._consumer.get_watermark_offsets(self._tp, cached=True)
        if high < 0 or self._offset < high:
            return NOT_CAUGHT_UP
        return now_ns // 1_000_000 - self._fetch_wait_ms

    def next_batch(self) -> list[RawBatch]:
        if self._done:
            raise StopIteration
        if STOP.is_set():
            self._done = True
            return []
        if not self._registered:
            # An empty first batch tells every shard this source exists, so none
            # runs ahead on the watermarks of the partitions that answered first.
            self._registered = True
            return [self._batch([], [], False, self._peers)]
        msgs = self._consumer.consume(self._batch_size, 0)
        lines: list[bytes] = []
        keys: list[bytes | None] = []
        at_end = False
        for msg in msgs:
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    at_end = True
                    continue
                if err.fatal():
                    raise KafkaException(err)
                log.warning("kafka error", extra={"partition": self._name, "error": str(err)})
                continue
            lines.append(msg.value() or b"")
            keys.append(_as_bytes(msg.key()))
            self._offset = (msg.offset() or 0) + 1
        now = time.monotonic()
        now_ns = time.time_ns()
        caught = self._caught_ms(now_ns)
        out: list[RawBatch] = []
        if lines:
            self._last_data = now
            self._idle = False
            if self._hooks.on_messages is not None:
                self._hooks.on_messages(self._topic, len(lines))
            out.append(self._batch(lines, keys, False, caught_ms=caught, now_ns=now_ns))
        if at_end and self._stop_at_end:
            self._done = True
            out.append(self._batch([], [], True, caught_ms=CAUGHT_UP_FOR_GOOD, now_ns=now_ns))
        elif not lines:
            if not self._idle and now - self._last_data >= self._idle_s:
                self._idle = True
                out.append(self._batch([], [], True, caught_ms=caught, now_ns=now_ns))
            elif caught != NOT_CAUGHT_UP and now - self._last_sent >= self._quiet_every_s:
                # Quiet and caught up: say so every tick, so that the absence of this
                # partition's keys is judged close to the wall clock (its lanes).
                out.append(self._batch([], [], self._idle, caught_ms=caught, now_ns=now_ns))
            self._awake = datetime.now(UTC) + timedelta(seconds=_IDLE_POLL_S)
            return out
        if self._done or len(lines) >= self._batch_size:
            self._awake = None  # a backlog (or the end): at once
        else:  # caught up: let the next events gather for a moment
            self._awake = datetime.now(UTC) + timedelta(seconds=_DATA_POLL_S)
        return out

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self) -> int:
        # For monitoring only (lag per consumer group); the resume point is this snapshot.
        try:
            self._consumer.commit(
                offsets=[TopicPartition(self._topic, self._partition, self._offset)],
                asynchronous=True,
            )
        except KafkaException:
            log.debug("offset commit failed", extra={"partition": self._name})
        return self._offset

    def close(self) -> None:
        # Nothing is left to commit (offsets go with the snapshots): closed in the
        # background, all partitions at once; ``await_consumers_closed`` bounds the wait.
        close_in_background(self._consumer.close, self._name)


def close_in_background(close: Callable[[], None], name: str) -> None:
    """Run ``close`` (a Kafka client's) on a daemon thread of its own, so that clients
    whose brokers are gone close side by side and cannot keep the process from exiting."""

    def run() -> None:
        try:
            close()
        except Exception as exc:  # noqa: BLE001 - a close that fails is only logged
            log.warning("kafka client close failed", extra={"client": name, "error": str(exc)})

    thread = threading.Thread(target=run, name=f"kafka-close-{name}", daemon=True)
    thread.start()
    with _closing_lock:
        _closing.append(thread)


def await_consumers_closed(timeout_s: float = CLOSE_WAIT_S) -> int:
    """Wait up to ``timeout_s`` in all for the clients closing in the background; returns
    how many had not closed by then (their brokers unreachable: they are left to the
    process's exit)."""
    deadline = time.monotonic() + timeout_s
    with _closing_lock:
        threads = list(_closing)
        _closing.clear()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    return sum(t.is_alive() for t in threads)


class KafkaBatchSource(FixedPartitionedSource[RawBatch, int]):
    """The gps, sensor and video topics as batches of raw lines, one partition per Kafka partition.

    ``stop_at_end`` ends each partition at the end it finds (backfills, tests,
    benchmarks); otherwise partitions follow the topics until :func:`request_stop`.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        batch_size: int = 1000,
        stop_at_end: bool = False,
        hooks: PartitionHooks | None = None,
        quiet_every_s: float = 0.25,
    ) -> None:
        self.settings = settings
        # A caught-up partition with nothing new sends an empty batch this often
        # ([flow] tick_ms), saying how far it is caught up.
        self.quiet_every_s = quiet_every_s
        # librdkafka holds a fetch up to fetch.wait.max.ms (500 ms by default) when a
        # broker answers it only then, as the mock cluster does: that was most of a live
        # alert's typical delay. [kafka.client] may still set it.
        self.conf = {
            "fetch.wait.max.ms": FETCH_WAIT_MS,
            **client_config(settings, **{"group.id": settings.group_id}),
        }
        self.types = settings.topics()
        self.batch_size = batch_size
        self.stop_at_end = stop_at_end
        self.hooks = hooks or PartitionHooks()
        self._parts: list[str] | None = None

    def list_parts(self) -> list[str]:
        if self._parts is None:
            self._parts = [part_name(t, p) for t, p in list_partitions(self.conf, list(self.types))]
        return self._parts

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _KafkaPartition:
        topic, _, idx = for_part.rpartition("#")
        if topic not in self.types:
            msg = (
                f"kafka: the recovery snapshot has partition {for_part!r} of a topic no longer "
                f"configured ({', '.join(self.types)}); restore the topic names or start with "
                "a fresh recovery directory"
            )
            raise KafkaSetupError(msg)
        return _KafkaPartition(
            dict(self.conf),
            topic,
            int(idx),
            self.types[topic],
            resume_state,
            peers=tuple(self.list_parts()),
            start=self.settings.start,
            batch_size=self.batch_size,
            stop_at_end=self.stop_at_end,
            idle_s=self.settings.idle_partition_s,
            hooks=self.hooks,
            quiet_every_s=self.quiet_every_s,
        )


class KafkaDeadLetterSink(BatchSink[DeadLetter]):
    """Dead letters to the DLQ topic: the raw bytes as the value, the reason in headers."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self._producer: Producer | None = None
        self.failed = 0

    def setup(self) -> None:
        self._producer = Producer(client_config(self.settings, **{"linger.ms": 50}))

    def _delivered(self, err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            self.failed += 1
            log.error("dead letter not delivered", extra={"error": str(err)})

    def write_batch(self, items: list[DeadLetter]) -> None:
        assert self._producer is not None, "setup() first"
        for dl in items:
            doc = dl.to_json()
            headers: list[tuple[str, str | bytes | None]] = [
                ("reason", doc["reason"].encode()),
                ("category", doc["category"].encode()),
                ("source", dl.source.encode()),
            ]
            _produce(
                self._producer, self.settings.dlq_topic, dl.raw, None, headers, self._delivered
            )
        self._producer.poll(0)

    def close(self) -> None:
        if self._producer is not None:
            left = self._producer.flush(10)
            if left:  # brokers unreachable: they stay in the Redis dead-letter stream
                log.warning(
                    "dead letters not delivered to the DLQ topic",
                    extra={"topic": self.settings.dlq_topic, "messages": left},
                )


def _produce(
    producer: Producer,
    topic: str,
    value: bytes,
    key: bytes | None,
    headers: list[tuple[str, str | bytes | None]] | None = None,
    on_delivery: Callable[[KafkaError | None, Any], None] | None = None,
) -> None:
    while True:
        try:
            producer.produce(topic, value=value, key=key, headers=headers, on_delivery=on_delivery)
            return
        except BufferError:  # the local queue is full: let deliveries drain
            producer.poll(0.1)


# --- replay --to kafka ----------------------------------------------------------------


@dataclass(slots=True)
class ProduceResult:
    messages: int
    by_topic: dict[str, int]
    seconds: float
    failed: int


def route_line(
    raw: bytes, implied: str | None, topics: Mapping[str, str]
) -> tuple[str, bytes | None]:
    """The topic and key of one event: its type's topic, keyed by entity / sensor / camera.

    Lines that do not parse go to the gps topic with no key (they become dead letters).

    >>> t = {"gps": "citywatch.gps", "sensor": "citywatch.sensor", "video": "citywatch.video"}
    >>> route_line(b'{"type":"sensor","sensor":"wl-3"}', None, t)
    ('citywatch.sensor', b'wl-3')
    >>> route_line(b'{not json', None, t)
    ('citywatch.gps', None)
    """
    etype = implied
    key: bytes | None = None
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        obj = None
    if isinstance(obj, dict):
        t = obj.get("type")
        if isinstance(t, str) and t in topics:
            etype = t
        if etype in _KEY_FIELDS:
            k = obj.get(_KEY_FIELDS[etype])
            key = str(k).encode() if k is not None else None
    return topics[etype if etype is not None and etype in topics else "gps"], key


def _as_bytes(key: str | bytes | None) -> bytes | None:
    return key.encode() if isinstance(key, str) else key


def _recording_messages(
    paths: Sequence[Path], topics: Mapping[str, str]
) -> Iterator[tuple[str, bytes | None, bytes, int | None]]:
    """``(topic, key, value, arrival_ms)`` per line, in recording order (several files merged)."""
    from citywatch.flows.sources import merged_lines

    if len(paths) == 1:
        for line in iter_lines(paths[0]):
            raw, implied, env = unwrap(line)
            yield _message(raw, implied, env, topics)
        return
    # merged_lines drops envelopes; several files are merged by time, like replay.
    for raw, implied, _, _ in merged_lines(paths):
        yield _message(raw, implied, None, topics)


def _message(
    raw: bytes, implied: str | None, env: dict[str, Any] | None, topics: Mapping[str, str]
) -> tuple[str, bytes | None, bytes, int | None]:
    topic, key = route_line(raw, implied, topics)
    arrival: int | None = None
    if env is not None:
        k = env.get("key")
        if isinstance(k, str):
            key = k.encode()
        a = env.get("arrival_ms")
        arrival = a if isinstance(a, int) else None
    if arrival is None:
        try:
            obj = orjson.loads(raw)
            arrival = parse_ts(obj["ts"]) if isinstance(obj, dict) and "ts" in obj else None
        except Exception:  # noqa: BLE001 - a bad line has no time; it is sent at once
            arrival = None
    return topic, key, raw, arrival


class PaceClock:
    """The recording's time for pacing a replay, robust to a gateway's wrong clock.

    Lines are paced by their time relative to the first line, and the clock only
    moves forward. A line more than ``max_jump_ms`` ahead of the clock (a gateway
    whose clock is hours ahead, as field recordings have) is sent at once and does
    not move it, or it would stall every line behind it for the length of the jump;
    ``confirm`` such lines in a row are a real gap in the recording, and the clock
    jumps. ``advance`` returns the ms since the first line to pace at, or None (at once).

    >>> c = PaceClock()
    >>> [c.advance(t) for t in (1_000, 2_000, 3_600_000, 1_500, 3_000)]
    [None, 1000, None, None, 2000]
    """

    def __init__(self, max_jump_ms: int = 60_000, confirm: int = 8) -> None:
        self.max_jump_ms, self.confirm = max_jump_ms, confirm
        self.first_ms: int | None = None
        self.now_ms = 0
        self._ahead = 0

    def advance(self, arrival_ms: int) -> int | None:
        if self.first_ms is None:
            self.first_ms = arrival_ms
        t = arrival_ms - self.first_ms
        if t <= self.now_ms:
            self._ahead = 0
            return None
        if t - self.now_ms > self.max_jump_ms:
            self._ahead += 1
            if self._ahead < self.confirm:
                return None
        self._ahead = 0
        self.now_ms = t
        return t


def produce_recording(
    paths: Sequence[str | Path],
    settings: KafkaSettings,
    *,
    speed: float | None = None,
    progress: Callable[[int, dict[str, int]], None] | None = None,
    producer_conf: Mapping[str, Any] | None = None,
    sent: list[float] | None = None,
) -> ProduceResult:
    """Send recordings into the topics, keyed, paced at ``speed`` times real time (None: max).
    ``sent`` (benchmarks): the wall time (``time.time()``) each line was handed to the
    producer is appended to it, in recording order.

    Pacing follows the envelope's arrival time when there is one, else the
    event time, relative to the first line (:class:`PaceClock`: a line far ahead,
    a gateway's wrong clock, is sent at once without stalling the rest); keys come
    from the envelope or the
    event (entity, sensor, camera), so each key lands on one partition in order.
    """
    types = settings.topics()
    by_type = {v: k for k, v in types.items()}
    producer = Producer(
        client_config(settings, **{"linger.ms": 20, "acks": "all", **(producer_conf or {})})
    )
    failed = 0

    def delivered(err: KafkaError | None, _msg: Any) -> None:
        nonlocal failed
        if err is not None:
            failed += 1

    by_topic: dict[str, int] = {}
    n = 0
    t0 = time.monotonic()
    pace = PaceClock()
    last_report = t0
    for topic, key, value, arrival in _recording_messages([Path(p) for p in paths], by_type):
        if speed is not None and arrival is not None and (at := pace.advance(arrival)) is not None:
            due = t0 + at / 1000.0 / speed
            while (delay := due - time.monotonic()) > 0:
                producer.poll(min(delay, 0.2))
        _produce(producer, topic, value, key, None, delivered)
        if sent is not None:
            sent.append(time.time())
        n += 1
        by_topic[topic] = by_topic.get(topic, 0) + 1
        if n % 1000 == 0:
            producer.poll(0)
            now = time.monotonic()
            if progress is not None and now - last_report >= 0.5:
                last_report = now
                progress(n, by_topic)
    remaining = producer.flush(60)
    if progress is not None:
        progress(n, by_topic)
    return ProduceResult(n, by_topic, time.monotonic() - t0, failed + remaining)


def replay_to_kafka(
    paths: Sequence[Path],
    cfg: Config,
    bootstrap: str | None,
    speed: float | None,
    *,
    quiet: bool = False,
) -> int:
    """``citywatch replay --to kafka``: produce with a progress line; exit code."""
    import dataclasses
    import sys

    settings = cfg.kafka if not bootstrap else dataclasses.replace(cfg.kafka, bootstrap=bootstrap)
    tty = sys.stderr.isatty()

    def progress(n: int, by_topic: dict[str, int]) -> None:
        if quiet:
            return
        line = (
            f"replay → kafka: {n:,} messages ("
            + ", ".join(f"{t} {c:,}" for t, c in sorted(by_topic.items()))
            + ")"
        )
        sys.stderr.write(("\r" + line + "\x1b[K") if tty else line + "\n")
        sys.stderr.flush()

    result = produce_recording(paths, settings, speed=speed, progress=progress)
    if not quiet and tty:
        sys.stderr.write("\n")
    print(
        f"produced {result.messages:,} messages to {settings.bootstrap} in "
        f"{result.seconds:.1f}s ({result.messages / max(result.seconds, 1e-9):,.0f}/s); "
        f"failed deliveries: {result.failed}"
    )
    return 1 if result.failed else 0
