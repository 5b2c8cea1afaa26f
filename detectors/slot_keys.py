"""Per-key state as rows of typed columns, ordered by last use, for O(1) idle eviction.

:class:`SlotKeys` keeps what :class:`~citywatch.detectors.base.KeyedState` keeps
(which keys are live, each one's last use, the order of use that idle eviction
follows) but a key's record is a *row*: one value per named column, each column a
typed ``array.array`` (or, for text that differs per key, a plain list) indexed by
the key's slot. A detector reads and writes ``col[slot]``; the hot path builds no
object per event, and a recovery snapshot is a handful of flat arrays (written by
pickle as raw bytes, one copy each) and the list of keys, whatever the number of
keys. Restoring it reads the same arrays back, slots included, so a restored store
goes on exactly as the saved one would have.

Text shared by many keys (a sensor kind, a zone) is kept as a code of a
:class:`Codes` table, a list saved with the detector.

>>> sk = SlotKeys(idle_ms=10, columns={"n": ("q", 0), "v": ("d", 0.0)})
>>> a = sk.add("a", now_ms=0); b = sk.add("b", now_ms=5)
>>> sk.col["n"][a] = 7
>>> sk.evict_idle(now_ms=12)
['a']
>>> sk.slot("b", now_ms=13), sk.slot("a", now_ms=13)
(1, -1)
>>> sk.add("c", now_ms=14)  # the slot "a" had, its row back to the defaults
0
>>> sk.col["n"][0]
0
"""

from __future__ import annotations

from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from citywatch.detectors.state import Snapshot, StateError, Stateful, migrate

# A column: ``array.array`` type code ("q" int64, "d" float64, "b" int8, "i" int32), or
# "O" for a plain list (text that differs per key), and the value of a fresh row.
Column = tuple[str, Any]
Col = Any  # array.array or list: both indexed by slot

UNSET = -(2**63)  # an int column's "no value" (a timer not armed), below any time


class Codes(Stateful):
    """Text as small integer codes: ``code(text)`` and ``text[code]``; None is -1. Its
    state is the table, saved with the owner's.

    >>> c = Codes(); c.code("pm10"), c.code("noise"), c.code("pm10"), c.code(None)
    (0, 1, 0, -1)
    >>> c.text[1], c.of(-1)
    ('noise', None)
    """

    __slots__ = ("_index", "text")

    def __init__(self, text: Iterable[str] = ()) -> None:
        self.text: list[str] = list(text)
        self._index = {t: i for i, t in enumerate(self.text)}

    def code(self, text: str | None) -> int:
        if text is None:
            return -1
        i = self._index.get(text)
        if i is None:
            i = self._index[text] = len(self.text)
            self.text.append(text)
        return i

    def of(self, code: int) -> str | None:
        return None if code < 0 else self.text[code]

    def state(self) -> Snapshot:
        return Snapshot("Codes", self.STATE_VERSION, {"text": self.text})

    def restore(self, snap: Snapshot) -> None:
        text = migrate(Codes, snap)["text"]
        self.text[:] = list(text)  # in place: holders of ``text`` see the restored one
        self._index = {t: i for i, t in enumerate(self.text)}


