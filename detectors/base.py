"""Shared pieces for detectors: zone metadata, per-key state with idle eviction.

Detectors are plain classes. Each keeps its per-key state in a
:class:`KeyedState`, which costs O(1) per event and evicts idle keys in
last-seen order, so neither cost nor memory grows with keys that went quiet.
"""

from __future__ import annotations

import io
import pickle
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar
from zoneinfo import ZoneInfo

from citywatch.detectors.alerts import Alert
from citywatch.detectors.columns import pack, unpack
from citywatch.detectors.events import Event
from citywatch.detectors.lanes import LaneClocks
from citywatch.detectors.state import (
    Snapshot,
    Stateful,
    decode_records,
    encode_record,
    migrate,
)
from citywatch.geo.catalog import ZoneCatalog as ZoneCatalog  # re-exported for detectors
from citywatch.geo.catalog import ZoneMeta as ZoneMeta

S = TypeVar("S")


class KeyedState(Stateful, Generic[S]):
    """A dict of per-key state ordered by last use, for O(1) idle eviction.

    Its recovery snapshot is incremental while few keys change: each key's record
    is kept encoded, and only the keys used, added or dropped since the last
    snapshot are encoded again, so a snapshot (which stops a live flow) costs the
    keys that changed, not all live keys. When most keys changed (a fast input) it
    is a full one, written as columns (:mod:`citywatch.detectors.columns`), which
    pickle without a Python call per record. Every change of a record goes through
    :meth:`get` or :meth:`put` (a detector mutates only what ``get`` just
    returned), which is what marks it.

    >>> ks: KeyedState[int] = KeyedState(idle_ms=10)
    >>> ks.put("a", 1, now_ms=0); ks.put("b", 2, now_ms=5)
    >>> ks.evict_idle(now_ms=12)
    ['a']
    >>> ks.get("b", now_ms=13)
    2
    """

    __slots__ = (
        "_items", "_seen", "_used", "_uses", "_dirty", "_coded", "_mark", "_busy", "_uncoded",
        "idle_ms",
    )  # fmt: skip

    # Layouts, all read back: 1, one pickle of ``(key, record)`` items and last uses (up
    # to 0.4); 2, records encoded one key at a time with their use order (incremental);
    # 3, keys, last uses and records as columns (a full snapshot, when most keys changed);
    # 4, as 3 with the arrays, tuples and lists records hold packed as columns too.
    STATE_VERSION = 4

    def __init__(self, idle_ms: int) -> None:
        self.idle_ms = idle_ms
        self._items: OrderedDict[str, S] = OrderedDict()
        self._seen: dict[str, int] = {}
        # Each key's place in the use order (the count of moves to the back when it
        # last moved): a snapshot keeps the order without rewriting unchanged keys.
        self._used: dict[str, int] = {}
        self._uses = 0
        self._dirty: set[str] = set()  # keys changed since their record was encoded
        self._coded: dict[str, bytes] = {}  # key -> its encoded record
        self._mark = 0  # ``_uses`` at the last snapshot
        # No record is kept encoded, and ``_dirty`` holds only the keys changed since the
        # last snapshot (after a full one under a fast input: not listing every key in
        # ``_dirty`` then saves building a set of them all inside the snapshot's stop).
        self._uncoded = False
        # Most keys changed between the last two snapshots: the next one will most
        # likely be a full one, and encoding records ahead of it would be wasted.
        self._busy = False

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def get(self, key: str, now_ms: int) -> S | None:
        item = self._items.get(key)
        if item is not None:
            self._dirty.add(key)  # the caller may change it
            seen = self._seen  # :meth:`_touch`, inline (once per event of every key)
            if now_ms >= seen.get(key, now_ms):
                seen[key] = now_ms
                self._items.move_to_end(key)
                self._uses += 1
                self._used[key] = self._uses
        return item

    def put(self, key: str, value: S, now_ms: int) -> None:
        self._items[key] = value
        self._dirty.add(key)
        self._touch(key, now_ms)

    def pop(self, key: str) -> S | None:
        self._seen.pop(key, None)
        self._used.pop(key, None)
        self._forget(key)
        return self._items.pop(key, None)

    def _forget(self, key: str) -> None:
        # A key never encoded leaves nothing to drop: it is not kept as changed, so
        # a run that never snapshots (a replay) keeps no trace of evicted keys.
        if key in self._coded:
            self._dirty.add(key)
        else:
            self._dirty.discard(key)

    def take_stale(self, key: str, now_ms: int) -> S | None:
        """Remove and return a key's state if it was last used more than ``idle_ms``
        before ``now_ms`` (as :meth:`evict_idle` at that time would have), else None.

        Calling it before :meth:`get` makes whether state survives a silence depend
        on event time alone, never on when watermarks happened to evict it.

        >>> ks: KeyedState[int] = KeyedState(idle_ms=10)
        >>> ks.put("a", 1, now_ms=0)
        >>> ks.take_stale("a", now_ms=10), ks.take_stale("a", now_ms=11), len(ks)
        (None, 1, 0)
        """
        seen = self._seen.get(key)
        if seen is None or now_ms - seen <= self.idle_ms:
            return None
        return self.pop(key)

    def _touch(self, key: str, now_ms: int) -> None:
        if now_ms >= self._seen.get(key, now_ms):
            self._seen[key] = now_ms
            self._items.move_to_end(key)
            self._uses += 1
            self._used[key] = self._uses

    def items(self) -> Iterator[tuple[str, S]]:
        return iter(self._items.items())

    def precode(self, max_keys: int) -> int:
        """Encode up to ``max_keys`` of the keys changed since they were last encoded,
        ahead of the next snapshot (a live flow does it between batches, so the
        snapshot, which stops it, has less to do); returns how many it encoded. Does
        nothing while most keys change between snapshots: the next one is then a full
        one, which encodes every record anew."""
        if self._busy:
            return 0
        if self._uncoded:  # input slowed down: every record is to be encoded
            self._dirty, self._uncoded = set(dict.keys(self._items)), False
        dirty = self._dirty
        done = 0
        while dirty and done < max_keys:
            self._encode(dirty.pop())
            done += 1
        return done

    def _encode(self, key: str) -> None:
        self._dirty.discard(key)
        item = self._items.get(key, _GONE)
        if item is _GONE:
            self._coded.pop(key, None)
        else:
            self._coded[key] = encode_record((key, self._used[key], self._seen[key], item))

    def pending(self) -> int:
        """How many keys changed since they were last encoded."""
        return len(self._items) if self._uncoded else len(self._dirty)

    def state(self) -> Snapshot:
        """Every key's encoded ``(key, place in the use order, last use, record)``,
        joined; only keys changed since they were last encoded are encoded anew. When
        most keys are to be encoded: keys, last uses and records as columns instead.
        ``idle_ms`` is a parameter and stays as configured on restore."""
        # Moves to the back of the use order since the last snapshot: at least as many
        # as the keys used since (free to count, where a set of them would cost every
        # event something).
        busy = 2 * (self._uses - self._mark) > len(self._items)
        self._busy, self._mark = busy, self._uses
        if self._uncoded or 2 * len(self._dirty) > len(self._items):
            # Most keys changed (a fast input, or the first snapshot after a start): all
            # records as columns cost less than one pickle per key. Under a fast input
            # the stored records would all be rewritten: they are dropped.
            if busy:
                self._coded, self._dirty, self._uncoded = {}, set(), True
            # The keys as the dict underneath holds them (read in one sweep through its
            # table, where following the use order visits memory in a random order and
            # cost as much as packing the records), each with its place in the use order.
            keys = list(dict.keys(self._items))
            data = {
                "keys": keys,
                "used": list(map(self._used.__getitem__, keys)),
                "seen": list(map(self._seen.__getitem__, keys)),
                "records": pack(list(dict.values(self._items))),
            }
            return Snapshot("KeyedState", 4, data)
        self._busy = False  # encoding ahead of the next snapshot pays again
        for key in list(self._dirty):
            self._encode(key)
        records = b"".join(self._coded.values())
        return Snapshot("KeyedState", 2, {"records": records})

    def restore(self, snap: Snapshot) -> None:
        self._busy = False
        if snap.kind == "KeyedState" and snap.version in (1, 3, 4):  # all keys at once
            if snap.version == 1:
                self._items = OrderedDict(snap.data["items"])
                seen = snap.data["seen"]
                self._seen = {key: seen[key] for key in self._items}
                self._used = dict(zip(self._items, range(len(self._items)), strict=True))
                self._uses = len(self._items)
            else:
                self._restore_columns(snap.data)
            self._mark = self._uses
            self._coded, self._dirty, self._uncoded = {}, set(), True
            return
        data = migrate(KeyedState, snap) if snap.version != 2 else snap.data
        rows: list[tuple[int, str, int, Any, bytes]] = []
        for (key, used, seen, item), raw in decode_records(data["records"]):
            rows.append((used, key, seen, item, raw))
        rows.sort(key=_first)
        self._items = OrderedDict((key, item) for _u, key, _s, item, _r in rows)
        self._seen = {key: seen for _u, key, seen, _i, _r in rows}
        self._used = {key: used for used, key, _s, _i, _r in rows}
        self._uses = self._mark = rows[-1][0] if rows else 0
        # The bytes just read are the encoded records of these keys: the next snapshot
        # encodes only changes.
        self._coded = {key: raw for _u, key, _s, _i, raw in rows}
        self._dirty, self._uncoded = set(), False

    def _restore_columns(self, data: dict[str, Any]) -> None:
        keys, used, seen = data["keys"], data["used"], data["seen"]
        records = unpack(data["records"])
        order = sorted(range(len(keys)), key=used.__getitem__)
        self._items = OrderedDict([(keys[i], records[i]) for i in order])
        self._seen = dict(zip(keys, seen, strict=True))
        self._used = dict(zip(keys, used, strict=True))
        self._uses = used[order[-1]] if order else 0

    def evict_idle(self, now_ms: int) -> list[str]:
        """Drop keys last used more than ``idle_ms`` before ``now_ms``; returns them."""
        gone: list[str] = []
        limit = now_ms - self.idle_ms
        items, seen = self._items, self._seen
        while items:
            key = next(iter(items))
            if seen[key] >= limit:
                break
            del items[key]
            del seen[key]
            del self._used[key]
            self._forget(key)
            gone.append(key)
        return gone


