"""Columns of records: a list of state records written one list per field.

A full recovery snapshot of a :class:`~citywatch.detectors.base.KeyedState` holds
one record per key, a hundred thousand of them in a city. Pickled as objects, each
record costs a Python call (:class:`~citywatch.detectors.state.TuplePickled`'s
``__getstate__``) on the way out and another (``__setstate__``) on the way back.
:func:`pack` instead reads each field of all records with one C-level getter into
a plain list, and :func:`unpack` builds the records back and sets each field from
its list through the slot's own setter, both without a Python call per record:
pickle then writes lists of numbers and strings, which stays on its C path. A
field whose values are themselves records of one class (an event kept as a
sensor's last reading) is packed the same way, so nested records cost no call
either. So are the containers held by records whose class asks for it
(``FLAT_COLUMNS``; ``KeyedState`` layout 4): arrays
of one type code become one array of all their items and their lengths; tuples of
one length, one column per place; lists, one column of all their items and their
lengths; dicts, a column of their keys and one of their values;
each of those columns packed in turn. A vehicle's recent intervals, its last fix
as a tuple or its list of undecided fixes then cost pickle no object per record
either. Anything else (a mix of classes, an unset field, a set) is left as a
plain list of values.

>>> from citywatch.detectors.events import SensorEvent
>>> recs = [SensorEvent(ts_ms=i, sensor=f"s{i}", kind="pm10", value=i / 2) for i in range(3)]
>>> packed = pack(recs)
>>> packed.names[:4], packed.cols[0]
(('ts_ms', 'sensor', 'kind', 'value'), (0, 1, 2))
>>> unpack(packed) == recs
True
>>> pack([1, "a", None])  # not records of one class: the values as they are
[1, 'a', None]
>>> fixes = [[(1, 0.5), (2, 0.25)], [], [(3, 0.125)]]
>>> unpack(pack(fixes, deep=True)) == fixes
True
"""

from __future__ import annotations

import types
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import MISSING, dataclass, fields
from itertools import accumulate, chain, compress, count, repeat
from operator import attrgetter, is_not
from typing import Any

from citywatch.detectors.state import TuplePickled

_drain: Callable[[Iterable[Any]], None] = deque(maxlen=0).extend  # an iterator run, at C speed


@dataclass(frozen=True, slots=True)
class _Columns:
    """``n`` records of class ``cls``: ``cols[i]`` holds every record's field
    ``names[i]``, a plain list or (records of one class) nested columns. ``at``: the
    records' places among ``size`` values, the others None (None: all are records)."""

    cls: type
    names: tuple[str, ...]
    n: int
    cols: list[Any]
    at: list[int] | None = None
    size: int = 0


@dataclass(frozen=True, slots=True)
class _Deques:
    """Deques, each as the list of its items, all with the same ``maxlen``."""

    maxlen: int | None
    items: list[list[Any]]


@dataclass(frozen=True, slots=True)
class _Arrays:
    """Arrays of one type code: all their items in one array, and their lengths."""

    typecode: str
    flat: array[Any]
    lengths: array[int]


@dataclass(frozen=True, slots=True)
class _Tuples:
    """``n`` tuples of one length: the values at each place, packed, one per place."""

    n: int
    cols: list[Any]


@dataclass(frozen=True, slots=True)
class _Lists:
    """Lists: all their items in one packed column, and their lengths."""

    lengths: array[int]
    items: Any


@dataclass(frozen=True, slots=True)
class _Dicts:
    """Dicts: all their keys in one packed column, their values in another, and their
    lengths (each dict's items in its own order)."""

    lengths: array[int]
    keys: Any
    values: Any


@dataclass(frozen=True, slots=True)
class _Some:
    """Values of one of the forms above, some None: ``packed`` holds the others, which
    are at places ``at`` among ``size``."""

    at: array[int]
    size: int
    packed: Any


Packed = _Columns | _Deques | _Arrays | _Tuples | _Lists | _Dicts | _Some | Sequence[Any]
# Types of values that are never records: a column starting with one is left as it is.
_SCALARS = frozenset({int, float, str, bool, bytes})
# Containers packed as one column of their items (layout 4).
_CONTAINERS = frozenset({array, tuple, list, dict})


