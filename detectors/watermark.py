"""Event-time watermarks per source, robust to one bad clock.

One :class:`Watermarker` stamps the events of one input partition (a Kafka
topic-partition, or a recording). Inside it, every *source* keeps its own
clock: the source of an event is named by ``by`` —

* ``"gateway"`` (default): the event's ``src`` (the gateway that sent it), or
  its type (``gps``, ``sensor``, ``video``) when it names none;
* ``"family"``: the event's type;
* ``"partition"``: one clock for the whole partition.

A source's watermark is the highest event time it has sent minus the allowed
out-of-orderness; the partition's watermark is the **minimum over its active
sources** and never goes back. A source is *idle*, and holds nobody back,
once its newest event is more than ``idle_ms`` behind the partition's recent
median event time (deterministic: it depends on arrival order only), or, in a
live run (:meth:`Watermarker.advance` given the wall clock), once nothing came
from it for ``idle_ms`` of wall time — as Flink's ``withIdleness`` does.

**Future timestamps.** An event more than ``max_future_ms`` ahead of its
reference time is refused (:data:`FUTURE`): it goes to the dead letters and
moves no clock. The reference is the wall clock when the event arrived (a
Kafka run, or a recording whose envelopes keep ``arrival_ms``) and otherwise
(a plain recording) the recent median event time of the event's source or of
the whole partition, whichever is later (so a gateway that resumes after a
silence is measured by the others). The median window also keeps refused times, so a real jump of a
source's clock is accepted after ``WINDOW // 2 + 1`` events, while one bad
event never moves the median. The first refused event of a source is reported
once (:attr:`Watermarker.skewed`), for the ``source.clock_skew`` system alert.

An event older than the partition's watermark at its arrival is :data:`LATE`:
it goes to the late side output and never touches detector state.

>>> wm = Watermarker(max_out_of_order_ms=10, by="partition")
>>> [wm.observe(t) for t in (100, 95, 120, 105, 112)]
['on_time', 'on_time', 'on_time', 'late', 'on_time']
>>> wm.watermark_ms
110
>>> wm.observe(10_000_000)  # one event far ahead: refused, the clock stays
'future'
>>> wm.watermark_ms, wm.skewed
(110, [('', 10000000, 105)])
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from dataclasses import dataclass, field
from statistics import median_low

from citywatch.detectors.alerts import Alert
from citywatch.detectors.events import format_ts
from citywatch.detectors.state import Snapshot, Stateful

NO_WATERMARK = -(2**62)
ON_TIME = "on_time"
LATE = "late"
FUTURE = "future"
SOURCE_KINDS = ("gateway", "family", "partition")
WINDOW = 15  # recent event times kept per source for the median
PARTITION_WINDOW = 63
# Windowed and absence detectors decide this far behind the front of event time (the
# newest time every active source reached): events from different sources reach the
# flow up to a second or two apart, and those a little behind the front then need no
# word of when they came (see ``front_lead_ms``).
FRONT_SLACK_MS = 2_000


def front_lead_ms(max_out_of_order_ms: int) -> int:
    """How far ahead of the watermark windowed and absence detectors decide: the
    out-of-order bound less :data:`FRONT_SLACK_MS` (0 when the bound is smaller).

    >>> front_lead_ms(30_000), front_lead_ms(1_000)
    (28000, 0)
    """
    return max(0, max_out_of_order_ms - FRONT_SLACK_MS)


@dataclass(slots=True)
class Recent:
    """The last ``size`` event times and their (cached) low median."""

    size: int
    times: deque[int] = field(default_factory=deque)
    median: int | None = None

    def add(self, ts_ms: int) -> None:
        self.times.append(ts_ms)
        if len(self.times) > self.size:
            self.times.popleft()
        self.median = median_low(self.times)

    def __len__(self) -> int:
        return len(self.times)


@dataclass(slots=True)
class SourceClock:
    """The clock of one source: newest accepted time, recent times, wall time last seen."""

    max_ts_ms: int = NO_WATERMARK
    recent: Recent = field(default_factory=lambda: Recent(WINDOW))
    seen_wall_ms: int | None = None
    reported: bool = False


class Watermarker(Stateful):
    """Per-source watermarks of one partition and their monotone minimum.

    Its learned state (the clocks, the partition's recent event times, the combined
    watermark) is plain data (:mod:`citywatch.detectors.state`); the bounds come from
    the configuration each time it is built."""

    STATE = ("clocks", "recent", "_seq", "combined_ms", "skewed")

    __slots__ = (
        "by",
        "clocks",
        "combined_ms",
        "idle_ms",
        "max_future_ms",
        "max_out_of_order_ms",
        "_seq",
        "recent",
        "skewed",
        "_by_time",
    )

    def __init__(
        self,
        max_out_of_order_ms: int,
        *,
        max_future_ms: int = 300_000,
        idle_ms: int = 60_000,
        by: str = "gateway",
    ) -> None:
        if max_out_of_order_ms < 0:
            msg = f"max_out_of_order_ms must be >= 0, got {max_out_of_order_ms}"
            raise ValueError(msg)
        if by not in SOURCE_KINDS:
            msg = f"watermark source must be one of {', '.join(SOURCE_KINDS)}, got {by!r}"
            raise ValueError(msg)
        self.max_out_of_order_ms = max_out_of_order_ms
        self.max_future_ms = max_future_ms
        self.idle_ms = idle_ms
        self.by = by
        self.clocks: dict[str, SourceClock] = {}
        self.recent = Recent(PARTITION_WINDOW)
        self._seq = 0
        self.combined_ms = NO_WATERMARK
        # (source, refused event time, reference time) of sources refused for the
        # first time; the caller drains it to raise ``source.clock_skew`` once each.
        self.skewed: list[tuple[str, int, int]] = []
        # (max_ts_ms, source) of every clock that accepted an event, sorted: the
        # watermark after each event is one bisect, not a walk over every source
        # (derived from ``clocks``; rebuilt on restore).
        self._by_time: list[tuple[int, str]] = []

    def restore(self, snap: Snapshot) -> None:
        super().restore(snap)
        self._by_time = sorted(
            (c.max_ts_ms, s) for s, c in self.clocks.items() if c.max_ts_ms != NO_WATERMARK
        )

    @property
    def watermark_ms(self) -> int:
        return self.combined_ms

    @property
    def max_ts_ms(self) -> int:
        """The newest accepted event time over all sources."""
        return max((c.max_ts_ms for c in self.clocks.values()), default=NO_WATERMARK)

    @property
    def heard_ms(self) -> int:
        """The event time a key is alive at when it sends now: the partition's recent
        median event time (robust to any one clock), never behind the watermark. An
        event set aside, or stamped far ahead, counts as presence at this time (a
        source stalled by a clock step holds the watermark back until it goes idle;
        the median does not wait for it)."""
        median = self.recent.median
        return self.combined_ms if median is None else max(self.combined_ms, median)

    def source_of(self, src: str | None, family: str) -> str:
        """The watermark source an event belongs to (see the module docstring)."""
        if self.by == "partition":
            return ""
        if self.by == "family":
            return family
        return src if src else family

    def reference_ms(self, source: str, clock_ms: int | None = None) -> int | None:
        """The time an event of ``source`` is measured against for the future guard."""
        if clock_ms is not None:
            return clock_ms
        refs = []
        clock = self.clocks.get(source)
        if clock is not None and len(clock.recent) >= 3 and clock.recent.median is not None:
            refs.append(clock.recent.median)
        if self.recent.median is not None:
            refs.append(self.recent.median)
        return max(refs) if refs else None

    def observe(self, ts_ms: int, source: str = "", clock_ms: int | None = None) -> str:
        """Stamp one event of ``source``; returns :data:`ON_TIME`, :data:`LATE` or
        :data:`FUTURE`. ``clock_ms`` is the wall-clock time the event arrived (live, or
        recorded with the event), None when unknown (then the median applies)."""
        clock = self.clocks.get(source)
        if clock is None:
            clock = self.clocks[source] = SourceClock()
        ref = self.reference_ms(source, clock_ms)
        clock.recent.add(ts_ms)
        if ref is not None and ts_ms > ref + self.max_future_ms:
            if not clock.reported:
                clock.reported = True
                self.skewed.append((source, ts_ms, ref))
            return FUTURE
        # The partition's median samples every 4th accepted time: cheap, and still
        # robust to any single event.
        self._seq += 1
        if self._seq & 3 == 0 or not self.recent:
            self.recent.add(ts_ms)
        if clock_ms is not None:
            clock.seen_wall_ms = clock_ms
        if ts_ms < self.combined_ms:
            return LATE
        if ts_ms > clock.max_ts_ms:
            by_time = self._by_time
            if clock.max_ts_ms != NO_WATERMARK:
                del by_time[bisect_left(by_time, (clock.max_ts_ms, source))]
            insort(by_time, (ts_ms, source))
            clock.max_ts_ms = ts_ms
            self._advance_by_time()
        return ON_TIME

    def _advance_by_time(self) -> None:
        """:meth:`advance` without a wall clock: the oldest clock not left behind by
        ``idle_ms`` of the partition's recent median (else the newest) bounds it."""
        by_time = self._by_time
        front = self.recent.median
        i = 0 if front is None else bisect_left(by_time, (front - self.idle_ms,))
        top = by_time[i][0] if i < len(by_time) else by_time[-1][0]
        self.combined_ms = max(self.combined_ms, top - self.max_out_of_order_ms)

    def advance(self, now_ms: int | None = None) -> int:
        """Recompute the partition's watermark from its active sources; returns it.

        After every accepted event the same is done by a bisect (:meth:`_advance_by_time`);
        a live run also calls this with the wall clock ``now_ms`` once per batch, so that
        sources silent for ``idle_ms`` of wall time go idle."""
        front = self.recent.median
        active: list[int] = []
        newest = NO_WATERMARK
        for clock in self.clocks.values():
            if clock.max_ts_ms == NO_WATERMARK:
                continue
            newest = max(newest, clock.max_ts_ms)
            if front is not None and clock.max_ts_ms + self.idle_ms < front:
                continue
            if (
                now_ms is not None
                and clock.seen_wall_ms is not None
                and now_ms - clock.seen_wall_ms > self.idle_ms
            ):
                continue
            active.append(clock.max_ts_ms)
        top = min(active) if active else newest
        if top != NO_WATERMARK:
            self.combined_ms = max(self.combined_ms, top - self.max_out_of_order_ms)
        return self.combined_ms

    def take_skewed(self) -> list[tuple[str, int, int]]:
        out, self.skewed = self.skewed, []
        return out


