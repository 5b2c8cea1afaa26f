"""Over Kafka, a quiet source's absence comes due on its own partition's clock.

librdkafka's mock cluster, the flow's Kafka source partitions (every partition of the
three input topics, polled in turn as Bytewax does), the parse and watermark steps and
one detection shard, wired as the flow wires them in a live run (``timers = "wall"``)::

    citywatch.gps#0   hz-q / hz-b (gateway gw-q / gw-b) ──► then nothing
    the other 11      nothing at all (no other source's traffic)

- ``hz-q`` sends a few fixes and its gateway falls silent: its ``track.gap`` must come
  in a batch of its own partition, as that partition is read to its end and nothing
  else arrives. The shard's own wall clock is stopped in the past, so nothing but the
  partition's caught-up clock can decide it.
- ``hz-b``'s fixes (every 100 ms for 20 s) wait in Kafka as a backlog that the
  consumer reads 5 at a time while the shard's wall clock is the real one, far past
  the first fixes' deadlines: no gap may be raised while the consumer is behind, and
  once it has caught up and the truck really is silent, exactly one, from its last fix.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from datetime import UTC, datetime

import orjson
import pytest
from confluent_kafka import Producer

from citywatch.detectors.alerts import Alert
from citywatch.detectors.base import ZoneMeta
from citywatch.detectors.tracks_gap import GapDetector, GapParams
from citywatch.detectors.watermark import Watermarker, front_lead_ms
from citywatch.flows.config import Config
from citywatch.flows.config_sections import FlowSettings
from citywatch.flows.detect import DetectorSuite, ShardLogic, shard_builder
from citywatch.flows.kafka_io import KafkaBatchSource
from citywatch.flows.pipeline import ReferenceHolder, parse_step, shard_step
from citywatch.flows.records import NOT_CAUGHT_UP
from citywatch.flows.stage_watermark import watermark_step
from citywatch.flows.stats import RunStats
from citywatch.geo.reference import Reference

SILENCE_S = 1.0  # a hazmat truck's allowed silence here (the default is 300 s)
GIVE_UP_S = 90.0  # a broken flow never raises it: stop polling then (not a speed bound)


def _fix(entity: str, gw: str, ts_ms: int, k: int) -> bytes:
    lon = 121.0 + k * 1e-3  # ~95 m a fix: moving, not parked
    doc = {"type": "gps", "ts": ts_ms, "entity": entity, "lon": lon, "lat": 32.0,
           "class": "hazmat_truck", "src": gw}  # fmt: skip
    return orjson.dumps(doc)


class LiveFlow:
    """The flow's first stages over every partition of the input topics."""

    def __init__(
        self, config: Config, bootstrap: str, reference: Reference, *, batch: int, wall: bool
    ) -> None:
        settings = dataclasses.replace(config.kafka, bootstrap=bootstrap)
        source = KafkaBatchSource(settings, batch_size=batch, quiet_every_s=0.05)
        self.parts = [source.build_part("input", p, None) for p in source.list_parts()]
        stats = RunStats()
        flow = FlowSettings(timers="wall", max_out_of_order_s=30, tick_ms=50)
        self.parse = parse_step(ReferenceHolder(reference), stats)
        self.stamp = watermark_step(flow, stats)
        self.split = shard_step(1)
        frozen = datetime(2000, 1, 1, tzinfo=UTC)  # the shard's own wall clock, stopped
        now: Callable[[], datetime] = (lambda: datetime.now(UTC)) if wall else (lambda: frozen)
        gap = GapDetector(GapParams(max_silence_s={"hazmat_truck": SILENCE_S}))
        front_ms = front_lead_ms(flow.max_out_of_order_s * 1000)
        no_zones: dict[str, ZoneMeta] = {}
        self.shard: ShardLogic = shard_builder(
            lambda: DetectorSuite([gap], front_ms=front_ms),
            lambda: no_zones,
            timers="wall",
            lag_ms=flow.max_out_of_order_s * 1000,
            now=now,
            snapshots=False,
            tick_s=0.05,
        )(None)
        self.states: dict[str, Watermarker] = {}
        self.alerts: list[tuple[str, Alert]] = []  # (partition of the batch, alert)
        self.behind: list[int] = []  # caught_ms of gps#0's batches with fixes

    def poll(self) -> None:
        """One round over the partitions: each batch through to the shard."""
        for part in self.parts:
            for raw in part.next_batch():
                if raw.lines and raw.source.endswith("gps#0"):
                    self.behind.append(raw.caught_ms if raw.caught_ms is not None else 0)
                wm, stamped = self.stamp(self.states.get(raw.source), self.parse(raw))
                self.states[raw.source] = wm
                for _shard, batch in self.split(stamped):
                    for out in self.shard.on_batch([batch])[0]:
                        self.alerts += [(raw.source, a) for a in out.alerts]

    def until(self, done: Callable[[], bool]) -> None:
        end = time.monotonic() + GIVE_UP_S
        while not done() and time.monotonic() < end:
            self.poll()
            time.sleep(0.02)

    def close(self) -> None:
        for part in self.parts:
            part.close()


