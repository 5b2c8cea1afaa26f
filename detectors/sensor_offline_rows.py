"""The rows of ``sensor.offline`` (:class:`~citywatch.detectors.sensor_health.OfflineDetector`):
their columns, and the lines as state versions 1-3 kept them (``_Line`` records of a
``KeyedState``) with the migration that turns those into rows."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from citywatch.detectors.base import KeyedState, plain_state
from citywatch.detectors.events import SensorEvent
from citywatch.detectors.lanes import LaneTimers
from citywatch.detectors.slot_keys import UNSET, Codes, Col, Column, slots_from_rows
from citywatch.detectors.state import TuplePickled
from citywatch.detectors.watermark import NO_WATERMARK

if TYPE_CHECKING:
    from citywatch.detectors.sensor_health import OfflineDetector


@dataclass(slots=True)
class _Line(TuplePickled):
    """A sensor's line as state versions 1-3 kept it (read by the migration to columns)."""

    kind: str
    last: SensorEvent | None = None  # latest settled reading (event time < watermark)
    alerted_ts: int = NO_WATERMARK  # the start of the last silence reported
    timer_due: int | None = None
    # Latest settled presence: a reading, or an event of the sensor set aside (late,
    # future timestamp) counted at the watermark when it came (``on_heard``).
    seen_ts: int = NO_WATERMARK


# A sensor's line as a row: its kind (a code of the detector's text table), the start of
# the last silence reported, its armed timer (UNSET: none) and that timer's lane (the
# timers are rebuilt from these on restore), its latest settled presence
# (``heard``: a reading, or an event of the sensor set aside, late or with a future
# timestamp, counted at the clock when it came), and of its latest settled reading only
# what an alert shows (time, value, kind, id, first zone, position; NaN: no position).
_LINE_COLUMNS: dict[str, Column] = {
    "kind": ("i", 0),
    "alerted": ("q", NO_WATERMARK),
    "timer": ("q", UNSET),
    "lane": ("i", -1),  # the lane (a text code) the armed timer is filed under
    "heard": ("q", NO_WATERMARK),
    "has_last": ("b", 0),
    "last_ts": ("q", 0),
    "last_value": ("d", 0.0),
    "last_kind": ("i", -1),
    "last_id": ("O", None),
    "last_zone": ("i", -1),
    "last_lon": ("d", math.nan),
    "last_lat": ("d", math.nan),
}


def _set_last(col: dict[str, Col], s: int, ev: SensorEvent, codes: Codes) -> None:
    col["has_last"][s] = 1
    col["last_ts"][s] = ev.ts_ms
    col["last_value"][s] = ev.value
    col["last_kind"][s] = codes.code(ev.kind)
    col["last_id"][s] = ev.id
    col["last_zone"][s] = codes.code(ev.zones[0]) if ev.zones else -1
    col["last_lon"][s] = math.nan if ev.lon is None else ev.lon
    col["last_lat"][s] = math.nan if ev.lat is None else ev.lat


def _to_columns(data: dict[str, Any]) -> dict[str, Any]:
    """State version 3 -> 4: the lines, ``_Line`` records of a ``KeyedState``, become
    rows of columns, their text codes of a new text table; of the timers only the heap
    of the lanes' next dues is kept (each row names its timer's lane)."""
    codes = Codes()
    timers = LaneTimers()
    timers.restore(data.pop("_timers"))
    lane_of = {
        (key, due): lane
        for lane, box in timers._lanes.items()
        for due, keys in box._by_due.items()
        for key in keys
    }

    def fill(col: dict[str, Col], s: int, row: tuple[str, _Line]) -> None:
        key, line = row
        col["kind"][s] = codes.code(line.kind)
        col["alerted"][s] = line.alerted_ts
        if line.timer_due is not None:
            col["timer"][s] = line.timer_due
            col["lane"][s] = codes.code(lane_of.get((key, line.timer_due), ""))
        col["heard"][s] = line.seen_ts
        if line.last is not None:
            _set_last(col, s, line.last, codes)

    _kind, rows = plain_state(data["_state"])
    keyed = [(key, seen, (key, line)) for key, seen, line in rows]
    data["_state"] = slots_from_rows(keyed, _LINE_COLUMNS, fill)
    data["_text"] = codes.state()
    data["_timer_next"] = list(timers._next)
    return data


def _add_seen_ts(data: dict[str, Any]) -> dict[str, Any]:
    """State version 1 -> 2: lines learn ``seen_ts`` (their last reading's time)."""
    for _key, line in data["_state"].data["items"]:
        if not hasattr(line, "seen_ts") or line.seen_ts is None:
            line.seen_ts = line.last.ts_ms if line.last is not None else NO_WATERMARK
    return data


def state_v3(det: OfflineDetector) -> dict[str, Any]:
    """``det``'s state as version 3 held it: the lines a ``KeyedState`` snapshot of
    ``_Line`` records (their last readings with the fields an alert shows) in use order,
    and the timers. What the migration to columns reads; tests write older snapshots
    with it."""
    lines: KeyedState[_Line] = KeyedState(det.idle_evict_s * 1000)
    col, text, seen = det._state.col, det._text, det._state.last_uses()
    for key, s in det._state.items():
        last = None
        if col["has_last"][s]:
            lon, lat = col["last_lon"][s], col["last_lat"][s]
            zone = text.of(col["last_zone"][s])
            last = SensorEvent(
                col["last_ts"][s],
                key,
                text.of(col["last_kind"][s]) or "",
                col["last_value"][s],
                None if math.isnan(lon) else lon,
                None if math.isnan(lat) else lat,
                id=col["last_id"][s],
                zones=() if zone is None else (zone,),
            )
        timer = col["timer"][s]
        line = _Line(
            text.text[col["kind"][s]],
            last,
            col["alerted"][s],
            None if timer == UNSET else timer,
            col["heard"][s],
        )
        lines.put(key, line, seen[s])
    return {
        "_state": lines.state(),
        "_timers": det._timers.state(),
        "_held": det._held.state(),
        "_wm": det._wm,
        "late_events_": det.late_events_,
    }
