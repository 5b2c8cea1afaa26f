"""Per-source clocks ("lanes") for the absence and windowed detectors.

A *lane* is one watermark source of one input partition (``"gps#0|gw-7"``: the
gateway, family or whole partition, as ``[flow] watermark_source`` names it). Its
clock is the source's newest accepted event time less ``[flow] source_slack_ms``
(one source's own reordering), stamped by the watermark step in arrival order.

A key (a sensor, a vehicle) is judged on the clock of the lane its events come
through, or on the shard's clock (the front of event time less 2 s, and in live
runs also the wall clock) when that is further on: so a fast source decides the
absence of its own keys a fraction of a second after the deadline, a source that
itself goes quiet falls back to the shard's clock (its devices still go offline),
and no source's clock ever judges another's keys. In a live run over Kafka a quiet
source's lane also runs on with the wall clock while its partition is read to its
end (``citywatch.flows.stage_watermark``), so it need not wait for the shard's clock.

Live runs also judge each key a little ahead of (or behind) its lane: by its newest
event's *shift* (:func:`ingest_shift`, set by the suite in :attr:`LaneClocks.shift_ms`
while that event is processed), the source's usual transit less the event's own, so a
key's silence counts from when its last event came, not from when its source's traffic
usually comes. ``track.gap`` and ``sensor.offline`` keep each key's shift beside its
timer (not state), anchored to its source's transit then
(``LaneDetector.event_shift``) and judged against its transit now
(:meth:`LaneClocks.transit`); such a timer is filed :data:`DRIFT_MS` early, in case
that transit rises meanwhile. Replays have none.

A live partition's lanes run on with the wall clock once a tick as one :class:`RunOn`
(every source's lane), which a shard keeps by reference and reads a lane from only when
a timer of it may be due (:class:`RunOnLanes`): a tick costs a shard nothing per source,
and only that partition's lanes with something pending are looked at.

Deterministic for any batching: an event that comes behind its lane's clock is
passed on with the clock it came at (``Detector.on_arrival``), and its lane's clock
in a shard is never ahead of what it was when the watermark step stamped it.

Timers and held items are filed per lane (:class:`LaneTimers`, :class:`LaneQueue`)
with a heap of each lane's earliest due time, so advancing a lane or the shard's
clock touches only what is due, never every key or every lane.

>>> t = LaneTimers()
>>> t.add("a", 1_000, "p|gw-1"); t.add("b", 1_000, "p|gw-2"); t.add("c", 5_000, "p|gw-1")
>>> t.pop_due(0, {"p|gw-1": 1_200})  # gw-1's clock passed 1 s; gw-2's did not
[(1000, 'a', 'p|gw-1')]
>>> t.pop_due(1_500)  # the shard's clock passed 1.5 s: gw-2's key too
[(1000, 'b', 'p|gw-2')]
>>> len(t)
1
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from citywatch.detectors.events import Event
from citywatch.detectors.state import Snapshot, Stateful, migrate
from citywatch.detectors.timers import DueTimers
from citywatch.detectors.watermark import NO_WATERMARK, source_name

T = TypeVar("T")
# More lanes than this moving on with one batch (a replay's batches of thousands of
# events), and more of them than the heap of due times holds entries, are not walked: the
# heap says which have work. A live partition's run-on goes through the partition's own
# lanes with something pending instead (``_ByLane._pop_run_on``).
LAZY_LANES = 32
NO_LANES: Mapping[str, int] = MappingProxyType({})  # only the shard's clock moved on
# A key judged by its shift (live runs) is filed this much ahead of its deadline on its
# lane: its source's transit may rise while it is silent, bringing it sooner by as much
# (``LaneClocks.transit``). Looked at early, it is checked exactly and filed again.
DRIFT_MS = 2_000


class RunOn(dict[str, int]):
    """Every source of one live partition with the clock its lane has run on to
    (``citywatch.flows.stage_watermark``, once a tick while the partition is read to its
    end), and ``top``, the highest of them. A shard keeps a reference to the newest one
    per partition and reads a lane's clock from it when it needs it
    (:meth:`LaneClocks.clock`): a tick costs a shard nothing per source.

    >>> r = RunOn({"gw-1": 1_000, "gw-2": 2_000}); r.top
    2000
    """

    __slots__ = ("base", "top", "transits")

    def __init__(
        self,
        clocks: Mapping[str, int] | None = None,
        top: int | None = None,
        transits: dict[str, int] | None = None,
        base: int = NO_WATERMARK,
    ) -> None:
        super().__init__(clocks or {})
        self.top = top if top is not None else max(self.values(), default=NO_WATERMARK)
        # Each source's transit then (``Watermarker.quiet_transit_ms``; see
        # :meth:`LaneClocks.transit`).
        self.transits: dict[str, int] = transits if transits is not None else {}
        # The partition's ingest clock: the wall time it was read to its end less
        # ``source_slack_ms`` (each lane ran on to this less its source's transit).
        self.base = base

    def __reduce__(self) -> tuple[Any, ...]:
        return RunOn, (dict(self), self.top, self.transits, self.base)


class RunOnLanes(Mapping[str, int]):
    """The lanes of one partition that ran on (:class:`RunOn`), as a shard sees them: a
    lane's clock is looked up when asked for, never computed for every lane."""

    __slots__ = ("_clocks", "_run_on", "partition", "top")

    def __init__(self, clocks: LaneClocks, partition: str, run_on: RunOn) -> None:
        self._clocks = clocks
        self.partition = partition
        self._run_on = run_on
        self.top = run_on.top

    def __getitem__(self, lane: str) -> int:
        ms = self.clock_of(lane)
        if ms is None:
            raise KeyError(lane)
        return ms

    def clock_of(self, lane: str) -> int | None:
        """``lane``'s clock, None if it is not a lane of this partition's run-on."""
        partition, source = self._clocks.split(lane)
        if partition != self.partition or source not in self._run_on:
            return None
        return self._clocks.clock(lane)

    def __iter__(self) -> Iterator[str]:
        name = self._clocks.name
        return (name(self.partition, source) for source in self._run_on)

    def __len__(self) -> int:
        return len(self._run_on)


