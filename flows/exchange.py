"""How the records that cross between processes are written (``replay -p N``, ``run -p N``).

Bytewax moves an item to another process's worker as ``pickle.dumps`` of it.
Pickle writes each event as an object of its own, and reads it back through a
Python-level ``__setstate__`` per event: for the parsed batches on their way to
the watermark step (:class:`~citywatch.flows.records.EventBatch`) and the
detection shards' batches (:class:`~citywatch.flows.records.ShardBatch`) that
was about 4-5 µs of CPU per event crossing (``benchmarks/exchange_cost.py``).

Here a batch's events cross as plain tuples instead: a byte of type per event
(their order) and, per event type, the tuples of the events' field values (the
C-level getter of :class:`~citywatch.detectors.state.TuplePickled`), which
pickle writes and reads without calling any Python code. Reading builds each
type's events with one ``itertools.starmap`` of its class over its rows and lays
them out again in the order of the type bytes. The values themselves are what
they were (pickle writes a NumPy float as one). The records' ``__reduce__``
(``flows/records.py``) give pickle their fields with the events packed.

Pickle keeps an object that two fields of a record share one object on the other
side; here that is kept where the flow relies on it: a shard batch's ``heard``
event that is also one of its events (:func:`pack_heard`). A stamped batch's
source clocks, the same dict in each of its shard batches, are pickled once for
all of them (:func:`pack_clocks`). Nothing here is stored: it lives only while a
record crosses, so it has no version and needs no migration.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Sequence
from itertools import compress, starmap
from typing import Any

from citywatch.detectors.events import DeadLetter, Event, GpsEvent, SensorEvent, VideoEvent
from citywatch.detectors.state import _getter

# The event classes in the order of their type byte.
CLASSES: tuple[type[Any], ...] = (GpsEvent, SensorEvent, VideoEvent)
_CODE: dict[type[Any], int] = {cls: i for i, cls in enumerate(CLASSES)}
_ROW: tuple[Callable[[Any], tuple[Any, ...]], ...] = tuple(_getter(cls)[1] for cls in CLASSES)
# Per class: the type bytes translated to 1 for its events, 0 for the others.
_ONLY = tuple(bytes(int(c == i) for c in range(256)) for i in range(len(CLASSES)))

# Events packed: their type bytes and, per class of CLASSES, the rows of its events.
Packed = tuple[bytes, tuple[tuple[tuple[Any, ...], ...], ...]]
_NO_EVENTS: Packed = (b"", tuple(() for _ in CLASSES))


def pack_events(events: Sequence[Event]) -> Packed:
    """``events`` as their type bytes and the field-value rows of each class (every
    step a C-level iteration: no Python code runs per event)."""
    tags = bytes(map(_CODE.__getitem__, map(type, events)))
    return tags, tuple(
        tuple(map(_ROW[i], compress(events, tags.translate(_ONLY[i])))) if i in tags else ()
        for i in range(len(CLASSES))
    )


def unpack_events(packed: Packed) -> list[Event]:
    """The events :func:`pack_events` packed, in their order."""
    tags, groups = packed
    if len(groups[1]) == len(tags):  # one class only (the common case of a sensor batch)
        return list(starmap(CLASSES[1], groups[1]))
    if len(groups[0]) == len(tags):
        return list(starmap(CLASSES[0], groups[0]))
    nexts = [iter(list(starmap(CLASSES[i], g))).__next__ for i, g in enumerate(groups)]
    return [nexts[t]() for t in tags]


def pack_heard(
    events: Sequence[Event], heard: Sequence[tuple[Event, int]]
) -> tuple[Packed, tuple[int, ...], tuple[int, ...]]:
    """A shard batch's ``heard`` pairs: an event that is also among ``events`` (the
    detection shard finds it there by identity, ``DetectorSuite.process``) as its index
    there, the others packed, -1 in its place; and the watermarks of all."""
    if not heard:
        return _NO_EVENTS, (), ()
    index = dict(zip(map(id, events), range(len(events)), strict=True))
    refs = tuple(index.get(id(ev), -1) for ev, _ in heard)
    aside = pack_events([ev for (ev, _), ref in zip(heard, refs, strict=True) if ref < 0])
    return aside, refs, tuple(wm for _, wm in heard)


def unpack_heard(
    events: list[Event], aside: Packed, refs: Sequence[int], wms: Sequence[int]
) -> list[tuple[Event, int]]:
    """The pairs :func:`pack_heard` packed, an event among ``events`` the same object."""
    others = iter(unpack_events(aside)).__next__
    return [(events[r] if r >= 0 else others(), wm) for r, wm in zip(refs, wms, strict=True)]


def pack_dead(dead: Sequence[DeadLetter]) -> tuple[tuple[bytes, str, str, str], ...]:
    return tuple((d.raw, d.reason, d.source, d.category) for d in dead)


def unpack_dead(rows: Sequence[tuple[bytes, str, str, str]]) -> list[DeadLetter]:
    return list(starmap(DeadLetter, rows))


# The clocks of the last batch packed, and of the last one read, in this process. A
# stamped batch's clocks (``StampedBatch.clocks``, a dict per source that moved on,
# often thousands in a city mix) go to every detection shard: the one dict is written
# once for all its shard batches and read once for those that arrive one after the
# other. The dicts are read-only (records' contents are never changed).
_clocks_out: tuple[object, bytes] = (None, b"")
_clocks_in: tuple[bytes, dict[str, int]] = (b"", {})


def pack_clocks(clocks: dict[str, int]) -> bytes:
    global _clocks_out  # noqa: PLW0603 - a one-entry cache, replaced as a whole
    last = _clocks_out
    if last[0] is clocks:
        return last[1]
    blob = pickle.dumps(clocks, protocol=pickle.HIGHEST_PROTOCOL)
    _clocks_out = (clocks, blob)
    return blob


def unpack_clocks(blob: bytes) -> dict[str, int]:
    global _clocks_in  # noqa: PLW0603 - a one-entry cache, replaced as a whole
    last = _clocks_in
    if last[0] == blob:
        return last[1]
    clocks: dict[str, int] = pickle.loads(blob)  # noqa: S301 - from this cluster's processes
    _clocks_in = (blob, clocks)
    return clocks
