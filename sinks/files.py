"""JSON Lines file outputs: alerts (``--alerts-out``), dead letters, late events."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

import orjson

from citywatch.sinks.base import BatchSink

T = TypeVar("T")

_locks: dict[str, threading.Lock] = {}


class JsonLinesSink(BatchSink[T], Generic[T]):
    """Appends one JSON document per item; workers of one process share the file safely."""

    def __init__(self, path: str | Path, to_json: Callable[[T], Any]) -> None:
        self.path = Path(path)
        self.to_json = to_json
        self._lock = _locks.setdefault(str(self.path.resolve()), threading.Lock())

    def setup(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()  # created even when the run writes nothing to it

    def write_batch(self, items: list[T]) -> None:
        data = b"".join(orjson.dumps(self.to_json(it)) + b"\n" for it in items)
        with self._lock, self.path.open("ab") as fh:
            fh.write(data)
