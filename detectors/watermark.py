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
(a plain recording) the latest of the recent median event time of the event's
source, that of the whole partition (so a gateway that resumes after a silence
is measured by the others) and the source's own newest accepted time. The
median window also keeps refused times, so a real jump of a source's clock
is accepted after ``WINDOW // 2 + 1`` events, while one bad event never moves
the median. The first refused event of a source is reported
once (:attr:`Watermarker.skewed`), for the ``source.clock_skew`` system alert.

Without a wall clock a jump cannot be told from a silence (a sparse stream, a
night without traffic) by one event, so in that case a suspect event given as
``item`` is **held** (:data:`HELD`), not refused, until its source decides it:
the next event of that source that is not suspect releases the held ones
(:meth:`Watermarker.take_released`) — accepted when they are within
``max_future_ms`` of that event, refused otherwise (a lone outlier); and
``HOLD_CHAIN`` held events of one source within ``max_future_ms`` of each other
show that the source moved on (a silence, or its clock stepped): they are
accepted, nothing lost. At most ``WINDOW`` events wait per source;
what is still held at the end of the input is refused (:meth:`Watermarker.drain`).
The verdicts depend on the arrival order only, never on batching.

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
(110, [('', 10000000, 120)])
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from citywatch.detectors.alerts import Alert
from citywatch.detectors.events import format_ts
from citywatch.detectors.state import Snapshot, Stateful

NO_WATERMARK = -(2**62)
ON_TIME = "on_time"
LATE = "late"
FUTURE = "future"
HELD = "held"
SOURCE_KINDS = ("gateway", "family", "partition")
WINDOW = 15  # recent event times kept per source for the median
_NONE_RELEASED: tuple[tuple[object, str, int | None], ...] = ()
HOLD_CHAIN = 3  # held events of a source that agree with each other release it
PARTITION_WINDOW = 63
# Windowed and absence detectors decide this far behind the front of event time (the
# newest time every active source reached): events from different sources reach the
# flow up to a second or two apart, and those a little behind the front then need no
# word of when they came (see ``front_lead_ms``). A key whose own source is further
# on is decided on that source's clock instead (``lane_ms``; ``[flow] source_slack_ms``).
FRONT_SLACK_MS = 2_000
# How far behind its own source's newest accepted event time a key's absence is judged
# (the default of ``[flow] source_slack_ms``): one source's own reordering.
SOURCE_SLACK_MS = 500
# A live source's recent transits (arrival wall time less stamp) kept for its quiet lane:
# the lane runs on behind the wall clock by the transit a quarter of them came within
# (see ``Watermarker.quiet_lane_ms``), once it has this many.
TRANSITS = 16
TRANSITS_MIN = 4


