"""Run counters shared by the steps of one process, for summaries and progress."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class RunStats:
    events_in: int = 0
    events_ok: Counter[str] = field(default_factory=Counter)
    dead: Counter[str] = field(default_factory=Counter)
    late: int = 0
    alerts: Counter[str] = field(default_factory=Counter)
    work_orders: Counter[str] = field(default_factory=Counter)
    repeats: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_parsed(self, lines: int, ok: dict[str, int], dead: list[str]) -> None:
        with self._lock:
            self.events_in += lines
            self.events_ok.update(ok)
            self.dead.update(dead)

    def add_late(self, n: int) -> None:
        with self._lock:
            self.late += n

    def add_alerts(self, kinds: list[str]) -> None:
        with self._lock:
            self.alerts.update(kinds)

    def add_work_orders(self, queues: list[str], repeats: int) -> None:
        with self._lock:
            self.work_orders.update(queues)
            self.repeats += repeats
