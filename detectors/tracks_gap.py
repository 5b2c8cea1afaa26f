"""``track.gap``: a watched vehicle sent no fix for longer than its class allows.

A gap after fix F is *decided* in event time: it exists when no fix falls in
``(F, F + T]`` (T = ``max_silence_s`` of the class). A fix in that interval
decides "no gap" at once; the watermark passing ``F + T`` decides "gap", since
any fix still to come in that interval would be late. So the alert fires on
watermark progress, also for a gap that has already closed (the next fix came
after ``F + T`` but before the watermark got there), and it is the same alert
either way: ``first_ts`` = F's time, ``ts`` = F + T, position and evidence from
F, never from the time it fired or the fix that closed it. In live runs the
flow passes a wall-clock watermark instead (``[flow] timers = "wall"``), so
a truck that went dark is reported even when no other traffic moves event time.

Each vehicle keeps only its undecided fixes (usually one) and at most one timer,
filed under its deadline rounded up to the second (:class:`DueTimers`), so a
watermark costs O(due timers), not O(keys).

Timeline (T = 3 min, watermark = latest event time - 30 s)::

    t(min)   0    1    2         6     6.5
    fix      A    A    A         A               (the gap 2 -> 6 closed)
    wm                             ^ 5.5 > 2 + 3: track.gap, first_ts 2, ts 5

>>> from citywatch.detectors.events import GpsEvent
>>> det = GapDetector(GapParams(max_silence_s={"hazmat_truck": 180}))
>>> out = []
>>> for m in (0, 1, 2, 6):
...     det.on_event(GpsEvent(m * 60_000, "hz-1", 121.0, 32.0, "hazmat_truck"), out)
>>> det.on_watermark(5 * 60_000, out); len(out)
0
>>> det.on_watermark(5 * 60_000 + 1, out)
>>> [(a.kind, a.first_ts_ms, a.ts_ms) for a in out]
[('track.gap', 120000, 300000)]
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field

from citywatch.detectors import params
from citywatch.detectors.alerts import Alert
from citywatch.detectors.base import ContractCase, Detector, KeyedState
from citywatch.detectors.events import Event, GpsEvent
from citywatch.detectors.timers import DueTimers
from citywatch.detectors.watermark import NO_WATERMARK

OWNER = "track.gap"

# (ts_ms, lon, lat, zone, event id, class, cargo) of a fix whose gap is still undecided
_Fix = tuple[int, float, float, str | None, str | None, str, str | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class GapParams:
    """``[track.gap]``: the longest silence allowed per vehicle class."""

    max_silence_s: Mapping[str, float] = field(
        default_factory=lambda: {"hazmat_truck": 180.0, "tanker": 180.0}
    )
    severity: str = "yellow"
    idle_evict_s: int = 6 * 3600

    def __post_init__(self) -> None:
        for cls, secs in self.max_silence_s.items():
            params.positive(OWNER, f"max_silence_s.{cls}", secs)
        params.positive(OWNER, "idle_evict_s", self.idle_evict_s)
        params.severity(OWNER, self.severity)
        longest = max(self.max_silence_s.values(), default=0)
        if self.idle_evict_s <= longest:
            msg = (
                f'{OWNER}: "idle_evict_s" must be longer than the longest max_silence_s '
                f"({longest:g}), got {self.idle_evict_s}; a vehicle must not be forgotten "
                "before its gap is decided"
            )
            raise ValueError(msg)


@dataclass(slots=True)
class _Track:
    cls: str
    cargo: str | None
    max_ts: int
    undecided: list[_Fix]
    timer: int | None = None


class GapDetector(Detector):
    kinds = ("track.gap",)
    event_type = "gps"

    def __init__(self, p: GapParams) -> None:
        self.p = p
        self._silence_ms = {cls: int(s * 1000) for cls, s in p.max_silence_s.items()}
        self._state: KeyedState[_Track] = KeyedState(p.idle_evict_s * 1000)
        self._timers = DueTimers()
        self._wm = NO_WATERMARK

    def on_event(self, ev: Event, out: list[Alert]) -> None:
        if not isinstance(ev, GpsEvent) or ev.cls not in self._silence_ms:
            return
        silence = self._silence_ms[ev.cls]
        ts = ev.ts_ms
        fix: _Fix = (ts, ev.lon, ev.lat, ev.zones[0] if ev.zones else None, ev.id, ev.cls, ev.cargo)
        stale = self._state.take_stale(ev.entity, ts)
        if stale is not None:
            # Idle longer than idle_evict_s (> any silence): its open fixes are gaps, the
            # same alerts a watermark would have fired before evicting it.
            out.extend(self._alert(ev.entity, f) for f in stale.undecided)
        st = self._state.get(ev.entity, ts)
        if st is None:
            st = _Track(ev.cls, ev.cargo, ts, [fix])
            self._state.put(ev.entity, st, ts)
            self._schedule(ev.entity, st, ts + silence)
            return
        und = st.undecided
        if und and any(f[0] < ts <= f[0] + silence for f in und):
            # A fix within T after an undecided fix means no gap after that one.
            st.undecided = und = [f for f in und if not f[0] < ts <= f[0] + silence]
        if ts > st.max_ts:
            st.max_ts = ts
            st.cls, st.cargo = ev.cls, ev.cargo
            und.append(fix)
            if st.timer is None:
                self._schedule(ev.entity, st, und[0][0] + silence)
        # An older fix (out of order within the bound) is followed within T by the
        # newest one, so it is decided at once; only its effect above remains.

    def _schedule(self, entity: str, st: _Track, deadline: int) -> None:
        # One-second buckets keep the timer heap small. A bucket pops once the watermark
        # reaches it, at most a second before the deadline is passed; a key popped too
        # early is filed again and looked at on the next watermark.
        bucket = deadline // 1000 * 1000
        st.timer = bucket
        self._timers.add(entity, bucket)

    def on_watermark(self, wm_ms: int, out: list[Alert]) -> None:
        if wm_ms <= self._wm:
            return
        self._wm = wm_ms
        for bucket, entity in self._timers.pop_due(wm_ms):
            st = self._state.get(entity, NO_WATERMARK)  # a look, not a use
            if st is None or st.timer != bucket:
                continue  # evicted, or superseded
            st.timer = None
            silence = self._silence_ms.get(st.cls)
            if silence is None:
                continue
            keep: list[_Fix] = []
            for f in st.undecided:
                if f[0] + self._silence_ms.get(f[5], silence) < wm_ms:
                    out.append(self._alert(entity, f))
                else:
                    keep.append(f)
            st.undecided = keep
            if keep:
                self._schedule(entity, st, keep[0][0] + silence)
        self._state.evict_idle(wm_ms)

    def _alert(self, entity: str, f: _Fix) -> Alert:
        ts, lon, lat, zone, fix_id, cls, cargo = f
        silence_ms = self._silence_ms[cls]
        return Alert.make(
            "track.gap",
            self.p.severity,
            entity,
            "gps",
            zone,
            lon,
            lat,
            ts_ms=ts + silence_ms,
            first_ts_ms=ts,
            evidence={
                "class": cls,
                "cargo": cargo,
                "max_silence_s": silence_ms / 1000,
                "last_fix_id": fix_id,
            },
        )

    def live_keys(self) -> int:
        return len(self._state)

    @classmethod
    def contract_case(cls, seed: int) -> ContractCase:
        """Five trucks report every 15 s for 20 min; one goes dark at minute 10."""
        rng = random.Random(seed)
        t0, period = 1_767_225_600_000, 15_000
        events: list[Event] = []
        watermarks: dict[int, int] = {}
        anomaly_from = -1
        for k in range(80):
            for v in range(5):
                if v == 0 and k > 40:
                    continue
                ts = t0 + k * period + v * 1000
                lon = 121.0 + v * 0.01 + rng.uniform(-1e-4, 1e-4)
                events.append(GpsEvent(ts, f"hz-{v}", lon, 32.0, "hazmat_truck", id=f"e{k}-{v}"))
            watermarks[len(events) - 1] = t0 + k * period - 30_000
            if k == 40:
                anomaly_from = len(events)
        det = cls(GapParams(max_silence_s={"hazmat_truck": 180}))
        return ContractCase(det, events, frozenset(cls.kinds), anomaly_from, watermarks)
