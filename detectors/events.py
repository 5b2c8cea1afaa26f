"""Input events: the three event types of the input contract and their parser.

Parsing is pure: bytes in, an event or a :class:`DeadLetter` out. Nothing here
raises on bad input; every rejection carries a precise, human-readable reason
such as ``gps.lat: 95.2 is outside [-90, 90]``.

>>> ev = parse_event(b'{"type":"gps","ts":"2026-05-01T08:00:00+08:00",'
...                  b'"entity":"su-f-1","lon":120.9,"lat":32.0}')
>>> ev.ts_ms, ev.entity
(1777593600000, 'su-f-1')
>>> parse_event(b'{"type":"gps","ts":1767225600000,"entity":"x","lon":1,"lat":95.2}').reason
'gps.lat: 95.2 is outside [-90, 90]'
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from citywatch.detectors.state import TuplePickled

# Epoch-millisecond timestamps must fall in this range (2000-01-01 .. 2100-01-01);
# anything else is almost always seconds or microseconds sent by mistake.
MIN_TS_MS = 946_684_800_000
MAX_TS_MS = 4_102_444_800_000
MAX_ID_LEN = 128


@dataclass(slots=True)
class GpsEvent(TuplePickled):
    """A GPS fix of a tracked entity (truck, tanker, vessel, patrol car)."""

    ts_ms: int
    entity: str
    lon: float
    lat: float
    cls: str | None = None
    speed_kmh: float | None = None
    heading: float | None = None
    cargo: str | None = None
    src: str | None = None
    id: str | None = None
    # Filled in by the flow's batched geofence step, never by the parser.
    zones: tuple[str, ...] = ()
    town: str | None = None

    @property
    def key(self) -> str:
        return self.entity

    def place(self, lon: float, lat: float) -> None:
        """Set the position (a registered device's, when the event came without one)."""
        self.lon, self.lat = lon, lat

    type = "gps"


@dataclass(slots=True)
class SensorEvent(TuplePickled):
    """A reading of a fixed sensor (water level, dust, household meter, ...)."""

    ts_ms: int
    sensor: str
    kind: str
    value: float
    lon: float | None = None
    lat: float | None = None
    unit: str | None = None
    src: str | None = None
    id: str | None = None
    zones: tuple[str, ...] = ()
    town: str | None = None

    @property
    def key(self) -> str:
        return self.sensor

    def place(self, lon: float, lat: float) -> None:
        """Set the position (a registered device's, when the event came without one)."""
        self.lon, self.lat = lon, lat

    type = "sensor"


@dataclass(slots=True)
class VideoEvent(TuplePickled):
    """A detection by a video-analytics model on one camera."""

    ts_ms: int
    camera: str
    label: str
    confidence: float
    lon: float | None = None
    lat: float | None = None
    snapshot: str | None = None
    src: str | None = None
    id: str | None = None
    zones: tuple[str, ...] = ()
    town: str | None = None

    @property
    def key(self) -> str:
        return self.camera

    def place(self, lon: float, lat: float) -> None:
        """Set the position (a registered device's, when the event came without one)."""
        self.lon, self.lat = lon, lat

    type = "video"


Event = GpsEvent | SensorEvent | VideoEvent


@dataclass(slots=True, frozen=True)
class DeadLetter:
    """A rejected input with its raw bytes and the reason it was rejected."""

    raw: bytes
    reason: str
    source: str = ""
    category: str = field(default="")

    def to_json(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "category": self.category or reason_category(self.reason),
            "source": self.source,
            "raw": self.raw.decode("utf-8", errors="replace"),
        }


# A recording's header line (see citywatch.replay.recording); readers skip it only
# as a file's first line, so one met here comes from concatenated recordings.
_RECORDING_HEADER = b'{"citywatch_recording"'
MID_HEADER_REASON = (
    "recording: recording header in the middle of the file; concatenated recordings?"
    " split them or pass each file separately"
)


class _Reject(Exception):  # noqa: N818 - internal control flow, never escapes parse_event
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def reason_category(reason: str) -> str:
    """The counting bucket of a reason: the field path before the colon.

    >>> reason_category("gps.lat: 95.2 is outside [-90, 90]")
    'gps.lat'
    """
    head, _, _ = reason.partition(":")
    return head.strip() or "other"


def _show(value: Any) -> str:
    text = orjson.dumps(value).decode() if not isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_ts(value: Any, where: str = "ts") -> int:
    """Event time as epoch milliseconds from RFC 3339 text or integer epoch ms.

    >>> parse_ts("2026-01-01T00:00:00Z"), parse_ts(1767225600000)
    (1767225600000, 1767225600000)
    """
    if isinstance(value, bool):
        raise _Reject(f"{where}: expected RFC 3339 text or epoch milliseconds, got {_show(value)}")
    if isinstance(value, int | float):
        if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
            raise _Reject(f"{where}: epoch milliseconds must be a whole number, got {value!r}")
        ms = int(value)
        if MIN_TS_MS <= ms < MAX_TS_MS:
            return ms
        if MIN_TS_MS // 1000 <= ms < MAX_TS_MS // 1000:
            raise _Reject(
                f"{where}: {ms} looks like epoch seconds; expected epoch milliseconds "
                f"(multiply by 1000)"
            )
        raise _Reject(f"{where}: {_show(value)} is outside years 2000-2100 as epoch milliseconds")
    if isinstance(value, str):
        fast = _utc_millis(value)
        if fast is not None:
            return fast
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            dt = None
        if dt is None and len(value) <= 40:
            # RFC 3339 allows a lower-case "t" and "z"; fromisoformat does not.
            try:
                dt = datetime.fromisoformat(value.upper())
            except ValueError:
                dt = None
        if dt is None:
            raise _Reject(
                f"{where}: {_show(value)} is not an RFC 3339 timestamp "
                f"(like 2026-05-01T08:00:00+08:00) or epoch milliseconds"
            )
        if dt.tzinfo is None:
            raise _Reject(f"{where}: {_show(value)} has no UTC offset; add Z or +08:00")
        ms = int(round(dt.timestamp() * 1000))
        if not MIN_TS_MS <= ms < MAX_TS_MS:
            raise _Reject(f"{where}: {_show(value)} is outside years 2000-2100")
        return ms
    raise _Reject(f"{where}: expected RFC 3339 text or epoch milliseconds, got {_show(value)}")


# Epoch seconds of "YYYY-MM-DDTHH:MM:SS" prefixes seen lately: gateways stamp in UTC
# with milliseconds, so one second's events share a prefix and the whole timestamp
# reduces to a look-up and three digits (the general path below gives the same value).
_SECONDS: dict[str, int] = {}
_SECONDS_MAX = 4096
_DIGITS = frozenset("0123456789")
_GATEWAY_TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", re.ASCII)


def _utc_millis(value: str) -> int | None:
    """Epoch ms of ``YYYY-MM-DDTHH:MM:SS.fffZ`` (the gateways' form), else None."""
    if len(value) != 24 or value[23] != "Z" or value[19] != ".":
        return None
    frac = value[20:23]
    if not (frac[0] in _DIGITS and frac[1] in _DIGITS and frac[2] in _DIGITS):
        return None
    head = value[:19]
    secs = _SECONDS.get(head)
    if secs is None:  # only heads of exactly that form are ever cached
        if _GATEWAY_TS.fullmatch(value) is None:
            return None
        try:
            secs = int(datetime.fromisoformat(head + "+00:00").timestamp())
        except ValueError:  # e.g. month 13: the general path says why
            return None
        if len(_SECONDS) >= _SECONDS_MAX:
            _SECONDS.clear()
        _SECONDS[head] = secs
    ms = secs * 1000 + int(frac)
    return ms if MIN_TS_MS <= ms < MAX_TS_MS else None


def format_ts(ts_ms: int) -> str:
    """RFC 3339 UTC with milliseconds, the alert contract's time format.

    >>> format_ts(1767225600123)
    '2026-01-01T00:00:00.123Z'
    """
    secs, ms = divmod(ts_ms, 1000)
    return f"{_utc(secs)}.{ms:03d}Z"


def _utc(secs: int) -> str:
    from datetime import UTC

    return datetime.fromtimestamp(secs, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _ident(obj: Mapping[str, Any], name: str, where: str, *, required: bool) -> str | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise _Reject(f"{where}.{name}: missing")
        return None
    if not isinstance(value, str) or not value.strip():
        raise _Reject(f"{where}.{name}: expected a non-empty string, got {_show(value)}")
    if len(value) > MAX_ID_LEN:
        raise _Reject(f"{where}.{name}: longer than {MAX_ID_LEN} characters")
    return value


def _number(
    obj: Mapping[str, Any],
    name: str,
    where: str,
    *,
    required: bool,
    lo: float | None = None,
    hi: float | None = None,
) -> float | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise _Reject(f"{where}.{name}: missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Reject(f"{where}.{name}: expected a number, got {_show(value)}")
    x = float(value)
    if not math.isfinite(x):
        raise _Reject(f"{where}.{name}: expected a finite number, got {value!r}")
    if lo is not None and hi is not None and not lo <= x <= hi:
        raise _Reject(f"{where}.{name}: {_show(value)} is outside [{_num(lo)}, {_num(hi)}]")
    return x


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _common(obj: Mapping[str, Any], where: str) -> tuple[str | None, str | None]:
    src = obj.get("src")
    eid = obj.get("id")
    if src is not None and not isinstance(src, str):
        raise _Reject(f"{where}.src: expected a string, got {_show(src)}")
    if eid is not None and (isinstance(eid, bool) or not isinstance(eid, str | int)):
        raise _Reject(f"{where}.id: expected a string, got {_show(eid)}")
    return src, (str(eid) if eid is not None else None)


def _position(
    obj: Mapping[str, Any], where: str, *, required: bool
) -> tuple[float | None, float | None]:
    lon = _number(obj, "lon", where, required=required, lo=-180.0, hi=180.0)
    lat = _number(obj, "lat", where, required=required, lo=-90.0, hi=90.0)
    if (lon is None) != (lat is None):
        missing = "lat" if lat is None else "lon"
        raise _Reject(f"{where}.{missing}: missing (lon and lat come together)")
    return lon, lat


def _gps(obj: Mapping[str, Any], ts: int) -> GpsEvent:
    entity = _ident(obj, "entity", "gps", required=True)
    lon, lat = _position(obj, "gps", required=True)
    cls = _ident(obj, "class", "gps", required=False)
    speed = _number(obj, "speed", "gps", required=False, lo=0.0, hi=400.0)
    heading = _number(obj, "heading", "gps", required=False, lo=0.0, hi=360.0)
    cargo = obj.get("cargo")
    if cargo is not None and not isinstance(cargo, str):
        raise _Reject(f"gps.cargo: expected a string, got {_show(cargo)}")
    src, eid = _common(obj, "gps")
    assert entity is not None and lon is not None and lat is not None
    return GpsEvent(ts, entity, lon, lat, cls, speed, heading, cargo, src, eid)


def _sensor(obj: Mapping[str, Any], ts: int) -> SensorEvent:
    sensor = _ident(obj, "sensor", "sensor", required=True)
    kind = _ident(obj, "kind", "sensor", required=True)
    value = _number(obj, "value", "sensor", required=True)
    lon, lat = _position(obj, "sensor", required=False)
    unit = obj.get("unit")
    if unit is not None and not isinstance(unit, str):
        raise _Reject(f"sensor.unit: expected a string, got {_show(unit)}")
    src, eid = _common(obj, "sensor")
    assert sensor is not None and kind is not None and value is not None
    return SensorEvent(ts, sensor, kind, value, lon, lat, unit, src, eid)


def _video(obj: Mapping[str, Any], ts: int) -> VideoEvent:
    camera = _ident(obj, "camera", "video", required=True)
    label = _ident(obj, "label", "video", required=True)
    confidence = _number(obj, "confidence", "video", required=True, lo=0.0, hi=1.0)
    lon, lat = _position(obj, "video", required=False)
    snapshot = obj.get("snapshot")
    if snapshot is not None and not isinstance(snapshot, str):
        raise _Reject(f"video.snapshot: expected a string, got {_show(snapshot)}")
    src, eid = _common(obj, "video")
    assert camera is not None and label is not None and confidence is not None
    return VideoEvent(ts, camera, label, confidence, lon, lat, snapshot, src, eid)


# Fast paths for well-formed events: the same checks as the builders above, inline,
# answering None at the first doubt so that the builder gives the reason.
_NUM = (float, int)  # type(x) in _NUM: a JSON number, never a bool


def _name_ok(value: Any) -> bool:
    return type(value) is str and 0 < len(value) <= MAX_ID_LEN and not value.isspace()


def _opt_in(value: Any, lo: float, hi: float) -> bool:
    return value is None or (type(value) in _NUM and lo <= value <= hi)


def _tail_ok(x: Any, src: Any, eid: Any) -> bool:
    """``x`` (cargo, unit) and ``src`` absent or text; ``id`` text or int."""
    return (
        (x is None or type(x) is str)
        and (src is None or type(src) is str)
        and (eid is None or type(eid) is str or type(eid) is int)
    )


def _fast_gps(obj: Mapping[str, Any], ts: int) -> GpsEvent | None:
    get: Callable[[str], Any] = obj.get  # Any: each value is checked below
    entity, lon, lat = get("entity"), get("lon"), get("lat")
    cls, speed, heading = get("class"), get("speed"), get("heading")
    cargo, src, eid = get("cargo"), get("src"), get("id")
    if not (
        _name_ok(entity)
        and type(lon) in _NUM
        and -180.0 <= lon <= 180.0
        and type(lat) in _NUM
        and -90.0 <= lat <= 90.0
        and (cls is None or _name_ok(cls))
        and _opt_in(speed, 0.0, 400.0)
        and _opt_in(heading, 0.0, 360.0)
        and _tail_ok(cargo, src, eid)
    ):
        return None
    return GpsEvent(
        ts,
        entity,
        float(lon),
        float(lat),
        cls,
        None if speed is None else float(speed),
        None if heading is None else float(heading),
        cargo,
        src,
        None if eid is None else str(eid),
    )


def _fast_sensor(obj: Mapping[str, Any], ts: int) -> SensorEvent | None:
    get: Callable[[str], Any] = obj.get  # Any: each value is checked below
    sensor, kind, value = get("sensor"), get("kind"), get("value")
    lon, lat = get("lon"), get("lat")
    unit, src, eid = get("unit"), get("src"), get("id")
    if not (
        _name_ok(sensor)
        and _name_ok(kind)
        and type(value) in _NUM
        and math.isfinite(value)
        and (lon is None) == (lat is None)
        and _opt_in(lon, -180.0, 180.0)
        and _opt_in(lat, -90.0, 90.0)
        and _tail_ok(unit, src, eid)
    ):
        return None
    return SensorEvent(
        ts,
        sensor,
        kind,
        float(value),
        None if lon is None else float(lon),
        None if lat is None else float(lat),
        unit,
        src,
        None if eid is None else str(eid),
    )


_FAST: dict[str, Callable[[Mapping[str, Any], int], Event | None]] = {
    "gps": _fast_gps,
    "sensor": _fast_sensor,
}

_BUILDERS: dict[str, Callable[[Mapping[str, Any], int], Event]] = {
    "gps": _gps,
    "sensor": _sensor,
    "video": _video,
}


def event_from_obj(obj: Any, default_type: str | None = None) -> Event:
    """Validate a decoded JSON value into an event; raises ``ValueError`` with the reason."""
    try:
        return _from_obj(obj, default_type)
    except _Reject as rej:
        raise ValueError(rej.reason) from None


def _from_obj(obj: Any, default_type: str | None) -> Event:
    if not isinstance(obj, dict):
        raise _Reject(f"event: expected a JSON object, got {type(obj).__name__}")
    etype = obj.get("type")
    if etype is None:
        etype = default_type
    if etype is None:
        raise _Reject('type: missing (expected "gps", "sensor" or "video")')
    if not isinstance(etype, str) or etype not in _BUILDERS:
        raise _Reject(f'type: {_show(etype)} is not one of "gps", "sensor", "video"')
    if "ts" not in obj:
        raise _Reject(f"{etype}.ts: missing")
    ts = parse_ts(obj["ts"], f"{etype}.ts")
    fast = _FAST.get(etype)
    ev = fast(obj, ts) if fast is not None else None
    return ev if ev is not None else _BUILDERS[etype](obj, ts)


def parse_event(
    raw: bytes, default_type: str | None = None, source: str = ""
) -> Event | DeadLetter:
    """Parse one JSON document; never raises."""
    if raw.startswith(_RECORDING_HEADER):
        return DeadLetter(raw, MID_HEADER_REASON, source, "recording")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return DeadLetter(raw, f"json: {exc}", source, "json")
    try:
        return _from_obj(obj, default_type)
    except _Reject as rej:
        return DeadLetter(raw, rej.reason, source)


def parse_batch(
    lines: Iterable[bytes], default_type: str | None = None, source: str = ""
) -> tuple[list[Event], list[DeadLetter]]:
    """Parse many lines, splitting good events from dead letters, order kept."""
    good: list[Event] = []
    bad: list[DeadLetter] = []
    for raw in lines:
        out = parse_event(raw, default_type, source)
        (bad if isinstance(out, DeadLetter) else good).append(out)  # type: ignore[arg-type]
    return good, bad


def event_to_json(ev: Event) -> dict[str, Any]:
    """The contract form of an event (what a gateway sends), for recordings."""
    out: dict[str, Any] = {"type": ev.type, "ts": format_ts(ev.ts_ms)}
    if isinstance(ev, GpsEvent):
        out.update(entity=ev.entity, lon=ev.lon, lat=ev.lat)
        for name, val in (
            ("class", ev.cls),
            ("speed", ev.speed_kmh),
            ("heading", ev.heading),
            ("cargo", ev.cargo),
        ):
            if val is not None:
                out[name] = val
    elif isinstance(ev, SensorEvent):
        out.update(sensor=ev.sensor, kind=ev.kind, value=ev.value)
        for name, val in (("lon", ev.lon), ("lat", ev.lat), ("unit", ev.unit)):
            if val is not None:
                out[name] = val
    else:
        out.update(camera=ev.camera, label=ev.label, confidence=ev.confidence)
        for name, val in (("lon", ev.lon), ("lat", ev.lat), ("snapshot", ev.snapshot)):
            if val is not None:
                out[name] = val
    if ev.src is not None:
        out["src"] = ev.src
    if ev.id is not None:
        out["id"] = ev.id
    return out
