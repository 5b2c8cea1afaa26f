"""Times typed by people on the command line.

Every command-line time option (``silence add --from/--until``, ``report
--since/--until``) goes through :func:`parse_human_time`, and every length
(``silence add --for``) through :func:`parse_duration`. Accepted forms:

* RFC 3339: ``2026-06-15T23:00:00+08:00``, ``2026-06-15T15:00:00Z``;
* ``now``;
* a length ``90s``, ``30m``, ``2h``, ``1d``: that long from now for a time in
  the future (``--until``, ``--from``), that long ago for one in the past
  (``--since``);
* ``today``, ``tomorrow``, ``yesterday`` (midnight), optionally followed by a
  time of day ``HH:MM``: ``today 08:00``, ``tomorrow 08:00``; in the configured
  time zone (``[flow] timezone``, default Asia/Shanghai).

Anything else raises :class:`HumanTimeError` (a ``ValueError``), whose message
is one line listing these forms.

>>> now = 1_781_514_000_000  # 2026-06-15T09:00:00Z, 17:00 in Shanghai
>>> from citywatch.detectors.events import format_ts
>>> format_ts(parse_human_time("2h", now_ms=now))
'2026-06-15T11:00:00.000Z'
>>> format_ts(parse_human_time("2h", now_ms=now, past=True))
'2026-06-15T07:00:00.000Z'
>>> format_ts(parse_human_time("tomorrow 08:00", now_ms=now))
'2026-06-16T00:00:00.000Z'
>>> format_ts(parse_human_time("today", now_ms=now, tz="UTC"))
'2026-06-15T00:00:00.000Z'
>>> parse_human_time("2026-06-15T09:00:00Z") == now
True
>>> try:
...     parse_human_time("next week")
... except HumanTimeError as exc:
...     print(exc)  # doctest: +ELLIPSIS
'next week' is not a time; use RFC 3339 (2026-06-15T23:00:00+08:00), now, 2h / 30m / ...
>>> parse_duration("90m")
5400
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_TZ = "Asia/Shanghai"
FORMS = (
    "RFC 3339 (2026-06-15T23:00:00+08:00), now, 2h / 30m / 1d / 90s, today, tomorrow, "
    "yesterday, or those with a time of day (tomorrow 08:00)"
)
HELP_FORMS = "RFC 3339, now, 2h, 30m, 1d, today 08:00, tomorrow, tomorrow 08:00"

_DURATION = re.compile(r"^(\d+)\s*([smhd])$")
_DAY = re.compile(r"^(today|tomorrow|yesterday)(?:\s+(\d{1,2}):(\d{2}))?$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DAY_OFFSET = {"yesterday": -1, "today": 0, "tomorrow": 1}


class HumanTimeError(ValueError):
    """A time or length typed on the command line that is not one of the accepted forms."""


def parse_duration(text: str) -> int:
    """``90s``, ``30m``, ``2h``, ``1d`` in seconds."""
    m = _DURATION.match(text.strip().lower())
    if not m or int(m.group(1)) == 0:
        msg = f"{text!r} is not a length; use a positive number with s, m, h or d (30m, 2h, 1d)"
        raise HumanTimeError(msg)
    return int(m.group(1)) * _UNIT_S[m.group(2)]


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        msg = f"unknown time zone {tz!r} ([flow] timezone); use an IANA name like Asia/Shanghai"
        raise HumanTimeError(msg) from None


def parse_human_time(
    text: str, *, now_ms: int | None = None, tz: str = DEFAULT_TZ, past: bool = False
) -> int:
    """Epoch milliseconds of ``text`` (see the module's forms); ``past`` makes a bare
    length count back from now instead of forward."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    t = " ".join(text.strip().lower().split())
    if t == "now":
        return now
    m = _DURATION.match(t)
    if m:
        length_ms = int(m.group(1)) * _UNIT_S[m.group(2)] * 1000
        return now - length_ms if past else now + length_ms
    m = _DAY.match(t)
    if m:
        zone = _zone(tz)
        hour, minute = (int(m.group(2)), int(m.group(3))) if m.group(2) else (0, 0)
        if hour > 23 or minute > 59:
            msg = f"{text!r}: {hour:02d}:{minute:02d} is not a time of day (00:00 to 23:59)"
            raise HumanTimeError(msg)
        day = datetime.fromtimestamp(now / 1000, zone).date() + timedelta(
            days=_DAY_OFFSET[m.group(1)]
        )
        local = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
        return int(local.timestamp() * 1000)
    try:
        dt = datetime.fromisoformat(text.strip().upper().replace(" ", "T", 1))
    except ValueError:
        dt = None
    if dt is None or dt.tzinfo is None:
        why = " (RFC 3339 needs an offset: Z or +08:00)" if dt is not None else ""
        msg = f"{text!r} is not a time{why}; use {FORMS}"
        raise HumanTimeError(msg)
    return int(dt.astimezone(UTC).timestamp() * 1000)