_GONE = object()


def _first(row: tuple[int, str, int, Any, bytes]) -> int:
    return row[0]


def keyed_states(obj: Stateful) -> list[KeyedState[Any]]:
    """The :class:`KeyedState` objects in ``obj``'s learned state, nested ones included."""
    found: list[KeyedState[Any]] = []
    for name in obj._state_names():
        value = getattr(obj, name, None)
        subs = value.values() if isinstance(value, dict) else (value,)
        for sub in subs:
            if isinstance(sub, KeyedState):
                found.append(sub)
            elif isinstance(sub, Stateful):
                found.extend(keyed_states(sub))
    return found


def plain_state(snap: Any) -> Any:
    """A snapshot tree with each :class:`KeyedState`'s records decoded, as
    ``[(key, last use, record), ...]`` in use order: two snapshots of the same state
    give equal trees (and equal pickles) however their records were encoded."""
    if isinstance(snap, Snapshot):
        if snap.kind == "KeyedState" and snap.version == 1:
            seen = snap.data["seen"]
            return ("KeyedState", [(key, seen[key], item) for key, item in snap.data["items"]])
        if snap.kind == "KeyedState" and snap.version in (3, 4):  # columns (4: nested too)
            data = snap.data
            rows3 = zip(
                data["used"], data["keys"], data["seen"], unpack(data["records"]), strict=True
            )
            return ("KeyedState", [(k, s, r) for _u, k, s, r in sorted(rows3, key=_first_of)])
        if snap.kind == "KeyedState":
            data = migrate(KeyedState, snap) if snap.version != 2 else snap.data
            rows = sorted((rec for rec, _raw in decode_records(data["records"])), key=_used_of)
            return ("KeyedState", [(key, seen, item) for key, _u, seen, item in rows])
        return (snap.kind, snap.version, {k: plain_state(v) for k, v in snap.data.items()})
    if isinstance(snap, dict) and any(isinstance(v, Snapshot) for v in snap.values()):
        return {k: plain_state(v) for k, v in snap.items()}
    return snap


