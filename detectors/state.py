"""Recovery state as plain, versioned data (never pickled detector objects).

A stateful object's *learned* state (per-key records, timers, counters, numpy
columns) is captured by :meth:`Stateful.state` as a :class:`Snapshot`: its
class name, a schema version and a dict of plain values. Parameters are never
part of it: a detector is rebuilt from the current configuration and the
snapshot is poured into it (:meth:`Stateful.from_state`), so a threshold
changed in the config applies after a restart.

Plain values are ``None``, numbers, strings, bytes, tuples, lists, dicts, sets,
deques, numpy arrays, nested snapshots and *state records*: the detectors'
private per-key dataclasses (``_Track``, ``_Episode``, ...) and the public event,
alert, span and incident records. :func:`encode` writes them with pickle
protocol 5 (compact, and fast for numpy); :func:`decode` reads them back with a
loader that accepts those types and nothing else, so a snapshot can never
carry (and restore) a detector, a parameter set or arbitrary code.

>>> from citywatch.detectors.timers import DueTimers
>>> t = DueTimers(); t.add("bus-7", 1_000)
>>> snap = decode(encode(t.state()))
>>> snap.kind, snap.version
('DueTimers', 1)
>>> DueTimers.from_state(state=snap).pop_due(2_000)
[(1000, 'bus-7')]
"""

from __future__ import annotations

import dataclasses
import io
import pickle
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, dataclass, fields
from operator import attrgetter
from typing import Any, ClassVar, Self

MAGIC = b"CWSTATE1"  # envelope of an encoded snapshot; a bare pickle is a legacy snapshot


class StateError(Exception):
    """A recovery snapshot cannot be restored. The message names the step and the fix:
    a migration shipped with citywatch, or ``citywatch run --reset-state STEP`` to drop
    that step's state (its detectors then start empty)."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The learned state of one object: ``kind`` (its class), schema ``version`` and
    ``data`` (attribute name -> plain value)."""

    kind: str
    version: int
    data: dict[str, Any]