def source_name(by: str, src: str | None, family: str) -> str:
    """The watermark source an event belongs to under ``by`` (see the module docstring).

    >>> source_name("gateway", "gw-7", "gps"), source_name("gateway", None, "gps")
    ('gw-7', 'gps')
    >>> source_name("family", "gw-7", "gps"), source_name("partition", "gw-7", "gps")
    ('gps', '')
    """
    if by == "partition":
        return ""
    if by == "family":
        return family
    return src if src else family


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
        times = self.times
        times.append(ts_ms)
        if len(times) > self.size:
            times.popleft()
        # The low median (``statistics.median_low``, without its per-call overhead).
        self.median = sorted(times)[(len(times) - 1) // 2]

    def __len__(self) -> int:
        return len(self.times)


@dataclass(slots=True)
class SourceClock:
    """The clock of one source: newest accepted time, recent times, wall time last seen."""

    max_ts_ms: int = NO_WATERMARK
    recent: Recent = field(default_factory=lambda: Recent(WINDOW))
    seen_wall_ms: int | None = None
    reported: bool = False
    # (event time, caller's item) of suspect events waiting for their source's verdict
    held: list[tuple[int, object]] = field(default_factory=list)
    # The clock its keys' absence was last judged on (:meth:`Watermarker.lane_ms`).
    lane_ms: int = NO_WATERMARK
    # Live: arrival wall time less stamp of its last TRANSITS accepted events, oldest first.
    transits: deque[int] = field(default_factory=lambda: deque(maxlen=TRANSITS))


def _no_transits(data: dict[str, Any]) -> dict[str, Any]:
    """Version 3 clocks kept no transits (their quiet lanes fall back to the newest one)."""
    for clock in data["clocks"].values():
        if not hasattr(clock, "transits"):
            clock.transits = deque(maxlen=TRANSITS)
    return data


def _no_lane(data: dict[str, Any]) -> dict[str, Any]:
    """Version 2 clocks had not judged any key yet."""
    for clock in data["clocks"].values():
        if not hasattr(clock, "lane_ms"):
            clock.lane_ms = NO_WATERMARK
    return data


def _no_held(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 clocks held nothing."""
    for clock in data["clocks"].values():
        if not hasattr(clock, "held"):
            clock.held = []
    return data


class Watermarker(Stateful):
    """Per-source watermarks of one partition and their monotone minimum.

    Its learned state (the clocks, the partition's recent event times, the combined
    watermark) is plain data (:mod:`citywatch.detectors.state`); the bounds come from
    the configuration each time it is built."""

    STATE = ("clocks", "recent", "_seq", "combined_ms", "skewed")
    # 2: held events in the source clocks; 3: their lane clocks; 4: their recent transits
    STATE_VERSION = 4
    MIGRATIONS = {1: _no_held, 2: _no_lane, 3: _no_transits}

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
        "_released",
        "_quarter",
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
        # (item, verdict, reference time if refused) of held events decided by the
        # last observe, in arrival order.
        self._released: list[tuple[object, str, int | None]] = []
        # Each source's quiet transit (:meth:`_transit`) while it has no new event: the
        # quiet lanes of every source run on once a tick (derived, not state).
        self._quarter: dict[str, int] = {}

    def restore(self, snap: Snapshot) -> None:
        super().restore(snap)
        self._quarter = {}
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
        return source_name(self.by, src, family)

    def lane_ms(self, source: str, slack_ms: int, clock_ms: int | None = None) -> int:
        """The clock ``source``'s own keys are judged on for absence: its newest accepted
        event time less ``slack_ms``, but never ahead of the wall clock ``clock_ms``
        (live) or, without one, of :attr:`heard_ms` + :data:`FRONT_SLACK_MS` (so a
        source whose clock jumps ahead does not judge its keys there), and never back.
        :meth:`keep_lane` records what was passed on.

        >>> wm = Watermarker(30_000, by="gateway")
        >>> [wm.observe(t, "gw-1") for t in (10_000, 11_000)]
        ['on_time', 'on_time']
        >>> wm.lane_ms("gw-1", 500), wm.lane_ms("gw-1", 500, clock_ms=10_800)
        (10500, 10500)
        >>> wm.lane_ms("gw-1", 500, clock_ms=10_200), wm.lane_ms("gw-9", 500) == NO_WATERMARK
        (10200, True)
        """
        clock = self.clocks.get(source)
        if clock is None or clock.max_ts_ms == NO_WATERMARK:
            return NO_WATERMARK
        cap = clock_ms if clock_ms is not None else self.heard_ms + FRONT_SLACK_MS
        return max(clock.lane_ms, min(clock.max_ts_ms - slack_ms, cap))

    def quiet_lane_ms(self, source: str, slack_ms: int, caught_ms: int) -> int:
        """The clock ``source``'s keys are judged on while its partition is known to be
        read to its end at wall time ``caught_ms`` (live): ``caught_ms`` less ``slack_ms``
        and less the source's *transit*, never back. So a source that went quiet is
        judged near the wall clock, not its last event.

        The transit is how far behind their stamps its events arrive: its clock's
        offset (behind, or ahead: negative) and the way here. It is the transit that a
        quarter of its last :data:`TRANSITS` events came within (once it has
        :data:`TRANSITS_MIN`), not the newest event's alone: one event held up on the
        way (or by a stall of the flow itself) does not hold its source's absences
        back, a gateway whose clock runs ahead is judged on that clock, and one device
        of a gateway whose clock is wrong does not move the others (it must be a
        quarter of the gateway's traffic). ``slack_ms`` is what the way may add beyond
        that. Before it has enough: the newest event's transit, never below 0.

        >>> wm = Watermarker(30_000, by="gateway")
        >>> wm.observe(10_000, "gw-1", clock_ms=10_300), wm.quiet_lane_ms("gw-1", 500, 20_000)
        ('on_time', 19200)
        >>> [wm.observe(t, "gw-1", clock_ms=t + d) for t, d in ((11_000, 150), (12_000, 100),
        ...                                                     (13_000, 2_900))][-1]
        'on_time'
        >>> wm.quiet_lane_ms("gw-1", 500, 20_000)  # the newest took 2.9 s; a quarter 150 ms
        19350
        >>> wm.quiet_lane_ms("gw-9", 500, 20_000) == NO_WATERMARK
        True
        """
        transit = self.quiet_transit_ms(source)
        if transit is None:
            return NO_WATERMARK
        return max(self.clocks[source].lane_ms, caught_ms - slack_ms - transit)

    def quiet_transit_ms(self, source: str) -> int | None:
        """The transit :meth:`quiet_lane_ms` runs ``source``'s lane on by (None before
        it has a live event): its keys' clock is the wall clock less the slack and this.

        >>> wm = Watermarker(30_000, by="gateway")
        >>> wm.quiet_transit_ms("gw-1") is None
        True
        >>> wm.observe(10_000, "gw-1", clock_ms=10_300), wm.quiet_transit_ms("gw-1")
        ('on_time', 300)
        """
        transit = self._quarter.get(source)
        if transit is not None:
            return transit
        clock = self.clocks.get(source)
        if clock is None or clock.max_ts_ms == NO_WATERMARK or clock.seen_wall_ms is None:
            return None
        transit = self._quarter[source] = self._transit(clock)
        return transit

    def _transit(self, clock: SourceClock) -> int:
        transits = clock.transits
        if len(transits) >= TRANSITS_MIN:
            return max(sorted(transits)[len(transits) // 4], -self.max_future_ms)
        seen = clock.seen_wall_ms
        return max(0, seen - clock.max_ts_ms) if seen is not None else 0

    def keep_lane(self, source: str, lane_ms: int) -> None:
        clock = self.clocks.get(source)
        if clock is not None and lane_ms > clock.lane_ms:
            clock.lane_ms = lane_ms

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
        if clock is not None and clock.max_ts_ms != NO_WATERMARK:
            refs.append(clock.max_ts_ms)  # a source is never ahead of its own accepted time
        return max(refs) if refs else None

    def observe(
        self, ts_ms: int, source: str = "", clock_ms: int | None = None, item: object = None
    ) -> str:
        """Stamp one event of ``source``; returns :data:`ON_TIME`, :data:`LATE`,
        :data:`FUTURE` or :data:`HELD`. ``clock_ms`` is the wall-clock time the event
        arrived (live, or recorded with the event), None when unknown (then the median
        applies, and a suspect event given as ``item`` is held: see the module
        docstring). Held events this call decided are in :meth:`take_released`, to be
        handled before this one."""
        clock = self.clocks.get(source)
        if clock is None:
            clock = self.clocks[source] = SourceClock()
        ref = self.reference_ms(source, clock_ms)
        clock.recent.add(ts_ms)
        if ref is not None and ts_ms > ref + self.max_future_ms:
            if item is not None and clock_ms is None:
                held = clock.held
                held.append((ts_ms, item))
                chain = [t for t, _ in held[-HOLD_CHAIN:]]
                if len(chain) == HOLD_CHAIN and max(chain) - min(chain) <= self.max_future_ms:
                    # The source moved on: its last events agree with each other.
                    self._release(source, clock, max(chain))
                elif len(held) > WINDOW:  # bounded: the oldest is refused
                    old_ts, old = held.pop(0)
                    self._refuse(source, clock, old_ts, ref)
                    self._released.append((old, FUTURE, ref))
                return HELD
            self._refuse(source, clock, ts_ms, ref)
            return FUTURE
        if clock.held:
            self._release(source, clock, ts_ms)
        return self._accept(ts_ms, source, clock, clock_ms)

    def _refuse(self, source: str, clock: SourceClock, ts_ms: int, ref: int) -> None:
        if not clock.reported:
            clock.reported = True
            self.skewed.append((source, ts_ms, ref))

    def _release(self, source: str, clock: SourceClock, now_ms: int) -> None:
        """Decide ``source``'s held events now that it is at ``now_ms``: those up to
        ``max_future_ms`` ahead of it are accepted, the others refused."""
        held, clock.held = clock.held, []
        bound = now_ms + self.max_future_ms
        accepted = [t for t, _ in held if t <= bound]
        if accepted and not clock.reported:
            # Accepted, but ahead of every other source's newest claim: a clock that
            # jumped, not a silence the whole partition shares; reported once. Sources
            # already reported for a jumped clock do not count (a second gateway that
            # steps is not hidden behind the first one's wrong time).
            others = [
                max(c.recent.times)
                for s, c in self.clocks.items()
                if s != source and c.recent.times and not c.reported
            ]
            if others and min(accepted) > max(others) + self.max_future_ms:
                self._refuse(source, clock, min(accepted), max(others))
        for t, item in held:
            if t <= bound:
                self._released.append((item, self._accept(t, source, clock, None), None))
            else:
                self._refuse(source, clock, t, now_ms)
                self._released.append((item, FUTURE, now_ms))

    def _accept(self, ts_ms: int, source: str, clock: SourceClock, clock_ms: int | None) -> str:
        # The partition's median samples every 4th accepted time: cheap, and still
        # robust to any single event.
        self._seq += 1
        if self._seq & 3 == 0 or not self.recent:
            self.recent.add(ts_ms)
        if clock_ms is not None:
            clock.seen_wall_ms = clock_ms
            clock.transits.append(clock_ms - ts_ms)
        if self._quarter:
            self._quarter.pop(source, None)
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

    def take_released(self) -> Sequence[tuple[object, str, int | None]]:
        """The held items the last :meth:`observe` decided, with their verdicts (and
        the time a refused one was measured against). Called after every event: no
        allocation when nothing was decided."""
        if not self._released:
            return _NONE_RELEASED
        out, self._released = self._released, []
        return out

    def holding(self) -> bool:
        """Whether any event is held for its source's verdict."""
        return any(c.held for c in self.clocks.values())

    def drain(self) -> list[tuple[object, str, int | None]]:
        """End of input: every event still held is refused (no later event of its
        source confirmed the jump)."""
        out: list[tuple[object, str, int | None]] = []
        for source, clock in self.clocks.items():
            ref = clock.max_ts_ms if clock.max_ts_ms != NO_WATERMARK else None
            for t, item in clock.held:
                self._refuse(source, clock, t, ref if ref is not None else t)
                out.append((item, FUTURE, ref))
            clock.held = []
        return out

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
