"""Event-time watermarks with bounded out-of-orderness.

The watermark after an event is the highest event time seen so far minus the
allowed out-of-orderness. An event older than the watermark at its arrival is
late: it goes to the late side output and never touches detector state. The
decision depends only on arrival order, so every replay decides the same way.

>>> wm = Watermarker(max_out_of_order_ms=10)
>>> [wm.observe(t) for t in (100, 95, 120, 105, 112)]
[False, False, False, True, False]
>>> wm.watermark_ms
110
"""

from __future__ import annotations

from citywatch.detectors.state import Stateful

NO_WATERMARK = -(2**62)


class Watermarker(Stateful):
    __slots__ = ("max_out_of_order_ms", "max_ts_ms")

    STATE = ("max_ts_ms",)

    def __init__(self, max_out_of_order_ms: int) -> None:
        if max_out_of_order_ms < 0:
            msg = f"max_out_of_order_ms must be >= 0, got {max_out_of_order_ms}"
            raise ValueError(msg)
        self.max_out_of_order_ms = max_out_of_order_ms
        self.max_ts_ms = NO_WATERMARK

    @property
    def watermark_ms(self) -> int:
        if self.max_ts_ms == NO_WATERMARK:
            return NO_WATERMARK
        return self.max_ts_ms - self.max_out_of_order_ms

    def observe(self, ts_ms: int) -> bool:
        """Record an event time; True when that event is late."""
        late = ts_ms < self.watermark_ms
        if ts_ms > self.max_ts_ms:
            self.max_ts_ms = ts_ms
        return late