def lane_name(partition: str, source: str) -> str:
    return f"{partition}|{source}"


def _partition_of(lane: str) -> str:
    return lane.partition("|")[0]


def ingest_shift(transit_ms: int, source_transit_ms: int, bound_ms: int) -> int:
    """How far ahead of its lane's clock a live key is judged after an event that took
    ``transit_ms`` from its stamp to the flow, its source's lane running on by
    ``source_transit_ms`` (``Watermarker.quiet_transit_ms``), within ``bound_ms`` either
    way: so the key's silence is counted from when its last event *came*, on the ingest
    clock, whatever the rest of its source's traffic took. A key whose last event came
    faster than its source's usual is judged sooner (its deadline on the ingest clock is
    sooner), a slower one (or one whose own clock runs behind its gateway's) later.

    >>> ingest_shift(100, 750, 300_000), ingest_shift(2_900, 750, 300_000)
    (650, -2150)
    >>> ingest_shift(-600_000, 0, 300_000)  # a device stamping ten minutes ahead
    300000
    """
    return max(-bound_ms, min(bound_ms, source_transit_ms - transit_ms))


class LaneClocks(Stateful):
    """The clock of every lane a shard heard of (monotone), and the partition of the
    batch being processed (to name an event's lane; not state).

    A live partition's lanes that ran on with the wall clock come as one :class:`RunOn`
    a tick: kept by reference (``_run_on``, not state) and read when a lane's clock is
    asked for, so that a tick costs a shard nothing per source. A source whose fix the
    gate holds (``caps``) is read no further than its cap; a cap that comes or changes
    first writes the clock its lanes had into ``clocks`` (they never go back), and so
    does :meth:`state` for every lane."""

    STATE = ("clocks",)

    def __init__(self, by: str = "gateway") -> None:
        self.by = by
        self.clocks: dict[str, int] = {}
        self.partition = ""
        self._names: dict[str, dict[str, str]] = {}  # partition -> source -> lane (not state)
        self._split: dict[str, tuple[str, str]] = {}  # lane -> (partition, source)
        self._run_on: dict[str, RunOn] = {}  # partition -> its newest run-on (not state)
        self._caps: dict[str, int] = {}  # source -> the cap its held fix puts on its lanes
        # Live runs (not state): each lane's source's transit, as the batch that changed it
        # left it (every source's is also in its partition's newest run-on).
        self._transits: dict[str, int] = {}
        # Live runs: how far ahead of its lane's clock the key of the event being
        # processed is judged (its *shift*, see :func:`ingest_shift`; 0 in replays and for
        # an event that came behind its clock; not state).
        self.shift_ms = 0

    def name(self, partition: str, source: str) -> str:
        names = self._names.get(partition)
        if names is None:
            names = self._names[partition] = {}
        lane = names.get(source)
        if lane is None:
            lane = names[source] = lane_name(partition, source)
            self._split[lane] = (partition, source)
        return lane

    def split(self, lane: str) -> tuple[str, str]:
        """(partition, source) of ``lane``."""
        found = self._split.get(lane)
        if found is None:
            partition, _, source = lane.partition("|")
            found = self._split[lane] = (partition, source)
        return found

    def lane(self, ev: Event) -> str:
        """The lane ``ev`` came through (in the batch being processed)."""
        return self.name(self.partition, source_name(self.by, ev.src, ev.type))

    def set_transits(self, partition: str, transits: Mapping[str, int]) -> None:
        """The transits of ``partition``'s sources a batch changed (live runs,
        ``StampedBatch.transits``). A source's transit changes only with its events, and
        each batch that changes it says so: a lane's own entry is never older than a
        run-on's, which it overrides."""
        name, known = self.name, self._transits
        for source, ms in transits.items():
            known[name(partition, source)] = ms

    def transit(self, lane: str) -> int:
        """The transit of ``lane``'s source now (0 when none is known: replays): a key
        whose own event took ``own`` ms is judged ``transit(lane) - own`` ahead of its
        lane (:func:`ingest_shift`), so its silence counts from when that event came
        whatever its source's transit does meanwhile."""
        ms = self._transits.get(lane)
        if ms is not None:
            return ms
        if self._run_on:
            partition, source = self.split(lane)
            run_on = self._run_on.get(partition)
            if run_on is not None:
                return run_on.transits.get(source, 0)
        return 0

    def ingest_clock(self, lane: str) -> int | None:
        """The ingest clock of ``lane``'s partition (live runs, once it was read to its
        end: the wall time then less ``source_slack_ms``), else None. A key whose own
        event took ``own`` ms is silent on it from when that event came:
        :meth:`LaneDetector.judged_clock`."""
        run_on = self._run_on.get(self.split(lane)[0]) if self._run_on else None
        return run_on.base if run_on is not None else None

    def clock(self, lane: str) -> int:
        ms = self.clocks.get(lane, NO_WATERMARK)
        if self._run_on:
            partition, source = self.split(lane)
            run_on = self._run_on.get(partition)
            if run_on is not None:
                ran = run_on.get(source)
                if ran is not None:
                    cap = self._caps.get(source)
                    if cap is not None and cap < ran:
                        ran = cap
                    if ran > ms:
                        ms = ran
        return ms

    def update(
        self, partition: str, clocks: Mapping[str, int], caps: Mapping[str, int]
    ) -> Mapping[str, int]:
        """``partition``'s sources reached ``clocks``, a source named in ``caps`` never
        beyond its cap there (a fix of it held); returns the lanes that moved on, with
        their clocks, in the order of ``clocks``. A :class:`RunOn` is kept as it is and
        its lanes given back as :class:`RunOnLanes`, each looked up when asked for."""
        if caps != self._caps:
            self._set_caps(caps)
        if isinstance(clocks, RunOn):
            self._run_on[partition] = clocks
            return RunOnLanes(self, partition, clocks)
        moved: dict[str, int] = {}
        known = self.clocks
        names = self._names.get(partition)
        if names is None:
            names = self._names[partition] = {}
        for source, ms in clocks.items():
            lane = names.get(source)
            if lane is None:
                lane = self.name(partition, source)
            if caps and source in caps:
                ms = min(ms, caps[source])
            if ms > known.get(lane, NO_WATERMARK):
                known[lane] = ms
                moved[lane] = ms
        return moved

    def _set_caps(self, caps: Mapping[str, int]) -> None:
        """Caps came, went or changed: the lanes of their sources keep the clock they had."""
        if self._run_on:
            old = self._caps
            for source in {*old, *caps}:
                if old.get(source) == caps.get(source):
                    continue
                for partition, run_on in self._run_on.items():
                    if source in run_on:
                        lane = self.name(partition, source)
                        ms = self.clock(lane)
                        if ms > self.clocks.get(lane, NO_WATERMARK):
                            self.clocks[lane] = ms
        self._caps = dict(caps)

    def state(self) -> Snapshot:
        for partition, run_on in self._run_on.items():  # every lane's clock, as it is
            for source in run_on:
                lane = self.name(partition, source)
                ms = self.clock(lane)
                if ms > self.clocks.get(lane, NO_WATERMARK):
                    self.clocks[lane] = ms
        return super().state()