CLOCK_SKEW = "source.clock_skew"


def clock_skew_alert(
    partition: str, source: str, ts_ms: int, reference_ms: int, *, live: bool
) -> Alert:
    """The ``source.clock_skew`` system alert for a source first refused as too far ahead.

    It carries the sane reference time (not the refused one), so its id is stable,
    and names the gateway, else the partition and event type.

    >>> a = clock_skew_alert("gps#0", "gw-7", 1_767_229_200_000, 1_767_225_600_000, live=False)
    >>> a.kind, a.subject, a.subject_type, a.evidence["ahead_s"]
    ('source.clock_skew', 'gw-7', 'source', 3600.0)
    """
    if source and source not in ("gps", "sensor", "video"):
        subject = source
    else:
        subject = f"{partition}/{source}" if source else partition
    return Alert.make(
        CLOCK_SKEW,
        "yellow",
        subject,
        "source",
        None,
        None,
        None,
        ts_ms=reference_ms,
        first_ts_ms=reference_ms,
        evidence={
            "partition": partition,
            "source": source,
            "event_ts": format_ts(ts_ms),
            "reference_ts": format_ts(reference_ms),
            "reference": "arrival time (wall clock)" if live else "recent median event time",
            "ahead_s": round((ts_ms - reference_ms) / 1000, 3),
        },
    )
