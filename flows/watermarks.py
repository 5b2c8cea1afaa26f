"""The watermark a detector shard acts on when several sources feed it.

Each source (a recording, or one Kafka partition) stamps its own watermark in
arrival order. A shard receives batches of all sources interleaved however
the workers and the network happen to deliver them, so it must act on the
*minimum* over the sources: an event that is on time for its own partition is
then never behind the shard's watermark, and a timeout fires only once no
source can still send an on-time event before it. A source that says it is
idle (caught up for a while, or at its end) stops holding the others back;
when every source is idle the shard may advance to the highest of them. The
combined watermark never goes back.

>>> w = SourceWatermarks()
>>> w.update("gps#0", 1_000), w.update("gps#1", 500), w.update("gps#0", 2_000)
(1000, 1000, 1000)
>>> w.update("gps#1", 1_500), w.update("gps#1", 1_500, idle=True)
(1500, 2000)
>>> w = SourceWatermarks()
>>> w.update("gps#0", 1_000, peers=["gps#0", "gps#1"]), w.update("gps#1", 800)
(-4611686018427387904, 800)
"""

from __future__ import annotations

from collections.abc import Sequence

from citywatch.detectors.state import Stateful
from citywatch.detectors.watermark import NO_WATERMARK


class SourceWatermarks(Stateful):
    """Per-source watermarks of one shard and their monotone combination."""

    def __init__(self) -> None:
        self.by_source_: dict[str, int] = {}
        self.idle_: set[str] = set()
        self.combined_: int = NO_WATERMARK

    def update(self, source: str, wm_ms: int, idle: bool = False, peers: Sequence[str] = ()) -> int:
        """Record ``source``'s watermark and return the shard's combined watermark.

        ``peers`` announces sources not heard from yet; they hold the watermark
        back until they speak or go idle.
        """
        for peer in peers:
            self.by_source_.setdefault(peer, NO_WATERMARK)
        prev = self.by_source_.get(source, NO_WATERMARK)
        self.by_source_[source] = max(prev, wm_ms)
        if idle:
            self.idle_.add(source)
        else:
            self.idle_.discard(source)
        active = [w for s, w in self.by_source_.items() if s not in self.idle_]
        candidate = min(active) if active else max(self.by_source_.values())
        self.combined_ = max(self.combined_, candidate)
        return self.combined_

    def __len__(self) -> int:
        return len(self.by_source_)