def same_state(a: Snapshot, b: Snapshot) -> bool:
    """Whether two snapshots hold the same state: equal :func:`plain_state` trees,
    compared as pickles written without shared references (which differ between a
    live object and one restored, where equal strings are no longer one object)."""
    return _unshared(plain_state(a)) == _unshared(plain_state(b))


def _unshared(value: Any) -> bytes:
    buf = io.BytesIO()
    pickler = pickle.Pickler(buf, protocol=5)
    pickler.fast = True  # no memo: each occurrence written in full
    pickler.dump(value)
    return buf.getvalue()


def keyed_v1(snap: Snapshot) -> Snapshot:
    """A :class:`KeyedState` snapshot in its version 1 layout (``items`` in use order,
    ``seen``), as citywatch wrote it before records were encoded one key at a time: what
    a detector's migration from its own older versions finds in its ``_state``."""
    _kind, rows = plain_state(snap)
    items = [(key, item) for key, _seen, item in rows]
    return Snapshot("KeyedState", 1, {"items": items, "seen": {k: s for k, s, _i in rows}})


def _used_of(rec: tuple[str, int, int, Any]) -> int:
    return rec[1]


def _first_of(row: tuple[int, str, int, Any]) -> int:
    return row[0]


@dataclass(slots=True)
class ContractCase:
    """A ready-made scenario for the detector contract suite (tests/detectors).

    ``events`` is a seeded synthetic stream (in arrival order) with an injected
    incident from ``anomaly_from`` (an index into ``events``) on; the detector
    must raise at least one alert of a kind in ``expect_kinds`` at or after that
    event and none before it. ``watermarks`` optionally maps event indexes to a
    watermark passed to ``on_watermark`` after that event.
    """

    detector: Detector
    events: list[Event]
    expect_kinds: frozenset[str]
    anomaly_from: int
    watermarks: dict[int, int] = field(default_factory=dict)