def pack(values: Sequence[Any], deep: bool = False) -> Packed:
    """``values`` as columns when they are records of one :class:`TuplePickled`
    class with every field set, some maybe None, or (``deep``, or fields of a record
    class with ``FLAT_COLUMNS``) arrays, tuples, lists or dicts of one form; otherwise
    ``values`` itself."""
    if not values or type(values[0]) in _SCALARS:
        return values  # a column of numbers or strings (what else it holds: as it is)
    kinds = set(map(type, values))
    given, at = values, None
    if len(kinds) == 2 and type(None) in kinds:  # records or None: pack the records
        kinds.discard(type(None))
        at = list(compress(count(), map(is_not, values, repeat(None))))
        values = list(compress(values, map(is_not, values, repeat(None))))
    if len(kinds) != 1:
        return given
    cls = kinds.pop()
    if cls is deque and at is None:
        maxlens = set(map(attrgetter("maxlen"), values))
        if len(maxlens) == 1:
            return _Deques(maxlens.pop(), list(map(list, values)))
    if deep and cls in _CONTAINERS:
        packed = _containers(cls, values)
        if packed is None:
            return given
        return packed if at is None else _Some(array("q", at), len(given), packed)
    if not issubclass(cls, TuplePickled):
        return given
    names = tuple(f.name for f in fields(cls))  # type: ignore[arg-type]
    try:
        # One pass over the records (each read once, where they lie in memory), then
        # the rows turned into columns.
        rows = list(map(attrgetter(*names), values)) if len(names) > 1 else None
    except AttributeError:  # a field never set: left to pickle's own form
        return given
    flat = cls.FLAT_COLUMNS
    if rows is None:
        cols: list[Any] = [pack(list(map(attrgetter(names[0]), values)), flat)]
    else:
        cols = [pack(col, flat) for col in zip(*rows, strict=True)]
    return _Columns(cls, names, len(values), cols, at, len(given))


def _containers(cls: type, values: Sequence[Any]) -> Packed | None:
    """Arrays, tuples or lists (all of class ``cls``) packed; None if they do not fit
    one form (arrays of several type codes, tuples of several lengths)."""
    if cls is array:
        codes = set(map(attrgetter("typecode"), values))
        if len(codes) != 1:
            return None
        code = codes.pop()
        flat = array(code)
        flat.frombytes(b"".join(map(array.tobytes, values)))
        return _Arrays(code, flat, array("q", map(len, values)))
    if cls is tuple:
        sizes = set(map(len, values))
        if len(sizes) != 1 or 0 in sizes:
            return None
        return _Tuples(len(values), [pack(col, True) for col in zip(*values, strict=True)])
    if cls is dict:
        keys = list(chain.from_iterable(values))
        items = list(chain.from_iterable(map(dict.values, values)))
        return _Dicts(array("q", map(len, values)), pack(keys, True), pack(items, True))
    return _lists(values)


def _lists(values: Sequence[list[Any]]) -> _Lists:
    return _Lists(array("q", map(len, values)), pack(list(chain.from_iterable(values)), True))


def _split(items: Sequence[Any], lengths: array[int]) -> list[Any]:
    """``items`` cut into consecutive pieces of ``lengths`` (slices of its own kind)."""
    ends = list(accumulate(lengths))
    return list(map(items.__getitem__, map(slice, [0, *ends[:-1]], ends)))


def unpack(packed: Packed) -> Sequence[Any]:
    """The records (or values) :func:`pack` was given, equal field for field."""
    if isinstance(packed, _Deques):
        return list(map(deque, packed.items, repeat(packed.maxlen)))
    if isinstance(packed, _Arrays):
        return _split(packed.flat, packed.lengths)
    if isinstance(packed, _Tuples):
        if not packed.cols:
            return []
        return list(zip(*map(unpack, packed.cols), strict=True))
    if isinstance(packed, _Lists):
        items = unpack(packed.items)
        return _split(items if isinstance(items, list) else list(items), packed.lengths)
    if isinstance(packed, _Dicts):
        keys, values = list(unpack(packed.keys)), list(unpack(packed.values))
        cut = packed.lengths
        return list(map(dict, map(zip, _split(keys, cut), _split(values, cut))))
    if isinstance(packed, _Some):
        some: list[Any] = [None] * packed.size
        _drain(map(some.__setitem__, packed.at, unpack(packed.packed)))
        return some
    if not isinstance(packed, _Columns):
        return packed
    objs = _records(packed)
    if packed.at is None:
        return objs
    out: list[Any] = [None] * packed.size
    _drain(map(out.__setitem__, packed.at, objs))
    return out


def _records(packed: _Columns) -> list[Any]:
    cls, n = packed.cls, packed.n
    cols = {name: unpack(col) for name, col in zip(packed.names, packed.cols, strict=True)}
    objs: list[Any] = list(map(object.__new__, repeat(cls, n)))
    names = [f.name for f in fields(cls)]
    setters = [getattr(cls, name, None) for name in names]
    if set(cols) - set(names) or not all(
        isinstance(s, types.MemberDescriptorType) for s in setters
    ):
        # A field since removed (or a class that is not slotted): the form pickle uses
        # for fields by name, which leaves the owner's state migration to sort it out.
        rows = [dict(zip(cols, vals, strict=True)) for vals in zip(*cols.values(), strict=True)]
        for obj, row in zip(objs, rows, strict=True):
            obj.__setstate__((None, row))
        return objs
    for f, setter in zip(fields(cls), setters, strict=True):
        col = cols.get(f.name)
        if col is None:  # a field added since: its default, as TuplePickled does
            if f.default is not MISSING:
                col = [f.default] * n
            else:
                col = [f.default_factory() for _ in range(n)]  # type: ignore[operator]
        _drain(map(setter.__set__, objs, col))  # type: ignore[union-attr]
    return objs


__all__ = ["pack", "unpack"]
