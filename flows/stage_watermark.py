"""The watermark step: each input partition's events stamped with its watermark.

One :class:`~citywatch.detectors.watermark.Watermarker` per partition (the
step is keyed by source) keeps a clock per source inside it and splits the
batch into on-time events, late events (the late side output) and events too
far in the future (dead letters, reason ``future-timestamp``); a source's first
future event raises one ``source.clock_skew`` system alert.

An event set aside still tells that its key is alive: it is passed on as
*heard* at the partition's event time when it came (``Watermarker.heard_ms``:
the recent median, never behind the watermark, so never behind any detector's
clock), and the absence detectors (``sensor.offline``,
``track.gap``) count it as presence at that time. So is an on-time event
stamped further ahead of that time than a lagging source explains
(``source_idle_s + max_out_of_order_s``): its source's clock runs ahead, and
its key is alive *now*, not only at its stamp. So a gateway whose clock
stepped back (every event late), far ahead (every event refused, then
accepted once its own median follows) or a little ahead does not make its
sensors and vehicles look silent; a jump ahead is reported once as
``source.clock_skew``, events behind are counted as late.

Windowed and absence detectors decide near the front of event time, the
watermark plus ``front_lead_ms`` (see ``citywatch.flows.detect``), and each key
on its own source's clock when that is further on: the source's newest accepted
event time less ``[flow] source_slack_ms``, passed on per batch (``clocks``; see
``citywatch.detectors.lanes``). An on-time event stamped behind either clock is
passed on too, with the clock it came at, so those detectors let it change
nothing they decided before it came: the same alerts for any batching.

A live Kafka partition's batch says when the consumer had read the partition to its
end (``caught_ms``; a quiet one says so every ``[flow] tick_ms``). Nothing of it
stamped before then is still waiting in Kafka, so once a tick each of its sources'
lanes runs on to that wall time less ``source_slack_ms`` and less the source's own
transit (:meth:`~citywatch.detectors.watermark.Watermarker.quiet_lane_ms`): a source
that went quiet is judged near the wall clock, not its last event. Every
source of the partition moves on then, sent as one ``RunOn`` (every source's lane and
transit) that the shards keep by reference: they look a lane up only when a timer of
it may be due (``citywatch.detectors.lanes``), so a tick costs them nothing per
source. Behind its end (a backlog) nothing runs on; replays have no wall clock and
are unchanged.

Live, each on-time event also carries its key's *shift* (``StampedBatch.shifts``):
its source's quiet transit as the batch leaves it less the event's own
(``detectors.lanes.ingest_shift``), so that the absence detectors judge the key that
much ahead of (or behind) its lane and count its silence from when its last event came,
on the ingest clock, whatever the rest of its source's traffic took. The batch also
carries the transits it took them against (``StampedBatch.transits``): the shards
anchor each key's shift to its source's transit and judge it against the transit
*now*, so a source's transit drifting while the key is silent moves nothing. An event
taken as heard because its source's clock runs ahead carries none.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import orjson
from bytewax.operators import StatefulBatchLogic

from citywatch.detectors.alerts import Alert
from citywatch.detectors.events import DeadLetter, Event, event_to_json, format_ts
from citywatch.detectors.lanes import RunOn, ingest_shift
from citywatch.detectors.watermark import (
    FUTURE,
    HELD,
    LATE,
    NO_WATERMARK,
    ON_TIME,
    Watermarker,
    clock_skew_alert,
    front_lead_ms,
)
from citywatch.flows.config import FlowSettings
from citywatch.flows.records import NOT_CAUGHT_UP, EventBatch, StampedBatch
from citywatch.flows.recovery import restore, snapshot
from citywatch.flows.stats import RunStats

FUTURE_TIMESTAMP = "future-timestamp"


def watermark_step(
    flow: FlowSettings, stats: RunStats
) -> Callable[[Watermarker | None, EventBatch], tuple[Watermarker, StampedBatch]]:
    """Stamp each partition's batches with its watermark (minimum over its sources);
    split off late events, and dead-letter events too far in the future (see
    :mod:`citywatch.detectors.watermark`), raising ``source.clock_skew`` once a source."""
    live = flow.timers == "wall"
    slack_ms = flow.source_slack_ms
    tick_ms = flow.tick_ms
    quiet_at: dict[str, int] = {}  # partition -> wall time its lanes last ran on (not state)

    def stamp(state: Watermarker | None, batch: EventBatch) -> tuple[Watermarker, StampedBatch]:
        wm = state if state is not None else new_watermarker(flow)
        wall_ms = batch.ingest_ns // 1_000_000
        arrivals = batch.arrival_ms
        clock_ms = wall_ms if batch.wall_clock else None
        on_time: list[Event] = []
        late: list[Event] = []
        future: list[DeadLetter] = []
        heard: list[tuple[Event, int]] = []
        lead_ms = front_lead_ms(wm.max_out_of_order_ms)
        ahead_ms = wm.idle_ms + wm.max_out_of_order_ms
        touched: dict[str, None] = {}  # sources that accepted events, in order
        # Live: each on-time event's key's shift (``detectors.lanes.ingest_shift``),
        # aligned with ``on_time``; None in replays.
        known = arrivals is not None or batch.wall_clock  # when each event came
        shifts: list[int] | None = [] if live and known else None
        # Live: (index in ``shifts``, source, the event's own transit) of the events whose
        # shift is taken against their source's transit as the batch leaves it; and every
        # source whose transit this batch may have changed, sent on with it (``transits``).
        owns: list[tuple[int, str, int]] = []
        came: dict[str, None] = {}

        def judge(
            ev: Event, source: str | None, verdict: str, at: int | None, ref: int | None = None
        ) -> None:
            if source is None:
                source = wm.source_of(ev.src, ev.type)
            # The clock its key is judged on: its own source's (its lane), at least.
            lane = wm.lane_ms(source, slack_ms, at)
            if verdict == ON_TIME:
                on_time.append(ev)
                touched[source] = None
                mark = wm.watermark_ms
                shift = 0
                if mark != NO_WATERMARK and ev.ts_ms > wm.heard_ms + ahead_ms:
                    heard.append((ev, wm.heard_ms))  # its source's clock runs ahead
                elif mark != NO_WATERMARK:
                    clock = max(mark + lead_ms, lane)
                    if ev.ts_ms < clock:  # behind the clock the detectors decide on
                        heard.append((ev, clock))
                    if shifts is not None and at is not None:
                        owns.append((len(shifts), source, at - ev.ts_ms))
                if shifts is not None:
                    shifts.append(shift)
                return
            if verdict == HELD:  # decided later, by its source's next events
                return
            if verdict == LATE:
                late.append(ev)
            elif verdict == FUTURE:
                future.append(_future_letter(ev, wm, batch.source, at, ref))
            if wm.watermark_ms != NO_WATERMARK:  # its key spoke now, with a bad clock
                heard.append((ev, max(wm.heard_ms, lane)))

        at: int | None = clock_ms
        for i, ev in enumerate(batch.events):
            at = arrivals[i] if arrivals is not None else clock_ms
            source = wm.source_of(ev.src, ev.type)
            verdict = wm.observe(ev.ts_ms, source, at, ev)
            if shifts is not None and at is not None:
                came[source] = None
            for item, decided, ref in wm.take_released():  # held before ``ev``: decided now
                assert isinstance(item, Event)
                judge(item, None, decided, None, ref)
            judge(ev, source, verdict, at)
        if batch.end:
            for item, decided, ref in wm.drain():
                assert isinstance(item, Event)
                judge(item, None, decided, None, ref)
        if live and (batch.events or batch.dead):
            # Sources silent for source_idle_s of wall time stop holding it back. Not on a
            # caught-up partition's empty batches: with every source idle the partition's
            # watermark would jump to its newest one, a gateway whose clock runs ahead.
            wm.advance(wall_ms)
        clocks: dict[str, int] = {}
        for source in touched:  # the lanes that moved on, as the detectors will see them
            lane = wm.lane_ms(source, slack_ms, at)  # ``at``: the last event's wall clock
            wm.keep_lane(source, lane)
            clocks[source] = lane
        # Each source's transit as the batch leaves it: the shifts are taken against it, and
        # the shards judge a key by its own transit against its source's *current* one
        # (``LaneClocks.transit``), so a source's transit drifting while a key is silent
        # does not move that key's deadline on the ingest clock.
        transits: dict[str, int] | None = None
        if came:
            transits = {}
            for source in came:
                usual = wm.quiet_transit_ms(source)
                if usual is not None:
                    transits[source] = usual
            assert shifts is not None
            bound = wm.max_future_ms
            for i, source, own in owns:
                usual = transits.get(source)
                if usual is not None:
                    shifts[i] = ingest_shift(own, usual, bound)
        caught = batch.caught_ms
        if live and caught is not None and caught != NOT_CAUGHT_UP:
            last = quiet_at.get(batch.source)
            if last is None or wall_ms - last >= tick_ms:  # once a tick: lanes run on
                quiet_at[batch.source] = wall_ms
                run_on = _run_on(wm, min(caught, wall_ms), slack_ms)
                clocks = run_on  # (every source's transit with it)
        alerts: list[Alert] = []
        for source, ts_ms, ref_ms in wm.take_skewed():
            alert = clock_skew_alert(batch.source, source, ts_ms, ref_ms, live=known)
            alert.ingest_ns = batch.ingest_ns
            alert.wm_ms = wm.watermark_ms
            alerts.append(alert)
        if future:
            stats.add_parsed(0, {}, [FUTURE_TIMESTAMP] * len(future))
        if late:
            stats.add_late(len(late))
        stamped = StampedBatch(
            batch.source,
            on_time,
            late,
            batch.dead + future,
            wm.watermark_ms,
            batch.ingest_ns,
            batch.idle,
            batch.peers,
            alerts,
            heard,
            clocks,
            batch.seq,
            caught,
            shifts if shifts and any(shifts) else None,
            transits or None,
        )
        return wm, stamped

    return stamp


class WatermarkLogic(StatefulBatchLogic[EventBatch, StampedBatch, bytes]):
    """Bytewax state of one input partition: its :class:`Watermarker`, whose plain state
    is the recovery snapshot (rebuilt under the current ``[flow]`` bounds on resume)."""

    def __init__(
        self,
        stamp: Callable[[Watermarker | None, EventBatch], tuple[Watermarker, StampedBatch]],
        fresh: Watermarker,
        resume: object,
    ) -> None:
        self.stamp = stamp
        self.wm = restore("watermark", fresh, resume)
        self._source: str | None = None  # the partition, named by its batches
        # Numbered batches (one recording read by several workers) wait here for
        # those before them: stamped in their number's order, as one reader sends them.
        self._next_seq = 0
        self._waiting: dict[int, EventBatch] = {}

    def on_batch(self, values: list[EventBatch]) -> tuple[Iterable[StampedBatch], bool]:
        out: list[StampedBatch] = []
        for batch in values:
            if batch.seq is None:
                self._stamp(batch, out)
                continue
            self._waiting[batch.seq] = batch
            while self._next_seq in self._waiting:
                self._stamp(self._waiting.pop(self._next_seq), out)
                self._next_seq += 1
        return out, StatefulBatchLogic.RETAIN

    def _stamp(self, batch: EventBatch, out: list[StampedBatch]) -> None:
        self._source = batch.source
        self.wm, stamped = self.stamp(self.wm, batch)
        out.append(stamped)

    def on_eof(self) -> tuple[Iterable[StampedBatch], bool]:
        """End of input: events still held for their source's verdict are refused."""
        if self._waiting:  # every reader has ended: a gap in the numbers is a bug
            msg = f"watermark: batches {sorted(self._waiting)} of {self._source} never followed"
            raise RuntimeError(msg)
        if self._source is None or not self.wm.holding():
            return [], StatefulBatchLogic.RETAIN
        end = EventBatch(self._source, [], [], time.time_ns(), end=True)
        self.wm, stamped = self.stamp(self.wm, end)
        return [stamped], StatefulBatchLogic.RETAIN

    def snapshot(self) -> bytes:
        return snapshot(self.wm)


