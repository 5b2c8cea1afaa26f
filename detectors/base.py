"""Shared pieces for detectors: zone metadata, per-key state with idle eviction.

Detectors are plain classes. Each keeps its per-key state in a
:class:`KeyedState`, which costs O(1) per event and evicts idle keys in
last-seen order, so neither cost nor memory grows with keys that went quiet.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar
from zoneinfo import ZoneInfo

from citywatch.detectors.alerts import Alert
from citywatch.detectors.events import Event
from citywatch.detectors.lanes import LaneClocks
from citywatch.detectors.state import Snapshot, Stateful
from citywatch.geo.catalog import ZoneCatalog as ZoneCatalog  # re-exported for detectors
from citywatch.geo.catalog import ZoneMeta as ZoneMeta

S = TypeVar("S")


class KeyedState(Stateful, Generic[S]):
    """A dict of per-key state ordered by last use, for O(1) idle eviction.

    >>> ks: KeyedState[int] = KeyedState(idle_ms=10)
    >>> ks.put("a", 1, now_ms=0); ks.put("b", 2, now_ms=5)
    >>> ks.evict_idle(now_ms=12)
    ['a']
    >>> ks.get("b", now_ms=13)
    2
    """

    __slots__ = ("_items", "_seen", "idle_ms")

    def __init__(self, idle_ms: int) -> None:
        self.idle_ms = idle_ms
        self._items: OrderedDict[str, S] = OrderedDict()
        self._seen: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def get(self, key: str, now_ms: int) -> S | None:
        item = self._items.get(key)
        if item is not None:
            self._touch(key, now_ms)
        return item

    def put(self, key: str, value: S, now_ms: int) -> None:
        self._items[key] = value
        self._touch(key, now_ms)

    def pop(self, key: str) -> S | None:
        self._seen.pop(key, None)
        return self._items.pop(key, None)

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

    def items(self) -> Iterator[tuple[str, S]]:
        return iter(self._items.items())

    def state(self) -> Snapshot:
        """Keys in last-use order with their records and last-use times; ``idle_ms``
        is a parameter and stays as configured on restore."""
        return Snapshot("KeyedState", 1, {"items": list(self._items.items()), "seen": self._seen})

    def restore(self, snap: Snapshot) -> None:
        from citywatch.detectors.state import migrate

        data = migrate(KeyedState, snap)
        self._items = OrderedDict(data["items"])
        self._seen = dict(data["seen"])

    def evict_idle(self, now_ms: int) -> list[str]:
        """Drop keys last used more than ``idle_ms`` before ``now_ms``; returns them."""
        gone: list[str] = []
        limit = now_ms - self.idle_ms
        while self._items:
            key = next(iter(self._items))
            if self._seen[key] >= limit:
                break
            del self._items[key]
            del self._seen[key]
            gone.append(key)
        return gone


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

    def on_clocks(self, wm_ms: int, lanes: Sequence[tuple[str, int]], out: list[Alert]) -> None:
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
        self.on_clocks(wm_ms, (), out)

    def on_clocks(self, wm_ms: int, lanes: Sequence[tuple[str, int]], out: list[Alert]) -> None:
        moved = wm_ms > self._wm
        if moved:
            self._wm = wm_ms
        elif not lanes:
            return
        self.advance(self._wm, lanes, moved, out)

    def advance(
        self, wm_ms: int, lanes: Sequence[tuple[str, int]], moved: bool, out: list[Alert]
    ) -> None:
        """Fire what is due at the shard's clock ``wm_ms`` or at the clocks of ``lanes``;
        ``moved``: the shard's clock moved on (evict idle keys then)."""
        raise NotImplementedError


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
