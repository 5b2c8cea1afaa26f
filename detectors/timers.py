"""Event-time timers for detectors: keys due at a time, popped once the watermark passes.

Keys are grouped by due time (a dict of lists) with a heap of the distinct due
times, so scheduling is O(1) for a due time already in use (window ends are
shared by every key of a window size) and popping costs only the keys that are
actually due, never a scan of all live keys. Timers are lazy: a detector checks,
when a key pops, whether the key still wants that timer (its state may have
moved on or been evicted) and schedules a new one if needed.

>>> t = DueTimers()
>>> t.add("a", 1_000); t.add("b", 500); t.add("c", 1_000)
>>> t.pop_due(600)
[(500, 'b')]
>>> t.pop_due(2_000)
[(1000, 'a'), (1000, 'c')]
>>> len(t)
0
"""

from __future__ import annotations

import heapq

from citywatch.detectors.state import Stateful


class DueTimers(Stateful):
    """Pending (due time, key) timers; picklable, deterministic pop order."""

    __slots__ = ("_by_due", "_heap", "_count")

    STATE = ("_by_due", "_heap", "_count")

    def __init__(self) -> None:
        self._by_due: dict[int, list[str]] = {}
        self._heap: list[int] = []
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __getstate__(self) -> tuple[dict[int, list[str]], list[int], int]:
        return (self._by_due, self._heap, self._count)

    def __setstate__(self, state: tuple[dict[int, list[str]], list[int], int]) -> None:
        self._by_due, self._heap, self._count = state

    def add(self, key: str, due_ms: int) -> None:
        keys = self._by_due.get(due_ms)
        if keys is None:
            self._by_due[due_ms] = [key]
            heapq.heappush(self._heap, due_ms)
        else:
            keys.append(key)
        self._count += 1

    def first(self) -> int | None:
        """The earliest due time pending, None when empty."""
        return self._heap[0] if self._heap else None

    def pop_due(self, now_ms: int) -> list[tuple[int, str]]:
        """Timers due at or before ``now_ms``, in (due, key) order."""
        out: list[tuple[int, str]] = []
        heap = self._heap
        while heap and heap[0] <= now_ms:
            due = heapq.heappop(heap)
            keys = self._by_due.pop(due)
            self._count -= len(keys)
            out.extend((due, k) for k in sorted(keys))
        return out
