"""The records that flow between the steps of the warning flow.

Each step of :func:`citywatch.flows.pipeline.build_flow` is a function from one
record type to the next; none inspects an item's type to decide what it is::

    RawBatch ──parse──► EventBatch ──watermark──► StampedBatch ──shard──► ShardBatch
    ShardBatch ──detect──► ShardOutput ──► AlertBatch (and stop spans, dead letters)
    StampedBatch ──► AlertBatch (system alerts; household peers)
    AlertBatch ──fusion──► AlertBatch ──incidents──► IncidentBatch ──route──► Dispatch

The records are frozen: a step builds the next record and never changes the
one it got (the lists inside belong to the record that made them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from citywatch.detectors.alerts import Alert
from citywatch.detectors.events import DeadLetter, Event
from citywatch.detectors.incidents import IncidentView
from citywatch.detectors.tracks_rendezvous import StopSpan
from citywatch.detectors.watermark import NO_WATERMARK
from citywatch.flows import exchange

# ``caught_ms`` of a live partition's batch (see RawBatch): still behind its end, or
# ended for good (nothing more will come of it).
NOT_CAUGHT_UP = NO_WATERMARK
CAUGHT_UP_FOR_GOOD = 2**62


@dataclass(frozen=True, slots=True)
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
    # The batch's number among its source's batches when several workers read one
    # recording (``flows/sources_split.py``): the watermark step restores that order.
    seq: int | None = None
    # Live Kafka only: the wall-clock time (ms) by which the consumer had read every
    # message of its partition when it polled this batch (its poll found the partition's
    # end), NOT_CAUGHT_UP while it is behind, CAUGHT_UP_FOR_GOOD once it ended; None when
    # the input cannot tell (recordings). See ``citywatch.flows.stage_watermark``.
    caught_ms: int | None = None


@dataclass(frozen=True, slots=True)
class EventBatch:
    """The parsed events of one raw batch and its dead letters."""

    source: str
    events: list[Event]
    dead: list[DeadLetter]
    ingest_ns: int
    idle: bool = False
    peers: tuple[str, ...] = ()
    # Arrival time of each event (aligned with ``events``), see RawBatch.
    arrival_ms: list[int] | None = None
    wall_clock: bool = False
    # The partition's input ended: events still held for their source's verdict are
    # decided (refused) with it (see ``citywatch.detectors.watermark``).
    end: bool = False
    seq: int | None = None  # see RawBatch
    caught_ms: int | None = None  # see RawBatch

    def __reduce__(self) -> tuple[Any, ...]:
        """Crossing to another process: the events as plain tuples (``flows/exchange.py``)."""
        return _event_batch, self._fields()

    def _fields(self) -> tuple[Any, ...]:
        return (
            self.source,
            exchange.pack_events(self.events),
            exchange.pack_dead(self.dead),
            self.ingest_ns,
            self.idle,
            self.peers,
            self.arrival_ms,
            self.wall_clock,
            self.end,
            self.seq,
            self.caught_ms,
        )


def _event_batch(
    source: str,
    events: exchange.Packed,
    dead: tuple[tuple[bytes, str, str, str], ...],
    ingest_ns: int,
    idle: bool,
    peers: tuple[str, ...],
    arrival: list[int] | None,
    wall: bool,
    end: bool,
    seq: int | None,
    caught: int | None,
) -> EventBatch:
    return EventBatch(
        source,
        exchange.unpack_events(events),
        exchange.unpack_dead(dead),
        ingest_ns,
        idle,
        peers,
        arrival,
        wall,
        end,
        seq,
        caught,
    )


@dataclass(frozen=True, slots=True)
class StampedBatch:
    """One partition's batch after its watermark: on-time events, late events, dead
    letters (including future timestamps), the watermark after it, system alerts."""

    source: str
    events: list[Event]
    late: list[Event]
    dead: list[DeadLetter]
    wm_ms: int
    ingest_ns: int
    idle: bool = False
    peers: tuple[str, ...] = ()
    alerts: list[Alert] = field(default_factory=list)  # source.clock_skew
    # Events set aside (late, future-timestamp) with the partition's watermark at their
    # arrival: their keys were heard from then, so absence detectors do not call them
    # silent (see ``citywatch.flows.stage_watermark``).
    heard: list[tuple[Event, int]] = field(default_factory=list)
    # The clock of each of the partition's sources that moved on in this batch (its
    # newest accepted event time less ``[flow] source_slack_ms``): the lanes the
    # absence detectors judge that source's keys on (``citywatch.detectors.lanes``).
    clocks: dict[str, int] = field(default_factory=dict)
    seq: int | None = None  # see RawBatch: the readers' bound on how far they run ahead
    caught_ms: int | None = None  # see RawBatch
    # Live runs: each event's key's shift, aligned with ``events`` (how far ahead of its
    # lane's clock the key is judged, ``citywatch.detectors.lanes.ingest_shift``); None
    # when every one is 0 (replays).
    shifts: list[int] | None = None
    # Live runs: the transit (``Watermarker.quiet_transit_ms``) of each source this batch
    # may have changed (a run-on, ``clocks`` a ``RunOn``, carries every source's): the
    # shifts are taken against it (see ``citywatch.detectors.lanes.LaneClocks.transit``).
    transits: dict[str, int] | None = None


@dataclass(frozen=True, slots=True)
class ShardBatch:
    """The on-time events of one shard from one input batch, and the watermark after it."""

    events: list[Event]
    wm_ms: int
    ingest_ns: int
    source: str = ""
    idle: bool = False
    peers: tuple[str, ...] = ()
    heard: list[tuple[Event, int]] = field(default_factory=list)  # see StampedBatch
    clocks: dict[str, int] = field(default_factory=dict)  # see StampedBatch
    seq: int | None = None  # see StampedBatch
    caught_ms: int | None = None  # see RawBatch
    shifts: list[int] | None = None  # see StampedBatch, aligned with ``events``
    transits: dict[str, int] | None = None  # see StampedBatch

    def __reduce__(self) -> tuple[Any, ...]:
        """Crossing to another process: the events as plain tuples (``flows/exchange.py``)."""
        return _shard_batch, self._fields()

    def _fields(self) -> tuple[Any, ...]:
        return (
            exchange.pack_events(self.events),
            self.wm_ms,
            self.ingest_ns,
            self.source,
            self.idle,
            self.peers,
            *exchange.pack_heard(self.events, self.heard),
            exchange.pack_clocks(self.clocks),
            self.seq,
            self.caught_ms,
            self.shifts,
            self.transits,
        )


def _shard_batch(
    packed: exchange.Packed,
    wm_ms: int,
    ingest_ns: int,
    source: str,
    idle: bool,
    peers: tuple[str, ...],
    heard: exchange.Packed,
    refs: tuple[int, ...],
    heard_wm: tuple[int, ...],
    clocks: bytes,
    seq: int | None,
    caught: int | None,
    shifts: list[int] | None = None,
    transits: dict[str, int] | None = None,
) -> ShardBatch:
    events = exchange.unpack_events(packed)
    return ShardBatch(
        events,
        wm_ms,
        ingest_ns,
        source,
        idle,
        peers,
        exchange.unpack_heard(events, heard, refs, heard_wm),
        exchange.unpack_clocks(clocks),
        seq,
        caught,
        shifts,
        transits,
    )


@dataclass(frozen=True, slots=True)
class ShardOutput:
    """What a shard emits per activation: alerts, teleported fixes (dead letters) and
    stop spans for the cross-key rendezvous stage, and the watermark it acted on."""

    alerts: list[Alert]
    dead: list[DeadLetter]
    spans: list[StopSpan]
    wm_ms: int = NO_WATERMARK


@dataclass(frozen=True, slots=True)
class AlertBatch:
    """Alerts of one step's activation and the event-time watermark they were raised at
    (None when the step has no clock of its own, e.g. rendezvous pairs)."""

    alerts: list[Alert]
    wm_ms: int | None = None
    # The detection shard that raised them ("" for other steps). In a replay every
    # shard sends one batch per activation, alerts or not: the incident stage's clock.
    producer: str = ""


@dataclass(frozen=True, slots=True)
class IncidentBatch:
    """Alerts with their incidents (``views[i]`` belongs to ``alerts[i]``): the records
    routing turns into work-order dispatches."""

    alerts: list[Alert]
    views: list[IncidentView]