class Stateful:
    """Mixin: ``state()`` / ``restore()`` / ``from_state()`` over the attributes in ``STATE``.

    ``STATE`` names the attributes that hold learned state; ``None`` means every
    instance attribute whose name ends in ``_`` (the STYLE convention for learned
    state). A nested :class:`Stateful` (or a dict of them) is snapshotted by its own
    ``state()`` and restored *into* the freshly built object, so its parameters also
    come from the current config. Bump ``STATE_VERSION`` whenever the meaning or
    layout of the state changes, and add a migration (``MIGRATIONS``) or let old
    snapshots fail with a clear error.
    """

    __slots__ = ()

    STATE_VERSION: ClassVar[int] = 1
    STATE: ClassVar[tuple[str, ...] | None] = None
    # (from_version) -> function turning that version's data into the next version's
    MIGRATIONS: ClassVar[dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {}

    def _state_names(self) -> tuple[str, ...]:
        if self.STATE is not None:
            return self.STATE
        names = getattr(self, "__dict__", None) or [
            n for c in type(self).__mro__ for n in getattr(c, "__slots__", ())
        ]
        return tuple(sorted(n for n in names if n.endswith("_") and not n.startswith("__")))

    def state(self) -> Snapshot:
        """The learned state (references to live containers: encode it before going on)."""
        data = {name: dump_value(getattr(self, name)) for name in self._state_names()}
        return Snapshot(type(self).__name__, self.STATE_VERSION, data)

    def restore(self, snap: Snapshot) -> None:
        """Pour ``snap`` into this (freshly built) object; parameters stay as built."""
        data = migrate(type(self), snap)
        for name in self._state_names():
            if name in data:
                setattr(self, name, load_value(getattr(self, name, None), data[name]))

    @classmethod
    def from_state(cls, *args: Any, state: Snapshot, **kwargs: Any) -> Self:
        """Build from the current parameters (``args``, ``kwargs``), then restore ``state``."""
        obj = cls(*args, **kwargs)
        obj.restore(state)
        return obj


def migrate(cls: type[Stateful], snap: Snapshot) -> dict[str, Any]:
    """``snap.data`` brought to ``cls.STATE_VERSION`` through the class's migrations."""
    if snap.kind != cls.__name__:
        msg = f"a snapshot of {snap.kind!r} cannot restore a {cls.__name__!r}"
        raise StateError(msg)
    data, version = snap.data, snap.version
    while version < cls.STATE_VERSION:
        step = cls.MIGRATIONS.get(version)
        if step is None:
            msg = (
                f"{cls.__name__} state version {version} is older than this citywatch "
                f"reads ({cls.STATE_VERSION}) and no migration from it ships"
            )
            raise StateError(msg)
        data, version = step(data), version + 1
    if version > cls.STATE_VERSION:
        msg = (
            f"{cls.__name__} state version {version} was written by a newer citywatch "
            f"(this one reads {cls.STATE_VERSION})"
        )
        raise StateError(msg)
    return data


def dump_value(value: Any) -> Any:
    if isinstance(value, Stateful):
        return value.state()
    if isinstance(value, dict) and value and isinstance(next(iter(value.values())), Stateful):
        return {k: v.state() for k, v in value.items()}
    return value


def load_value(current: Any, saved: Any) -> Any:
    if isinstance(current, Stateful) and isinstance(saved, Snapshot):
        current.restore(saved)
        return current
    if (
        isinstance(current, dict)
        and isinstance(saved, dict)
        and current
        and isinstance(next(iter(current.values())), Stateful)
    ):
        # Keyed sub-models (e.g. one per sensor kind): those still configured take
        # their state back; new ones start empty; dropped ones are forgotten.
        for key, sub in current.items():
            if key in saved:
                sub.restore(saved[key])
        return current
    return saved


# -- encoding --------------------------------------------------------------------

_PLAIN_GLOBALS = {
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "bytearray"),
    ("builtins", "complex"),
    ("collections", "OrderedDict"),
    ("collections", "deque"),
    ("copyreg", "_reconstructor"),
    ("array", "array"),  # typed number columns (array.array) of per-key records
    ("array", "_array_reconstructor"),
    ("builtins", "object"),
}
_NUMPY_GLOBALS = {
    "_reconstruct",
    "ndarray",
    "dtype",
    "scalar",
    "_frombuffer",
}
# Public records that may appear inside learned state (private ``_Name`` dataclasses of
# citywatch.detectors are records by convention).
_PUBLIC_RECORDS = {
    "Snapshot",
    "Alert",
    "GpsEvent",
    "SensorEvent",
    "VideoEvent",
    "StopSpan",
    "Incident",
    "IncidentView",
    "Member",
    "Recent",
    "SourceClock",
}


def _allowed(module: str, name: str) -> bool:
    if (module, name) in _PLAIN_GLOBALS:
        return True
    if module.split(".")[0] == "numpy":
        return name in _NUMPY_GLOBALS
    if module.startswith("citywatch.detectors.") and (
        name in _PUBLIC_RECORDS or name.startswith("_")
    ):
        return True
    return False


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if not _allowed(module, name):
            msg = f"holds {module}.{name}, which is not plain state data"
            raise StateError(msg)
        found = super().find_class(module, name)
        if module.startswith("citywatch.") and not (
            isinstance(found, type) and dataclasses.is_dataclass(found)
        ):
            msg = f"holds {module}.{name}, which is not a state record"
            raise StateError(msg)
        return found


def set_fields(obj: Any, slots: Mapping[str, Any]) -> None:
    """Set a slotted dataclass's fields from pickle's ``{slot: value}``; a field the
    pickle does not hold (added since it was written) takes its default."""
    for f in fields(obj):
        if f.name in slots:
            value = slots[f.name]
        elif f.default is not MISSING:
            value = f.default
        else:
            value = f.default_factory()  # type: ignore[operator]
        object.__setattr__(obj, f.name, value)


_GETTERS: dict[type, tuple[tuple[str, ...], Callable[[Any], Any]]] = {}


def _getter(cls: type) -> tuple[tuple[str, ...], Callable[[Any], Any]]:
    got = _GETTERS.get(cls)
    if got is None:
        names = tuple(f.name for f in fields(cls))
        one = attrgetter(names[0])
        got = _GETTERS[cls] = names, (attrgetter(*names) if len(names) > 1 else lambda o: (one(o),))
    return got