class _ByLane(Generic[T]):
    """Per-lane containers and a heap of (earliest due, lane), stale entries allowed:
    every lane with something pending has an entry at or before its earliest due."""

    def __init__(self) -> None:
        self._lanes: dict[str, T] = {}
        self._next: list[tuple[int, str]] = []
        # Live runs (not state): the lanes with something pending, by partition, made on
        # the first run-on (:meth:`_pop_run_on`) and kept from then on.
        self._parts: dict[str, set[str]] | None = None

    def _filed(self, lane: str) -> None:
        """``lane`` got a box (it had nothing pending)."""
        if self._parts is not None:
            self._parts.setdefault(_partition_of(lane), set()).add(lane)

    def _emptied(self, lane: str) -> None:
        """``lane``'s box was emptied: drop it."""
        del self._lanes[lane]
        if self._parts is not None:
            part = self._parts.get(_partition_of(lane))
            if part is not None:
                part.discard(lane)

    def _first(self, box: T) -> int | None:
        raise NotImplementedError

    def _take(self, box: T, now_ms: int) -> list[Any]:
        raise NotImplementedError

    def _noted(self, lane: str, before: int | None, due: int) -> None:
        if before is None or due < before:
            heapq.heappush(self._next, (due, lane))

    def _pop(self, now_ms: int, lanes: Mapping[str, int], before: int = 0) -> list[tuple[Any, str]]:
        """What is due at ``now_ms`` or, in a lane of ``lanes`` (lane -> its clock), at
        its clock less ``before``: per lane in the order of ``lanes``, then the rest by
        due time."""
        out: list[tuple[Any, str]] = []
        boxes = self._lanes
        if lanes and boxes:
            if isinstance(lanes, RunOnLanes):
                self._pop_run_on(now_ms, lanes, before, out)
            elif len(lanes) > LAZY_LANES and len(lanes) > len(self._next):
                self._pop_lazy(now_ms, lanes, before, out)
            else:
                for lane, clock in lanes.items():
                    box = boxes.get(lane)
                    if box is not None and clock - before > now_ms:
                        out.extend((x, lane) for x in self._take(box, clock - before))
                        if self._first(box) is None:
                            self._emptied(lane)
        nxt = self._next
        while nxt and nxt[0][0] <= now_ms:
            _, lane = heapq.heappop(nxt)
            box = boxes.get(lane)
            if box is None:
                continue  # stale: emptied by its own clock
            out.extend((x, lane) for x in self._take(box, now_ms))
            first = self._first(box)
            if first is None:
                self._emptied(lane)
            else:
                heapq.heappush(nxt, (first, lane))
        return out

    def _compact(self) -> None:
        """The heap of due times, one entry per lane with something pending."""
        first = self._first
        nxt = [(due, lane) for lane, box in self._lanes.items() if (due := first(box)) is not None]
        heapq.heapify(nxt)
        self._next = nxt

    def _pop_run_on(
        self, now_ms: int, moved: RunOnLanes, before: int, out: list[tuple[Any, str]]
    ) -> None:
        """A live partition's lanes ran on (:class:`RunOn`, once a tick): only that
        partition's lanes with something pending are looked at, and a lane's clock is
        read only when its earliest due is at or before the highest lane. What is due
        comes out by (earliest due, lane). The heap of due times is not walked: its
        entries for lanes emptied here go stale, and once it holds more than twice as
        many entries as there are lanes pending it is made again, one entry per lane at
        its earliest due (a lane emptied and filed again between two passes of the
        shard's clock would otherwise leave an entry each time)."""
        if self._parts is None:
            self._parts = {}
            for lane in self._lanes:
                self._filed(lane)
        if len(self._next) > 2 * len(self._lanes) + 64:
            self._compact()
        bound = moved.top - before
        if bound <= now_ms:
            return
        pending = self._parts.get(moved.partition)
        if not pending:
            return
        boxes = self._lanes
        taken: list[tuple[int, str, list[Any]]] = []
        for lane in pending:
            box = boxes[lane]
            first = self._first(box)
            if first is None or first > bound:
                continue
            clock = moved.clock_of(lane)
            if clock is None or clock - before <= now_ms or first > clock - before:
                continue
            taken.append((first, lane, self._take(box, clock - before)))
        for _due, lane, items in sorted(taken, key=lambda t: (t[0], t[1])):
            if self._first(boxes[lane]) is None:
                self._emptied(lane)
            out.extend((x, lane) for x in items)

    def _pop_lazy(
        self, now_ms: int, moved: Mapping[str, int], before: int, out: list[tuple[Any, str]]
    ) -> None:
        """Many lanes moved on (a quiet partition's lanes, once a tick): only those with
        something due by their new clock are looked at, found from the heap of earliest
        due times (every lane with something pending has an entry at or before it), not
        by a walk over the lanes. The same items as a walk, in the same order."""
        bound = max(moved.values()) - before
        if bound <= now_ms:
            return
        boxes, nxt = self._lanes, self._next
        # Every entry looked at is filed again as it was, as the walk leaves the heap: it
        # keeps the same entries, so what the shard's clock pops later (in heap order)
        # comes in the same order whichever way the lanes were advanced.
        looked: list[tuple[int, str]] = []
        taken: dict[str, list[Any]] = {}
        while nxt and nxt[0][0] <= bound:
            entry = heapq.heappop(nxt)
            looked.append(entry)
            lane = entry[1]
            box = boxes.get(lane)
            if box is None:
                continue  # stale: emptied
            clock = moved.get(lane)
            first = self._first(box)
            if clock is None or clock - before <= now_ms or first is None or first > clock - before:
                continue
            taken.setdefault(lane, []).extend(self._take(box, clock - before))
            if self._first(box) is None:
                self._emptied(lane)
        for entry in looked:
            heapq.heappush(nxt, entry)
        if len(taken) > 1:
            for lane in [lane for lane in moved if lane in taken]:
                out.extend((x, lane) for x in taken[lane])
        else:
            for lane, items in taken.items():
                out.extend((x, lane) for x in items)