class SlotKeys(Stateful):
    """Live keys, each with a slot (its row in every column) and a last use.

    ``col`` maps column name to its array; the arrays (and the dict) stay the same
    objects for the store's life, a restore included, so a detector may hold on to
    them. :meth:`slot` finds a key's row and counts it as used (as ``KeyedState.get``
    does: a use at an earlier time than the key's last one does not move it);
    :meth:`add` gives a new key a row with every column at its default.
    """

    STATE_VERSION = 1

    def __init__(self, idle_ms: int, columns: Mapping[str, Column]) -> None:
        self.idle_ms = idle_ms
        self.columns = dict(columns)
        self.col: dict[str, Col] = {
            name: [] if code == "O" else array(code) for name, (code, _d) in self.columns.items()
        }
        self._order: OrderedDict[str, int] = OrderedDict()  # key -> slot, in use order
        self._keys: list[str | None] = []  # slot -> key (None: free)
        self._seen = array("q")  # slot -> last use
        self._used = array("q")  # slot -> its place in the use order (moves to the back)
        self._uses = 0
        self._free: list[int] = []
        self._fresh = [(self.col[name], d) for name, (_c, d) in self.columns.items()]

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, key: str) -> bool:
        return key in self._order

    def peek(self, key: str) -> int:
        """The slot of ``key`` (-1 if it is not live), not counted as a use."""
        return self._order.get(key, -1)

    def slot(self, key: str, now_ms: int) -> int:
        """The slot of ``key`` (-1 if it is not live), used at ``now_ms``."""
        s = self._order.get(key, -1)
        if s >= 0 and now_ms >= self._seen[s]:
            self._seen[s] = now_ms
            self._order.move_to_end(key)
            self._uses += 1
            self._used[s] = self._uses
        return s

    def add(self, key: str, now_ms: int) -> int:
        """A row for the new key ``key`` (not live), every column at its default."""
        self._uses += 1
        if self._free:
            s = self._free.pop()
            self._keys[s] = key
            self._seen[s] = now_ms
            self._used[s] = self._uses
            for col, default in self._fresh:
                col[s] = default
        else:
            s = len(self._keys)
            self._keys.append(key)
            self._seen.append(now_ms)
            self._used.append(self._uses)
            for col, default in self._fresh:
                col.append(default)
        self._order[key] = s
        return s

    def reset(self, s: int) -> None:
        """Every column of row ``s`` back to its default (a key starting over)."""
        for col, default in self._fresh:
            col[s] = default

    def pop(self, key: str) -> int:
        """Forget ``key``; returns the slot it had (its row readable until the next
        :meth:`add`), or -1."""
        s = self._order.pop(key, -1)
        if s >= 0:
            self._release(s)
        return s

    def _release(self, s: int) -> None:
        self._keys[s] = None
        self._used[s] = -1  # a free slot: no place in the use order
        self._free.append(s)
        col: Any
        for col, _default in self._fresh:
            if isinstance(col, list):
                col[s] = None  # no text kept alive by a free row

    def take_stale(self, key: str, now_ms: int) -> bool:
        """Forget ``key`` if it was last used more than ``idle_ms`` before ``now_ms``."""
        s = self._order.get(key, -1)
        if s < 0 or now_ms - self._seen[s] <= self.idle_ms:
            return False
        self.pop(key)
        return True

    def evict_idle(self, now_ms: int) -> list[str]:
        """Drop keys last used more than ``idle_ms`` before ``now_ms``; returns them."""
        gone: list[str] = []
        limit = now_ms - self.idle_ms
        order, seen = self._order, self._seen
        while order:
            key = next(iter(order))
            s = order[key]
            if seen[s] >= limit:
                break
            del order[key]
            self._release(s)
            gone.append(key)
        return gone

    def live(self) -> np.ndarray:
        """Whether each slot holds a live key (a boolean per slot)."""
        if not len(self._used):
            return np.zeros(0, dtype=bool)
        return np.frombuffer(self._used, dtype=np.int64) >= 0

    def last_uses(self) -> array[int]:
        """Each slot's last use (read only)."""
        return self._seen

    def key_of(self, s: int) -> str | None:
        return self._keys[s]

    def items(self) -> Iterator[tuple[str, int]]:
        """``(key, slot)`` in use order, least recent first."""
        return iter(list(self._order.items()))

    def state(self) -> Snapshot:
        """The columns, keys, last uses and places in the use order, by slot (free slots
        included, so a restore hands out the same slots), and the free slots."""
        layout = {name: code for name, (code, _d) in self.columns.items()}
        data = {
            "layout": layout,
            "keys": self._keys,
            "seen": self._seen,
            "used": self._used,
            "uses": self._uses,
            "free": self._free,
            "cols": self.col,
        }
        return Snapshot("SlotKeys", self.STATE_VERSION, data)

    def restore(self, snap: Snapshot) -> None:
        data = migrate(SlotKeys, snap)
        layout = {name: code for name, (code, _d) in self.columns.items()}
        if data["layout"] != layout:
            msg = f"per-key columns {data['layout']} do not fit this citywatch's {layout}"
            raise StateError(msg)
        for name, saved in data["cols"].items():
            self.col[name][:] = saved  # in place: holders of a column see the restored one
        keys: list[str | None] = list(data["keys"])
        self._keys = keys
        self._seen = array("q", data["seen"])
        self._used = array("q", data["used"])
        self._uses = int(data["uses"])
        self._free = list(data["free"])
        # The live slots in use order (free slots have no place in it: -1), sorted by
        # numpy rather than one Python call per key.
        used = (
            np.frombuffer(self._used, dtype=np.int64) if len(self._used) else np.zeros(0, np.int64)
        )
        order = np.argsort(used, kind="stable")
        live: list[int] = order[used[order] >= 0].tolist()
        self._order = OrderedDict(zip(map(keys.__getitem__, live), live, strict=True))  # type: ignore[arg-type]

    def rows(self) -> list[tuple[str, int, dict[str, Any]]]:
        """``(key, last use, {column: value})`` in use order: the state as plain rows,
        equal for equal states whatever slots the keys have."""
        names = list(self.col)
        return [
            (key, self._seen[s], {n: self.col[n][s] for n in names})
            for key, s in self._order.items()
        ]


def slots_from_rows(
    rows: Iterable[tuple[str, int, Any]],
    columns: Mapping[str, Column],
    fill: Callable[[dict[str, Col], int, Any], None],
) -> Snapshot:
    """A :class:`SlotKeys` snapshot of ``(key, last use, old record)`` rows in use order
    (what ``base.plain_state`` reads from any ``KeyedState`` layout): each record is
    poured into its row by ``fill(columns, slot, record)``. For state migrations."""
    sk = SlotKeys(0, columns)
    for key, seen, record in rows:
        s = sk.add(key, seen)
        fill(sk.col, s, record)
    return sk.state()


__all__ = ["UNSET", "Codes", "SlotKeys", "slots_from_rows"]