class Detector(Stateful):
    """The interface every stream detector implements.

    ``on_event`` sees each on-time event of its type in arrival order;
    ``on_watermark`` is called when event time has progressed (timers, eviction).
    Both append alerts to ``out`` and never mutate the event. Every concrete
    detector also provides ``contract_case(seed)`` for the contract suite, and
    names its learned state in ``STATE`` (see :class:`~citywatch.detectors.state.Stateful`):
    a restart rebuilds it from the current config and restores only that.
    """

    kinds: tuple[str, ...] = ()
    event_type: str = ""
    # Decides near the front of event time (the newest time every source has reached;
    # ``watermark.front_lead_ms``) rather than on the watermark: windowed and absence
    # kinds, so they fire a tick after their condition holds. Such a detector is told,
    # through ``on_arrival`` right before ``on_event``, the clock at which an event that
    # came behind it arrived, and must let it change nothing decided before that.
    on_front: bool = False
    # Its ``on_watermark`` does batch work whose cost is per call, not per event (the
    # anomaly bank's vectorised step): a live shard may call it once a tick rather than
    # after every input batch (``DetectorSuite.process(settle=False)``). Its results must
    # not depend on how calls group its events.
    settles_on_tick: bool = False
    # The event on_arrival spoke of, and its clock, until its on_event (never state).
    _arrival: tuple[Event, int] | None = None
    # The shard's per-source clocks, given by the suite to ``on_front`` detectors (never
    # state: the suite keeps it); None outside a flow, where every key is on one clock.
    lanes: LaneClocks | None = None

    @classmethod
    def contract_case(cls, seed: int) -> ContractCase:
        """A seeded scenario with one injected incident (see :class:`ContractCase`)."""
        raise NotImplementedError

    def on_event(self, ev: Event, out: list[Alert]) -> None:
        raise NotImplementedError

    def on_watermark(self, wm_ms: int, out: list[Alert]) -> None:  # noqa: B027 - optional hook
        """Event time reached ``wm_ms``: fire timers, evict idle keys."""

    def on_clocks(self, wm_ms: int, lanes: Mapping[str, int], out: list[Alert]) -> None:
        """``on_front`` detectors: the shard's clock reached ``wm_ms`` and the lanes in
        ``lanes`` (per-source clocks, :mod:`citywatch.detectors.lanes`) moved on to
        theirs. A key is judged on its lane's clock when that is further on. The default
        uses the shard's clock alone."""
        self.on_watermark(wm_ms, out)

    def lane_of(self, ev: Event) -> str:
        """The lane ``ev`` came through ("" outside a flow)."""
        return "" if self.lanes is None else self.lanes.lane(ev)

    def clock_of(self, lane: str, wm_ms: int) -> int:
        """The clock a key of ``lane`` is judged on: its lane's, or ``wm_ms`` if later."""
        return wm_ms if self.lanes is None else max(wm_ms, self.lanes.clock(lane))

    def on_heard(self, ev: Event, at_ms: int, out: list[Alert]) -> None:  # noqa: B027
        """``ev``'s key spoke at event time ``at_ms``, but ``ev`` itself was set aside
        (late, or a future timestamp: its source's clock is off). Absence detectors
        count it as presence; others ignore it (optional hook)."""

    def on_arrival(self, ev: Event, at_ms: int, out: list[Alert]) -> None:
        """``ev``, which ``on_event`` gets next, came when event time was at ``at_ms``:
        its stamp is ahead of that (its source's clock runs ahead) or behind it (it came
        after the front passed its stamp). Only said of such events. Kept for
        :meth:`arrived_at`; detectors that act on it at once extend this."""
        self._arrival = (ev, at_ms)

    def arrived_at(self, ev: Event) -> int | None:
        """The clock ``ev`` came at, when :meth:`on_arrival` told it just before this
        ``on_event`` (None for the usual event, stamped near the clock it came at)."""
        arrival = self._arrival
        if arrival is None or arrival[0] is not ev:
            return None
        self._arrival = None
        return arrival[1]

    def live_keys(self) -> int:
        return 0