class LaneTimers(_ByLane[DueTimers], Stateful):
    """Key timers filed under a lane: one pops once its lane's clock or the shard's
    clock reaches it (see the module docstring)."""

    STATE_VERSION = 1

    def __len__(self) -> int:
        return sum(len(t) for t in self._lanes.values())

    def _first(self, box: DueTimers) -> int | None:
        return box.first()

    def _take(self, box: DueTimers, now_ms: int) -> list[Any]:
        return box.pop_due(now_ms)

    def add(self, key: str, due_ms: int, lane: str = "") -> None:
        box = self._lanes.get(lane)
        if box is None:
            box = self._lanes[lane] = DueTimers()
            self._filed(lane)
        before = box.first()
        box.add(key, due_ms)
        self._noted(lane, before, due_ms)

    def pop_due(
        self,
        now_ms: int,
        lanes: Mapping[str, int] = NO_LANES,
        before: int = 0,
    ) -> list[tuple[int, str, str]]:
        """(due, key, lane) of the timers due at or before ``now_ms`` or their lane's
        clock in ``lanes`` (lanes that moved on) less ``before``, by lane in (due, key)
        order."""
        return [(due, key, lane) for (due, key), lane in self._pop(now_ms, lanes, before)]

    def state(self) -> Snapshot:
        lanes = {lane: t.__getstate__() for lane, t in self._lanes.items()}
        return Snapshot("LaneTimers", self.STATE_VERSION, {"lanes": lanes, "next": self._next})

    def restore(self, snap: Snapshot) -> None:
        if snap.kind == "DueTimers":  # a detector's timers before lanes: the shard's lane
            old = DueTimers()
            old.restore(snap)
            self._lanes = {"": old} if len(old) else {}
            self._parts = None
            first = old.first()
            self._next = [] if first is None else [(first, "")]
            return
        data = migrate(LaneTimers, snap)
        self._lanes = {}
        for lane, saved in data["lanes"].items():
            t = self._lanes[lane] = DueTimers()
            t.__setstate__(saved)
        self._next = list(data["next"])
        self._parts = None


