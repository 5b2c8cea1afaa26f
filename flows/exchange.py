"""How the records that cross between processes are written (``replay -p N``, ``run -p N``).

Bytewax moves an item to another process's worker as ``pickle.dumps`` of it.
Pickle writes each event as an object of its own, and reads it back through a
Python-level ``__setstate__`` per event: for the parsed batches on their way to
the watermark step (:class:`~citywatch.flows.records.EventBatch`) and the
detection shards' batches (:class:`~citywatch.flows.records.ShardBatch`) that
was about 3-4 µs of CPU per event crossing (``benchmarks/exchange_cost.py``).

Here a batch's events are written as one ``marshal`` blob instead: a byte of
type per event (their order) and, per event type, the tuples of the events'
field values (the C-level getter of :class:`~citywatch.detectors.state.TuplePickled`).
Reading builds each type's events with one ``itertools.starmap`` of its class
over its rows and lays them out again in the order of the type bytes. Pickle
keeps an object that two fields of a record share one object on the other side;
here that is kept where the flow relies on it: a shard batch's ``heard`` event
that is also one of its events (:func:`pack_heard`). The records' ``__reduce__``
(``flows/records.py``) call :func:`dumps` / :func:`loads` on a tuple of their
fields with the events packed (and a shard batch's source clocks packed once per
stamped batch, :func:`pack_clocks`). Marshal writes any
object with the buffer protocol (a NumPy float) as bytes without a word, so
every value is checked to be a builtin scalar (or a tuple of them) first, by
the type sets of whole columns; a record holding anything else goes in
pickle's own form, as before (:func:`default_form`), so the encoding never
changes a value. Nothing here is stored: it lives only while a record crosses,
so it has no version and needs no migration.
"""

from __future__ import annotations

import copyreg
import marshal
from collections.abc import Callable, Iterable, Sequence
from itertools import chain, compress, starmap
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


# The types marshal writes back as themselves. It writes any other object with the
# buffer protocol (a NumPy scalar, a bytearray) as bytes, without an error: so a record
# holding anything else goes in pickle's own form instead (:class:`NotPlain`).
_SCALARS: frozenset[type] = frozenset({int, float, str, bytes, bool, type(None)})
_PLAIN: frozenset[type] = _SCALARS | {tuple}
_IS_TUPLE = tuple.__instancecheck__


class NotPlain(ValueError):
    """A value marshal would not give back as it is: the record goes as pickle writes it
    (:func:`default_form`)."""


def plain(values: Iterable[Any], kinds: frozenset[type] = _SCALARS) -> None:
    """Raise :class:`NotPlain` unless every one of ``values`` is of one of ``kinds``."""
    if not set(map(type, values)) <= kinds:
        raise NotPlain


def pack_events(events: Sequence[Event]) -> Packed:
    """``events`` as their type bytes and the field-value rows of each class (every
    step a C-level iteration: no Python code runs per event); :class:`NotPlain` if a
    field holds anything but builtin scalars and tuples of them."""
    tags = bytes(map(_CODE.__getitem__, map(type, events)))
    groups = tuple(
        tuple(map(_ROW[i], compress(events, tags.translate(_ONLY[i])))) if i in tags else ()
        for i in range(len(CLASSES))
    )
    for rows in groups:
        for column in zip(*rows, strict=True):
            kinds = set(map(type, column))
            if not kinds <= _SCALARS:
                if not kinds <= _PLAIN:
                    raise NotPlain
                plain(chain.from_iterable(filter(_IS_TUPLE, column)))
    return tags, groups


_NO_EVENTS: Packed = (b"", tuple(() for _ in CLASSES))


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
    rows = tuple((d.raw, d.reason, d.source, d.category) for d in dead)
    plain(chain.from_iterable(rows))
    return rows


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
    plain(clocks.keys())
    plain(clocks.values())
    blob = marshal.dumps(clocks)
    _clocks_out = (clocks, blob)
    return blob


def unpack_clocks(blob: bytes) -> dict[str, int]:
    global _clocks_in  # noqa: PLW0603 - a one-entry cache, replaced as a whole
    last = _clocks_in
    if last[0] == blob:
        return last[1]
    clocks: dict[str, int] = marshal.loads(blob)  # noqa: S302 - from this cluster's own processes
    _clocks_in = (blob, clocks)
    return clocks


def dumps(fields: tuple[Any, ...]) -> bytes:
    """``fields`` as one marshal blob: each a builtin scalar, a dict of them, or a tuple
    or list whose items are scalars or tuples (packed and checked by the functions
    above); :class:`NotPlain` otherwise."""
    for value in fields:
        kind = type(value)
        if kind in _SCALARS:
            continue
        if kind is dict:
            plain(value.keys())
            plain(value.values())
        elif kind is tuple or kind is list:
            plain(value, _PLAIN)
        else:
            raise NotPlain
    return marshal.dumps(fields)


def loads(data: bytes) -> tuple[Any, ...]:
    """The fields :func:`dumps` wrote."""
    fields: tuple[Any, ...] = marshal.loads(data)  # noqa: S302 - from this cluster's processes
    return fields


def reduce(
    record: Any, fields: Callable[[], tuple[Any, ...]], rebuild: Callable[[bytes], Any]
) -> tuple[Any, ...]:
    """A record's ``__reduce__``: ``rebuild`` of the blob of its ``fields()`` (which pack
    its events), or :func:`default_form` when a value is not plain."""
    try:
        return rebuild, (dumps(fields()),)
    except NotPlain:
        return default_form(record)


def default_form(record: Any) -> tuple[Any, ...]:
    """Pickle's own form of a frozen slotted dataclass (``object.__reduce_ex__``): a
    record holding a value marshal would not give back as it is goes as before."""
    newobj = copyreg.__newobj__  # type: ignore[attr-defined]  # not in typeshed
    return newobj, (type(record),), record.__getstate__()