class KeyedDetector(Detector):
    """A detector whose per-key state is one :class:`KeyedState` in ``_state``: keys
    idle for the state's ``idle_ms`` are evicted as event time passes, and its live
    keys are the state's keys."""

    _state: KeyedState[Any]

    def on_watermark(self, wm_ms: int, out: list[Alert]) -> None:
        self._state.evict_idle(wm_ms)

    def live_keys(self) -> int:
        return len(self._state)


class LaneDetector(Detector):
    """An ``on_front`` detector whose timers are filed per lane (its keys' sources,
    :mod:`citywatch.detectors.lanes`): ``on_watermark`` is :meth:`on_clocks` with no
    lane moving, and both call :meth:`advance` once anything moved on."""

    on_front = True
    _wm: int  # the shard's clock reached so far (learned state of the subclass)

    def on_watermark(self, wm_ms: int, out: list[Alert]) -> None:
        self.on_clocks(wm_ms, {}, out)

    def on_clocks(self, wm_ms: int, lanes: Mapping[str, int], out: list[Alert]) -> None:
        moved = wm_ms > self._wm
        if moved:
            self._wm = wm_ms
        elif not lanes:
            return
        self.advance(self._wm, lanes, moved, out)

    def advance(self, wm_ms: int, lanes: Mapping[str, int], moved: bool, out: list[Alert]) -> None:
        """Fire what is due at the shard's clock ``wm_ms`` or at the clocks of ``lanes``;
        ``moved``: the shard's clock moved on (evict idle keys then)."""
        raise NotImplementedError

    def event_shift(self, ev: Event) -> int | None:
        """The shift of ``ev``'s key, ``ev`` being processed (live runs;
        ``LaneClocks.shift_ms``), anchored: less its source's transit now, so that
        :meth:`shift_now` gives how far ahead of its lane the key is judged at any later
        time, its own event's transit against its source's transit then. None without a
        shift (replays, outside a flow, an event that came behind its clock), before its
        lane is even named: this is asked for nearly every event."""
        lanes = self.lanes
        if lanes is None or not lanes.shift_ms:
            return None
        return lanes.shift_ms - lanes.transit(lanes.lane(ev))

    def shift_now(self, lane: str, anchored: int) -> int:
        """How far ahead of ``lane``'s clock a key with the anchored shift ``anchored``
        (:meth:`event_shift`) is judged now: where its timer is filed."""
        return anchored + self.lanes.transit(lane) if self.lanes is not None else anchored

    def judged_clock(self, lane: str, clock_ms: int, anchored: int) -> int:
        """The clock a key with the anchored shift ``anchored`` is judged on, ``clock_ms``
        being its lane's (or the shard's): that shifted by its source's transit now, but
        never past its partition's ingest clock less its own event's transit
        (``LaneClocks.ingest_clock``): a lane that could not follow its source's transit
        back (a gateway's clock stepped behind: its events come late and its lane never
        goes back) does not judge it early."""
        ms = clock_ms + self.shift_now(lane, anchored)
        ingest = self.lanes.ingest_clock(lane) if self.lanes is not None else None
        return ms if ingest is None else min(ms, ingest + anchored)


class LocalClock:
    """Local wall time of event timestamps (Asia/Shanghai by default).

    >>> LocalClock("Asia/Shanghai").hour(0)
    8
    """

    __slots__ = ("tz", "_tzname")

    def __init__(self, tz: str = "Asia/Shanghai") -> None:
        self._tzname = tz
        self.tz = ZoneInfo(tz)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (LocalClock, (self._tzname,))

    def hour(self, ts_ms: int) -> int:
        return datetime.fromtimestamp(ts_ms / 1000, tz=self.tz).hour

    def weekday(self, ts_ms: int) -> int:
        return datetime.fromtimestamp(ts_ms / 1000, tz=self.tz).weekday()


def in_hours(hour: int, hours: tuple[int, int] | None) -> bool:
    """Whether a local hour falls in a ``(start, end)`` window; windows may wrap midnight.

    >>> in_hours(23, (20, 6)), in_hours(12, (20, 6)), in_hours(12, None)
    (True, False, True)
    """
    if hours is None:
        return True
    start, end = hours
    if start <= end:
        return start <= hour < end
    return hour >= start or hour < end