class LaneQueue(_ByLane[list[tuple[int, int, T]]], Stateful, Generic[T]):
    """Items held until their lane's clock or the shard's clock passes their time, given
    back in time order per lane (ties in the order they were held)."""

    STATE_VERSION = 1

    def __init__(self) -> None:
        super().__init__()
        self._seq = 0

    def __len__(self) -> int:
        return sum(len(h) for h in self._lanes.values())

    def _first(self, box: list[tuple[int, int, T]]) -> int | None:
        return box[0][0] if box else None

    def _take(self, box: list[tuple[int, int, T]], now_ms: int) -> list[Any]:
        out = []
        while box and box[0][0] <= now_ms:
            out.append(heapq.heappop(box)[2])
        return out

    def add(self, ts_ms: int, item: T, lane: str = "") -> None:
        box = self._lanes.get(lane)
        if box is None:
            box = self._lanes[lane] = []
            self._filed(lane)
        if not box or ts_ms < box[0][0]:  # :meth:`_noted`, inline (once per reading)
            heapq.heappush(self._next, (ts_ms, lane))
        self._seq += 1
        heapq.heappush(box, (ts_ms, self._seq, item))

    def pop_due(
        self,
        now_ms: int,
        lanes: Mapping[str, int] = NO_LANES,
        before: int = 0,
    ) -> list[tuple[T, str]]:
        """(item, lane) of the items at or before ``now_ms`` or their lane's clock less
        ``before``."""
        return self._pop(now_ms, lanes, before)

    def state(self) -> Snapshot:
        data = {"lanes": self._lanes, "next": self._next, "seq": self._seq}
        return Snapshot("LaneQueue", self.STATE_VERSION, data)

    def restore(self, snap: Snapshot) -> None:
        data = migrate(LaneQueue, snap)
        self._lanes = {lane: list(box) for lane, box in data["lanes"].items()}
        self._next = list(data["next"])
        self._seq = data["seq"]
        self._parts = None


__all__ = ["LaneClocks", "LaneQueue", "LaneTimers", "RunOn", "RunOnLanes", "lane_name"]