def _produce(bootstrap: str, topic: str, lines: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for line in lines:
        producer.produce(topic, line, partition=0)
    assert producer.flush(10) == 0


def _gaps(flow: LiveFlow, entity: str) -> list[tuple[str, Alert]]:
    return [(src, a) for src, a in flow.alerts if a.kind == "track.gap" and a.subject == entity]


@pytest.fixture()
def topics(kafka_bootstrap: str, config: Config) -> str:
    """The input topics created (4 partitions each) before the flow lists them."""
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for topic in config.kafka.topics():
        for _ in range(50):
            md = producer.list_topics(topic=topic, timeout=10).topics.get(topic)
            if md is not None and md.error is None and md.partitions:
                break
            time.sleep(0.2)
    return kafka_bootstrap


def test_a_quiet_source_is_judged_on_its_partitions_clock(
    topics: str, config: Config, reference: Reference
) -> None:
    flow = LiveFlow(config, topics, reference, batch=1000, wall=False)
    try:
        flow.until(lambda: len(flow.states) == len(flow.parts))  # every partition heard of
        start = time.time_ns() // 1_000_000
        fixes = [_fix("hz-q", "gw-q", start + k * 200, k) for k in range(5)]
        last_ts = start + 4 * 200
        for k, line in enumerate(fixes):  # as a tracker sends them: each at its own time
            flow.until(lambda k=k: time.time_ns() // 1_000_000 >= start + k * 200)
            _produce(topics, config.kafka.gps_topic, [line])
        flow.until(lambda: bool(_gaps(flow, "hz-q")))
    finally:
        flow.close()
    gaps = _gaps(flow, "hz-q")
    assert [(src, a.first_ts_ms, a.ts_ms) for src, a in gaps] == [
        (f"{config.kafka.gps_topic}#0", last_ts, last_ts + int(SILENCE_S * 1000))
    ]
    assert [a for _src, a in flow.alerts if a.kind == "track.gap" and a.subject != "hz-q"] == []


def test_no_gap_while_the_consumer_is_behind(
    topics: str, config: Config, reference: Reference
) -> None:
    start = time.time_ns() // 1_000_000 - 20_000
    fixes = [_fix("hz-b", "gw-b", start + k * 100, k) for k in range(200)]  # 20 s, 10 Hz
    last_ts = start + 199 * 100
    _produce(topics, config.kafka.gps_topic, fixes)
    flow = LiveFlow(config, topics, reference, batch=5, wall=True)
    try:
        flow.until(lambda: len(flow.behind) * 5 >= len(fixes) or bool(flow.alerts))
        read_behind = [c for c in flow.behind if c == NOT_CAUGHT_UP]
        early = list(flow.alerts)  # raised while the backlog was being read
        flow.until(lambda: bool(_gaps(flow, "hz-b")))
    finally:
        flow.close()
    assert early == []
    assert len(read_behind) >= len(flow.behind) - 2 >= 30  # read behind the partition's end
    gaps = _gaps(flow, "hz-b")
    assert [(a.first_ts_ms, a.ts_ms) for _src, a in gaps] == [
        (last_ts, last_ts + int(SILENCE_S * 1000))
    ]