def watermark_builder(flow: FlowSettings, stats: RunStats) -> Callable[[object], WatermarkLogic]:
    """The ``watermark`` step's state builder (one per input partition)."""
    stamp = watermark_step(flow, stats)
    return lambda resume: WatermarkLogic(stamp, new_watermarker(flow), resume)


def new_watermarker(flow: FlowSettings) -> Watermarker:
    return Watermarker(
        flow.max_out_of_order_s * 1000,
        max_future_ms=flow.max_future_s * 1000,
        idle_ms=flow.source_idle_s * 1000,
        by=flow.watermark_source,
    )


def _run_on(wm: Watermarker, caught_ms: int, slack_ms: int) -> RunOn:
    """The partition was read to its end at wall time ``caught_ms``: nothing of it stamped
    before then is still waiting in Kafka, so each of its sources' lanes runs on with the
    wall clock (:meth:`Watermarker.quiet_lane_ms`), a source that went quiet too. Every
    source's lane as it is then, the ones that moved in this batch too: the shards keep
    it by reference and look a lane up only when they need it."""
    out: dict[str, int] = {}
    transits: dict[str, int] = {}
    top = NO_WATERMARK
    for source, clock in wm.clocks.items():
        lane = wm.quiet_lane_ms(source, slack_ms, caught_ms)
        if lane > clock.lane_ms:
            clock.lane_ms = lane
        else:
            lane = clock.lane_ms
        if lane != NO_WATERMARK:
            out[source] = lane
            if lane > top:
                top = lane
            transit = wm.quiet_transit_ms(source)
            if transit is not None:
                transits[source] = transit
    return RunOn(out, top, transits, caught_ms - slack_ms)


def _future_letter(
    ev: Event, wm: Watermarker, partition: str, at: int | None, held_ref: int | None = None
) -> DeadLetter:
    source = wm.source_of(ev.src, ev.type)
    ref = held_ref if held_ref is not None else wm.reference_ms(source, at)
    against = (
        "its arrival time"
        if at is not None
        else "where its source went on"
        if held_ref is not None
        else "its source's recent median"
    )
    ahead = (ev.ts_ms - ref) / 1000 if ref is not None else 0.0
    reason = (
        f"{FUTURE_TIMESTAMP}: {ev.type}.ts {format_ts(ev.ts_ms)} is {ahead:.0f} s ahead of "
        f"{against} (more than [flow] max_future_s = {wm.max_future_ms // 1000})"
    )
    return DeadLetter(orjson.dumps(event_to_json(ev)), reason, partition, FUTURE_TIMESTAMP)
