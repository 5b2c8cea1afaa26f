"""The recorder: Kafka topics into a recording, with each message's envelope.

Each line is ``{"kafka": {"topic", "partition", "offset", "key", "arrival_ms"},
"value": ...}`` in the order the messages were read; the value is the event
object when the message is one JSON object (kept byte for byte only when it
was already compact), else the message text. ``arrival_ms`` is the message's
Kafka timestamp (when the broker or producer stamped it), falling back to the
time it was read. Compression follows the file name (``.zst``, ``.gz``).
Replaying the recording (``citywatch replay`` or ``--to kafka``) gives the same
events, keys and relative timing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from threading import Event
from typing import Any

import orjson
from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Consumer, KafkaError, TopicPartition

from citywatch.replay.recording import RecordingWriter


@dataclass(slots=True)
class RecordResult:
    messages: int = 0
    by_topic: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def envelope(
    topic: str, partition: int, offset: int, key: bytes | None, arrival_ms: int, value: bytes
) -> bytes:
    """One recording line for a Kafka message.

    >>> envelope("citywatch.gps", 2, 41, b"truck-7", 1_000, b'{"type":"gps"}')
    b'{"kafka":{"topic":"citywatch.gps","partition":2,"offset":41,"key":"truck-7","arrival_ms":1000},"value":{"type":"gps"}}'
    >>> envelope("citywatch.gps", 0, 1, None, 5, b"not json")[-19:]
    b'"value":"not json"}'
    """
    env = {
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "key": key.decode("utf-8", errors="replace") if key is not None else None,
        "arrival_ms": arrival_ms,
    }
    head = b'{"kafka":' + orjson.dumps(env) + b',"value":'
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        obj = None
    if isinstance(obj, dict) and orjson.dumps(obj) == value:
        return head + value + b"}"
    return head + orjson.dumps(value.decode("utf-8", errors="replace")) + b"}"


def record(
    conf: Mapping[str, Any],
    partitions: Sequence[tuple[str, int]],
    out: str | Path,
    *,
    from_start: bool = True,
    until_end: bool = False,
    max_messages: int | None = None,
    stop: Event | None = None,
    progress: Callable[[RecordResult], None] | None = None,
) -> RecordResult:
    """Read ``partitions`` into the recording ``out`` until the end, a count, or ``stop``."""
    stop = stop or Event()
    consumer = Consumer({**conf, "enable.auto.commit": False, "enable.partition.eof": until_end})
    assigned = []
    for topic, p in partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=15)
        assigned.append(TopicPartition(topic, p, low if from_start else high))
    consumer.assign(assigned)
    pending = {(tp.topic, tp.partition) for tp in assigned}
    result = RecordResult()
    t0 = time.monotonic()
    last = t0
    header = {
        "recorder": {
            "topics": sorted({t for t, _ in partitions}),
            "from_start": from_start,
            # Replays announce every partition up front from this list, so the
            # watermark waits for partitions whose first lines come later.
            "partitions": sorted(f"{t}#{p}" for t, p in partitions),
        }
    }
    try:
        with RecordingWriter(out, header=header) as writer:
            while not stop.is_set():
                if until_end and not pending:
                    break
                if max_messages is not None and result.messages >= max_messages:
                    break
                for msg in consumer.consume(1000, 0.2):
                    err = msg.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            pending.discard((msg.topic(), msg.partition()))
                        continue
                    kind, ts = msg.timestamp()
                    arrival = ts if kind != TIMESTAMP_NOT_AVAILABLE else int(time.time() * 1000)
                    topic = msg.topic() or ""
                    key = msg.key()
                    writer.write_line(
                        envelope(
                            topic,
                            msg.partition() or 0,
                            msg.offset() or 0,
                            key.encode() if isinstance(key, str) else key,
                            arrival,
                            msg.value() or b"",
                        )
                    )
                    result.messages += 1
                    result.by_topic[topic] = result.by_topic.get(topic, 0) + 1
                    if max_messages is not None and result.messages >= max_messages:
                        break
                now = time.monotonic()
                if progress is not None and now - last >= 0.5:
                    last = now
                    result.seconds = now - t0
                    progress(result)
    finally:
        consumer.close()
    result.seconds = time.monotonic() - t0
    return result
