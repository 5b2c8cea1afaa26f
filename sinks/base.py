"""A small batching-sink base and its Bytewax adapter.

A sink is ``setup()`` (connect, check, say what to do if it cannot),
``write_batch(items)`` and ``close()``. The adapter builds one sink per
Bytewax worker, so sinks never share a connection across threads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from bytewax.outputs import DynamicSink, StatelessSinkPartition

T = TypeVar("T")


class BatchSink(Generic[T]):
    def setup(self) -> None:  # noqa: B027 - optional hook
        """Connect and check; raise with a message that says what to do."""

    def write_batch(self, items: list[T]) -> None:
        raise NotImplementedError

    def close(self) -> None:  # noqa: B027 - optional hook
        """Flush and release resources."""


class _Partition(StatelessSinkPartition[T]):
    def __init__(self, sink: BatchSink[T]) -> None:
        self._sink = sink
        sink.setup()

    def write_batch(self, items: list[T]) -> None:
        if items:
            self._sink.write_batch(items)

    def close(self) -> None:
        self._sink.close()


class BytewaxSink(DynamicSink[T]):
    """Runs a fresh :class:`BatchSink` from ``factory(worker_index)`` on every worker."""

    def __init__(self, factory: Callable[[int], BatchSink[T]]) -> None:
        self._factory = factory

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Partition[T]:
        return _Partition(self._factory(worker_index))


class ListSink(BatchSink[T]):
    """Collects items in memory (tests, in-process summaries)."""

    def __init__(self, target: list[T]) -> None:
        self.target = target

    def write_batch(self, items: list[T]) -> None:
        self.target.extend(items)
