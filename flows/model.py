"""The batch items that travel between the flow's steps."""

from __future__ import annotations

from dataclasses import dataclass, field

from citywatch.detectors.alerts import Alert
from citywatch.detectors.events import DeadLetter, Event
from citywatch.detectors.watermark import NO_WATERMARK


@dataclass(slots=True)
class RawBatch:
    """Raw input lines from one source partition, with their wall-clock ingest time."""

    source: str
    lines: list[bytes]
    ingest_ns: int
    default_types: list[str | None] | None = None
    # Kafka message keys, aligned with ``lines`` (None for recordings).
    keys: list[bytes | None] | None = None
    # The source has nothing to say for now (caught up for a while, or at its end):
    # it no longer holds back the combined watermark of the shards.
    idle: bool = False
    # All sources of the input, announced in each source's first batch, so that no
    # shard runs ahead on the watermarks of the sources that happened to come first.
    peers: tuple[str, ...] = ()
    # Wall-clock arrival time of each line when the recording kept it (envelopes).
    arrival_ms: list[int] | None = None
    # The lines arrive live (Kafka): their ingest time is the wall clock they came at.
    wall_clock: bool = False


@dataclass(slots=True)
class EventBatch:
    source: str
    events: list[Event]
    dead: list[DeadLetter]
    ingest_ns: int
    late: list[Event] = field(default_factory=list)
    wm_ms: int = NO_WATERMARK
    idle: bool = False
    peers: tuple[str, ...] = ()
    # System alerts raised by the watermark step (source.clock_skew).
    alerts: list[Alert] = field(default_factory=list)
    # Arrival time of each event (aligned with ``events``), see RawBatch.
    arrival_ms: list[int] | None = None
    wall_clock: bool = False


@dataclass(slots=True)
class ShardBatch:
    """The on-time events of one shard from one input batch, and the watermark after it."""

    events: list[Event]
    wm_ms: int
    ingest_ns: int
    source: str = ""
    idle: bool = False
    peers: tuple[str, ...] = ()
