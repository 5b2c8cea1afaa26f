"""Rows of numpy columns, one row per key, reused once a key is released.

The per-sensor and per-dwelling models keep their state as columns (one array
per field) so that updates vectorise and 100,000 keys cost a few bytes each;
this table hands out the rows. Rows are zeroed when given to a new key.

>>> t = SlotTable({"x": (np.float64, ())}, capacity=1)
>>> t.slot("a"), t.slot("b"), t.slot("a")
((0, True), (1, True), (0, False))
>>> t.release(0); t.slot("c"), len(t), t.key_of(1)
((0, True), 2, 'b')
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from citywatch.detectors.state import Snapshot, StateError, Stateful, migrate

Fields = Mapping[str, tuple[Any, tuple[int, ...]]]


class SlotTable(Stateful):
    """``cols`` maps field name to its array; the dict object itself never changes,
    so callers may hold on to it across growth."""

    def __init__(self, fields: Fields, capacity: int = 64) -> None:
        self.fields = dict(fields)
        self.cols: dict[str, np.ndarray] = {}
        self._index: dict[str, int] = {}
        self._keys: list[str | None] = []
        self._free: list[int] = []
        self._cap = 0
        self._grow(max(1, capacity))

    def _grow(self, cap: int) -> None:
        for name, (dtype, shape) in self.fields.items():
            new = np.zeros((cap, *shape), dtype=dtype)
            old = self.cols.get(name)
            if old is not None:
                new[: self._cap] = old
            self.cols[name] = new
        self._keys.extend([None] * (cap - self._cap))
        self._free.extend(range(cap - 1, self._cap - 1, -1))
        self._cap = cap

    def slot(self, key: str) -> tuple[int, bool]:
        """The row of ``key`` and whether it was just allocated (zeroed)."""
        i = self._index.get(key)
        if i is not None:
            return i, False
        if not self._free:
            self._grow(self._cap * 2)
        i = self._free.pop()
        for arr in self.cols.values():
            arr[i] = 0
        self._index[key] = i
        self._keys[i] = key
        return i, True

    def release(self, row: int) -> None:
        """Give a row back; its key is forgotten."""
        key = self._keys[row]
        if key is not None:
            del self._index[key]
        self._keys[row] = None
        self._free.append(row)

    def key_of(self, row: int) -> str | None:
        return self._keys[row]

    def rows(self) -> np.ndarray:
        """The rows in use."""
        return np.fromiter(self._index.values(), dtype=np.int64, count=len(self._index))

    def items(self) -> Iterator[tuple[str, int]]:
        return iter(list(self._index.items()))

    def state(self) -> Snapshot:
        """The rows up to the last one in use and the free list; ``fields`` (the layout)
        is checked on restore."""
        layout = {n: (np.dtype(t).str, tuple(shape)) for n, (t, shape) in self.fields.items()}
        used = max(self._index.values(), default=-1) + 1  # rows past it are free and zero
        data = {
            "layout": layout,
            "cols": {n: a[:used] for n, a in self.cols.items()},
            "index": self._index,
            "keys": self._keys,
            "free": self._free,
            "cap": self._cap,
        }
        return Snapshot("SlotTable", 1, data)

    def restore(self, snap: Snapshot) -> None:
        data = migrate(SlotTable, snap)
        layout = {n: (np.dtype(t).str, tuple(shape)) for n, (t, shape) in self.fields.items()}
        if data["layout"] != layout:
            msg = (
                f"per-key columns {data['layout']} in the snapshot do not fit the "
                f"current configuration's {layout}"
            )
            raise StateError(msg)
        cap = int(data["cap"])
        cols: dict[str, np.ndarray] = {}
        for name, (dtype, shape) in self.fields.items():
            col = np.zeros((cap, *shape), dtype=dtype)
            saved = data["cols"][name]
            col[: len(saved)] = saved
            cols[name] = col
        self.cols.clear()  # in place: holders of ``cols`` keep seeing the live arrays
        self.cols.update(cols)
        self._index = dict(data["index"])
        self._keys = list(data["keys"])
        self._free = list(data["free"])
        self._cap = cap

    def __len__(self) -> int:
        return len(self._index)

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.cols.values())