class TuplePickled:
    """Base of the slotted (not frozen) dataclasses held in recovery state by the
    hundred thousand (events, per-key records): they pickle as the tuple of their field
    values, read by one C-level getter, where pickle's default for slotted objects
    builds a dict per object (a city's snapshot, which stops a live flow, was 2-4x
    slower). States in that default form, ``(None, {slot: value})``, from older
    snapshots, still load; fields added since take their defaults."""

    __slots__ = ()

    # A full snapshot packs this class's records as columns (citywatch.detectors.columns);
    # True: the arrays, tuples, lists and dicts its fields hold as columns of their items
    # too (per-vehicle records of the track detectors), rather than one object each.
    FLAT_COLUMNS: ClassVar[bool] = False

    def __getstate__(self) -> tuple[Any, ...]:
        try:
            return _getter(type(self))[1](self)
        except AttributeError:  # a field never set: pickle's default form, as before
            names = _getter(type(self))[0]
            return (None, {n: getattr(self, n) for n in names if hasattr(self, n)})

    def __setstate__(self, state: Any) -> None:
        if len(state) == 2 and state[0] is None and isinstance(state[1], dict):
            # Pickle's default form: fields it lacks stay unset, as pickle left them,
            # for the owner's state migration to fill.
            for name, value in state[1].items():
                object.__setattr__(self, name, value)
            return
        for name, value in zip(_getter(type(self))[0], state, strict=True):
            object.__setattr__(self, name, value)


def encode(snap: Snapshot) -> bytes:
    """``snap`` as bytes for the recovery store. Written through a file so that the
    large byte strings of a city's state (the per-key records) are copied once, not
    into the pickler's buffer and again behind the envelope."""
    buf = io.BytesIO()
    buf.write(MAGIC)
    pickle.Pickler(buf, protocol=5).dump(snap)
    return buf.getvalue()


def encode_record(value: Any) -> bytes:
    """One record of an incremental snapshot (see ``KeyedState``): its length, then its
    pickle, so records encoded at different times join into one readable blob."""
    raw = pickle.dumps(value, protocol=5)
    return len(raw).to_bytes(4, "little") + raw


def decode_records(blob: bytes) -> Iterator[tuple[Any, bytes]]:
    """The records of joined :func:`encode_record` output, each with its encoded bytes,
    read by the same loader as :func:`decode` (plain state data only)."""
    view = memoryview(blob)
    at, end = 0, len(blob)
    while at < end:
        if end - at < 4:
            msg = "holds a truncated record"
            raise StateError(msg)
        size = int.from_bytes(view[at : at + 4], "little")
        stop = at + 4 + size
        if stop > end:
            msg = "holds a truncated record"
            raise StateError(msg)
        try:
            value = _PlainUnpickler(io.BytesIO(view[at + 4 : stop])).load()
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as e:
            msg = f"holds an unreadable record ({e})"
            raise StateError(msg) from None
        yield value, blob[at:stop]
        at = stop


def decode(blob: bytes, *, step: str = "state") -> Snapshot:
    """Read back what :func:`encode` wrote; ``step`` names the owner in error messages."""
    if not blob.startswith(MAGIC):
        msg = (
            f"recovery state of step {step!r} was written by an earlier citywatch "
            f"(whole pickled detectors, which would bring back old parameters); it cannot "
            f"be migrated: restart once with `citywatch run --reset-state {step}` (or delete "
            f"the recovery directory) to start that step empty"
        )
        raise StateError(msg)
    try:
        snap = _PlainUnpickler(io.BytesIO(blob[len(MAGIC) :])).load()
    except StateError as e:
        msg = f"recovery state of step {step!r} {e}; restart with --reset-state {step}"
        raise StateError(msg) from None
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as e:
        msg = f"recovery state of step {step!r} is unreadable ({e}); restart with --reset-state"
        msg += f" {step}"
        raise StateError(msg) from None
    if not isinstance(snap, Snapshot):
        msg = (
            f"recovery state of step {step!r} is not a snapshot; restart with --reset-state {step}"
        )
        raise StateError(msg)
    return snap


__all__ = [
    "Snapshot",
    "StateError",
    "Stateful",
    "decode",
    "decode_records",
    "encode",
    "encode_record",
    "migrate",
]
