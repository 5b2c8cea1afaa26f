"""A live shard scores anomaly readings once a tick, with the same alerts as a replay.

The anomaly bank's vectorised step costs about the same for 5 readings as for 200, so a
live shard that flushed it after every small input batch paid that cost tens of times a
second. It now flushes once a tick (``[flow] tick_ms``): with the first batch after a
tick has passed, or on the shard's wake-up when no batch comes for a tick, and at the
end of input::

    wall     0 ms   30 ms   60 ms   90 ms   120 ms  ...
    batches  b0     b1      b2      b3      b4
    bank     step                           step (b1..b4 together)

The scores do not depend on how readings are grouped (each sensor's in arrival order),
so the alerts are the replay's, byte for byte.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from citywatch.detectors.alerts import Alert
from citywatch.detectors.anomaly.params import BaselineParams
from citywatch.detectors.anomaly.sensor import SensorAnomalyDetector
from citywatch.detectors.events import SensorEvent
from citywatch.flows.detect import DetectorSuite, shard_builder
from citywatch.flows.records import ShardBatch

T0 = 1_781_000_000_000
MIN = 60_000


def _readings() -> list[SensorEvent]:
    """Six noise sensors a minute for 90 minutes; two of them step up 12 dB at minute 60."""
    rng = random.Random(5)
    out = []
    for m in range(90):
        for s in range(6):
            jump = 12.0 if m >= 60 and s in (1, 4) else 0.0
            out.append(
                SensorEvent(
                    T0 + m * MIN + s * 1_000, f"ns-{s}", "noise", 55 + rng.gauss(0, 1) + jump
                )
            )
    return out


def _suite() -> DetectorSuite:
    return DetectorSuite(
        [SensorAnomalyDetector({"noise": BaselineParams(warmup_readings=20, min_scale=0.5)})]
    )


class _Counting:
    """Counts the bank's vectorised passes (``SensorAnomalyDetector.process``)."""

    def __init__(self, suite: DetectorSuite) -> None:
        det = suite.detectors[0]
        assert isinstance(det, SensorAnomalyDetector)
        self.passes = 0
        process = det.process

        def counted(*args: Any) -> Any:
            self.passes += 1
            return process(*args)

        det.process = counted  # type: ignore[method-assign]


def _lines(alerts: list[Alert]) -> list[bytes]:
    return sorted(orjson.dumps(a.to_json()) for a in alerts)


def test_a_live_shard_steps_the_anomaly_bank_once_a_tick_with_the_replay_s_alerts() -> None:
    events = _readings()
    # the replay: every batch settles (one reading a batch)
    replay = shard_builder(_suite, dict)(None)
    replayed: list[Alert] = []
    for ev in events:
        res = replay.on_batch([ShardBatch([ev], ev.ts_ms, 0)])[0]
        replayed += [a for r in res for a in r.alerts]
    assert {a.subject for a in replayed} == {"ns-1", "ns-4"}

    # live: a batch of two readings every 30 ms of wall time, ticks every 100 ms
    clock = [datetime(2026, 12, 8, tzinfo=UTC)]
    live = shard_builder(_suite, dict, timers="wall", tick_s=0.1, now=lambda: clock[0])(None)
    count = _Counting(live.suite)
    alerts: list[Alert] = []
    batches = 0
    for i in range(0, len(events), 2):
        pair = events[i : i + 2]
        if live.notify_at() is not None and clock[0] >= live.notify_at():  # type: ignore[operator]
            alerts += [a for r in live.on_notify()[0] for a in r.alerts]
        res = live.on_batch([ShardBatch(pair, pair[-1].ts_ms, 0)])[0]
        alerts += [a for r in res for a in r.alerts]
        batches += 1
        clock[0] += timedelta(milliseconds=30)
    alerts += [a for r in live.on_eof()[0] for a in r.alerts]

    assert _lines(alerts) == _lines(replayed)
    # 270 batches over 8.1 s of wall time: a pass a tick at most, not one a batch
    assert batches == 270
    assert count.passes <= 82


def test_readings_left_for_the_tick_are_scored_at_the_end_of_input() -> None:
    events = _readings()
    clock = [datetime(2026, 12, 8, tzinfo=UTC)]
    live = shard_builder(_suite, dict, timers="wall", tick_s=0.1, now=lambda: clock[0])(None)
    alerts: list[Alert] = []
    # every batch within the first tick: only the first one settles
    for ev in events:
        res = live.on_batch([ShardBatch([ev], ev.ts_ms, 0)])[0]
        alerts += [a for r in res for a in r.alerts]
    assert alerts == []
    alerts += [a for r in live.on_eof()[0] for a in r.alerts]
    assert {a.subject for a in alerts} == {"ns-1", "ns-4"}


def test_readings_left_for_the_tick_are_in_the_snapshot_and_scored_after_a_restore() -> None:
    """A live snapshot can now fall between a batch and its tick: the readings left for
    it are part of the detector's state, and a restored shard scores them as the
    running one does (the step up begins among them)."""
    from citywatch.flows.recovery import restore, snapshot

    events = _readings()
    running = _suite()
    before: list[Alert] = []
    for ev in events[:355]:
        running.process([ev], ev.ts_ms, before)
    for ev in events[355:365]:  # minute 59-60: left for the tick
        running.process([ev], ev.ts_ms, before, settle=False)
    assert before == []
    restored = restore("detect", _suite(), snapshot(running))
    after_running: list[Alert] = []
    after_restored: list[Alert] = []
    for ev in events[365:]:
        running.process([ev], ev.ts_ms, after_running)
        restored.process([ev], ev.ts_ms, after_restored)
    assert {a.subject for a in after_running} == {"ns-1", "ns-4"}
    assert _lines(after_restored) == _lines(after_running)
