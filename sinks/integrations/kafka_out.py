"""``[outputs.kafka]``: alerts and work-order changes to Kafka, for the analysis systems.

Follows the live feed through the consumer group ``kafka`` (created at the
feed's end the first time) and publishes, keyed by incident id (so one
incident's records stay in order on one partition):

- to ``alerts_topic`` every alert that created, grew or re-routed a work order:
  the alert JSON of the alert contract (``id``, ``kind``, ``severity``,
  ``subject``, ``zone``, ``lon``, ``lat``, ``ts``, ``evidence``, ``incident``,
  …) plus ``work_order_id``;
- to ``workorders_topic`` every work-order change: the webhook envelope
  (``type``, ``timestamp``, ``data``; see
  :mod:`citywatch.sinks.integrations.events`) plus ``event_id``, the feed
  entry id, unique per change.

The producer is idempotent (``enable.idempotence``, ``acks=all``): its own
retries never duplicate a record. Feed entries are acknowledged only after
Kafka confirmed every record of the batch; after a crash in between the batch
is published again, so consumers that need exactly-once drop repeats by
``id`` (alerts) or ``event_id`` (changes).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson
import redis
from confluent_kafka import KafkaException, Producer

from citywatch.sinks.dispatch import Keys
from citywatch.sinks.integrations.events import build_event
from citywatch.sinks.integrations.settings import KafkaOutputSettings
from citywatch.sinks.integrations.webhooks import ensure_group

log = logging.getLogger(__name__)
GROUP = "kafka"


class KafkaOutputError(RuntimeError):
    """Kafka refused or lost records; check the bootstrap address, ACLs and topics."""


def producer_config(bootstrap: str, settings: KafkaOutputSettings) -> dict[str, Any]:
    """The librdkafka settings: idempotent, all in-sync replicas, then the user's own."""
    return {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "zstd",
        **dict(settings.client),
    }


def _s(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


class KafkaOutput:
    """Feed -> Kafka topics; ``step()`` publishes one batch and acknowledges it."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        settings: KafkaOutputSettings,
        bootstrap: str,
        *,
        consumer: str = "kafka-out",
    ) -> None:
        self.client = client
        self.keys = keys
        self.settings = settings
        self.config = producer_config(bootstrap, settings)
        self.consumer = consumer
        self.producer: Producer | None = None
        self._pending_done = False
        self.published = 0

    def setup(self) -> None:
        ensure_group(self.client, self.keys.feed(), GROUP, "$")
        self.producer = Producer(self.config)

    def step(self, block_ms: int = 1000) -> int:
        """Publish one batch of feed entries (ours pending from before first)."""
        start = ">" if self._pending_done else "0"
        got: Any = self.client.xreadgroup(
            GROUP,
            self.consumer,
            {self.keys.feed(): start},
            count=self.settings.batch,
            block=None if start == "0" else block_ms,
        )
        entries = [(_s(i), f) for _, batch in got or [] for i, f in batch]
        if start == "0" and not entries:
            self._pending_done = True
            return 0
        if entries:
            self.publish(entries)
        return len(entries)

    def records(
        self, entry_id: str, fields: Mapping[str, str], order: Mapping[str, str]
    ) -> list[tuple[str, str, bytes]]:
        """(topic, key, value) for one feed entry."""
        event = build_event(entry_id, fields, order, 0)
        data = event["data"]
        key = data["incident"] or data["work_order_id"]
        out = [
            (
                self.settings.workorders_topic,
                key,
                orjson.dumps({**event, "event_id": entry_id}),
            )
        ]
        if isinstance(data["alert"], dict):
            alert = {**data["alert"], "work_order_id": data["work_order_id"]}
            out.append((self.settings.alerts_topic, key, orjson.dumps(alert)))
        return out

    def publish(self, entries: list[tuple[str, Mapping[Any, Any] | None]]) -> None:
        assert self.producer is not None, "setup() first"
        docs = [(i, {_s(k): _s(v) for k, v in (f or {}).items()}) for i, f in entries]
        pipe = self.client.pipeline(transaction=False)
        for _, f in docs:
            pipe.hgetall(self.keys.wo(f.get("wo", "")))
        orders = [{_s(k): _s(v) for k, v in h.items()} for h in pipe.execute()]
        errors: list[str] = []

        def delivered(err: Any, msg: Any) -> None:
            if err is not None:
                errors.append(str(err))

        n = 0
        for (entry_id, f), order in zip(docs, orders, strict=True):
            if not f.get("wo"):
                continue
            for topic, key, value in self.records(entry_id, f, order):
                self._produce(topic, key, value, delivered)
                n += 1
        left = self.producer.flush(30)
        if left or errors:
            msg = (
                f"Kafka did not confirm {left + len(errors)} of {n} records "
                f"({'; '.join(errors[:3]) or 'timed out'}); the batch will be published again"
            )
            raise KafkaOutputError(msg)
        self.client.xack(self.keys.feed(), GROUP, *[i for i, _ in docs])
        self.published += n

    def _produce(self, topic: str, key: str, value: bytes, cb: Any) -> None:
        assert self.producer is not None
        while True:
            try:
                self.producer.produce(topic, value=value, key=key, on_delivery=cb)
                return
            except BufferError:  # the local queue is full: let it drain
                self.producer.poll(0.1)
            except KafkaException as exc:
                msg = f"Kafka refused a record for {topic}: {exc}"
                raise KafkaOutputError(msg) from exc

    def close(self) -> None:
        if self.producer is not None:
            self.producer.flush(10)
