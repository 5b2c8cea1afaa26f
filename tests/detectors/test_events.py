"""The input-event parser: every rejection has an exact reason, and it never raises."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from citywatch.detectors.events import (
    MAX_TS_MS,
    MIN_TS_MS,
    DeadLetter,
    GpsEvent,
    SensorEvent,
    VideoEvent,
    event_from_obj,
    event_to_json,
    format_ts,
    parse_batch,
    parse_event,
    parse_ts,
    reason_category,
)

TS = 1_767_225_600_000  # 2026-01-01T00:00:00Z

GPS: dict[str, Any] = {"type": "gps", "ts": TS, "entity": "hz-001", "lon": 121.0, "lat": 32.0}
SENSOR: dict[str, Any] = {
    "type": "sensor",
    "ts": TS,
    "sensor": "wl-01",
    "kind": "water_level",
    "value": 4.2,
}
VIDEO: dict[str, Any] = {
    "type": "video",
    "ts": TS,
    "camera": "cam-01",
    "label": "person",
    "confidence": 0.9,
}
BASES = {"gps": GPS, "sensor": SENSOR, "video": VIDEO}

_DROP = object()


def raw_of(base: dict[str, Any], **changes: Any) -> bytes:
    """A base event with fields changed (``_DROP`` removes one), as JSON bytes."""
    obj = dict(base)
    for name, value in changes.items():
        name = {"class_": "class", "id_": "id"}.get(name, name)
        if value is _DROP:
            obj.pop(name, None)
        else:
            obj[name] = value
    return orjson.dumps(obj)


def gps(**changes: Any) -> bytes:
    return raw_of(GPS, **changes)


def sensor(**changes: Any) -> bytes:
    return raw_of(SENSOR, **changes)


def video(**changes: Any) -> bytes:
    return raw_of(VIDEO, **changes)


ONE_OF = '"gps", "sensor", "video"'
RFC_HINT = "is not an RFC 3339 timestamp (like 2026-05-01T08:00:00+08:00) or epoch milliseconds"

# (id, raw bytes, exact reason)
MALFORMED: list[tuple[str, bytes, str]] = [
    # -- the document itself
    ("not-object-array", b"[1, 2]", "event: expected a JSON object, got list"),
    ("not-object-string", b'"gps"', "event: expected a JSON object, got str"),
    ("not-object-null", b"null", "event: expected a JSON object, got NoneType"),
    ("not-object-number", b"42", "event: expected a JSON object, got int"),
    # -- type
    ("type-missing", gps(type=_DROP), 'type: missing (expected "gps", "sensor" or "video")'),
    ("type-null", gps(type=None), 'type: missing (expected "gps", "sensor" or "video")'),
    ("type-unknown", gps(type="radar"), f'type: "radar" is not one of {ONE_OF}'),
    ("type-number", gps(type=3), f"type: 3 is not one of {ONE_OF}"),
    ("type-array", gps(type=["gps"]), f'type: ["gps"] is not one of {ONE_OF}'),
    ("type-object", gps(type={"a": 1}), f'type: {{"a":1}} is not one of {ONE_OF}'),
    ("type-wrong-case", gps(type="GPS"), f'type: "GPS" is not one of {ONE_OF}'),
    # -- ts
    ("ts-missing", gps(ts=_DROP), "gps.ts: missing"),
    (
        "ts-null",
        gps(ts=None),
        "gps.ts: expected RFC 3339 text or epoch milliseconds, got null",
    ),
    (
        "ts-boolean",
        gps(ts=True),
        "gps.ts: expected RFC 3339 text or epoch milliseconds, got true",
    ),
    (
        "ts-object",
        sensor(ts={"s": 1}),
        'sensor.ts: expected RFC 3339 text or epoch milliseconds, got {"s":1}',
    ),
    (
        "ts-epoch-seconds-hint",
        gps(ts=1_767_225_600),
        "gps.ts: 1767225600 looks like epoch seconds; expected epoch milliseconds "
        "(multiply by 1000)",
    ),
    (
        "ts-epoch-microseconds",
        gps(ts=1_767_225_600_000_000),
        "gps.ts: 1767225600000000 is outside years 2000-2100 as epoch milliseconds",
    ),
    (
        "ts-negative",
        video(ts=-1),
        "video.ts: -1 is outside years 2000-2100 as epoch milliseconds",
    ),
    (
        "ts-fractional-ms",
        gps(ts=1_767_225_600_000.5),
        "gps.ts: epoch milliseconds must be a whole number, got 1767225600000.5",
    ),
    (
        "ts-naive-rfc3339-no-offset",
        gps(ts="2026-01-01T08:00:00"),
        'gps.ts: "2026-01-01T08:00:00" has no UTC offset; add Z or +08:00',
    ),
    (
        "ts-date-only",
        gps(ts="2026-01-01"),
        'gps.ts: "2026-01-01" has no UTC offset; add Z or +08:00',
    ),
    ("ts-garbage-text", gps(ts="yesterday"), f'gps.ts: "yesterday" {RFC_HINT}'),
    ("ts-long-garbage-is-shortened", gps(ts="a" * 60), f'gps.ts: "{"a" * 36}... {RFC_HINT}'),
    (
        "ts-before-2000",
        gps(ts="1999-12-31T23:59:59Z"),
        'gps.ts: "1999-12-31T23:59:59Z" is outside years 2000-2100',
    ),
    # -- gps fields
    ("gps-entity-missing", gps(entity=_DROP), "gps.entity: missing"),
    ("gps-entity-empty", gps(entity=""), 'gps.entity: expected a non-empty string, got ""'),
    ("gps-entity-blank", gps(entity="  "), 'gps.entity: expected a non-empty string, got "  "'),
    ("gps-entity-number", gps(entity=42), "gps.entity: expected a non-empty string, got 42"),
    ("gps-entity-too-long", gps(entity="x" * 129), "gps.entity: longer than 128 characters"),
    ("gps-lat-95.2", gps(lat=95.2), "gps.lat: 95.2 is outside [-90, 90]"),
    ("gps-lat-minus-90.5", gps(lat=-90.5), "gps.lat: -90.5 is outside [-90, 90]"),
    ("gps-lon-minus-181", gps(lon=-181), "gps.lon: -181 is outside [-180, 180]"),
    ("gps-lon-missing", gps(lon=_DROP), "gps.lon: missing"),
    ("gps-lat-missing", gps(lat=_DROP), "gps.lat: missing"),
    ("gps-lat-text", gps(lat="32.0"), 'gps.lat: expected a number, got "32.0"'),
    ("gps-lat-boolean", gps(lat=True), "gps.lat: expected a number, got true"),
    ("gps-lon-array", gps(lon=[121.0]), "gps.lon: expected a number, got [121.0]"),
    ("gps-speed-500", gps(speed=500), "gps.speed: 500 is outside [0, 400]"),
    ("gps-speed-negative", gps(speed=-1.5), "gps.speed: -1.5 is outside [0, 400]"),
    ("gps-speed-boolean", gps(speed=False), "gps.speed: expected a number, got false"),
    ("gps-heading-361", gps(heading=361), "gps.heading: 361 is outside [0, 360]"),
    ("gps-cargo-number", gps(cargo=7), "gps.cargo: expected a string, got 7"),
    ("gps-cargo-object", gps(cargo={"un": 1203}), 'gps.cargo: expected a string, got {"un":1203}'),
    ("gps-class-empty", gps(class_=""), 'gps.class: expected a non-empty string, got ""'),
    ("gps-src-number", gps(src=5), "gps.src: expected a string, got 5"),
    ("gps-id-array", gps(id_=[1]), "gps.id: expected a string, got [1]"),
    # -- sensor fields
    ("sensor-id-missing", sensor(sensor=_DROP), "sensor.sensor: missing"),
    ("sensor-id-too-long", sensor(sensor="s" * 200), "sensor.sensor: longer than 128 characters"),
    ("sensor-kind-missing", sensor(kind=_DROP), "sensor.kind: missing"),
    ("sensor-value-missing", sensor(value=_DROP), "sensor.value: missing"),
    ("sensor-value-text", sensor(value="4.5"), 'sensor.value: expected a number, got "4.5"'),
    ("sensor-value-boolean", sensor(value=False), "sensor.value: expected a number, got false"),
    (
        "sensor-lon-without-lat",
        sensor(lon=120.9),
        "sensor.lat: missing (lon and lat come together)",
    ),
    (
        "sensor-lat-without-lon",
        sensor(lat=32.0),
        "sensor.lon: missing (lon and lat come together)",
    ),
    ("sensor-unit-number", sensor(unit=3), "sensor.unit: expected a string, got 3"),
    # -- video fields
    ("video-confidence-1.4", video(confidence=1.4), "video.confidence: 1.4 is outside [0, 1]"),
    (
        "video-confidence-negative",
        video(confidence=-0.1),
        "video.confidence: -0.1 is outside [0, 1]",
    ),
    ("video-confidence-missing", video(confidence=_DROP), "video.confidence: missing"),
    ("video-camera-missing", video(camera=_DROP), "video.camera: missing"),
    ("video-label-null", video(label=None), "video.label: missing"),
    ("video-label-too-long", video(label="l" * 129), "video.label: longer than 128 characters"),
    ("video-lat-91", video(lon=121.0, lat=91), "video.lat: 91 is outside [-90, 90]"),
    ("video-snapshot-number", video(snapshot=1), "video.snapshot: expected a string, got 1"),
]


@pytest.mark.parametrize(
    ("raw", "reason"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_malformed_event_is_a_dead_letter_with_exact_reason(raw: bytes, reason: str) -> None:
    out = parse_event(raw, source="test")
    assert isinstance(out, DeadLetter)
    assert out.reason == reason
    assert out.raw == raw
    assert out.source == "test"


def test_malformed_table_is_large_and_ids_are_unique() -> None:
    ids = [m[0] for m in MALFORMED]
    assert len(ids) >= 30
    assert len(set(ids)) == len(ids)


BAD_JSON = [
    ("truncated", b'{"type": "gps", "ts": '),
    ("empty", b""),
    ("nan-literal", b'{"type":"gps","ts":1767225600000,"entity":"x","lon":NaN,"lat":1}'),
    (
        "infinity-literal",
        b'{"type":"sensor","ts":1767225600000,"sensor":"s","kind":"k","value":Infinity}',
    ),
    ("number-overflows-to-infinity", b'{"type":"gps","ts":1e400}'),
    ("trailing-comma", b'{"type":"gps",}'),
    ("single-quotes", b"{'type':'gps'}"),
    ("not-utf8", b'{"type":"gps","entity":"\xff\xfe"}'),
    ("two-documents", b"{} {}"),
]


@pytest.mark.parametrize("raw", [b[1] for b in BAD_JSON], ids=[b[0] for b in BAD_JSON])
def test_bad_json_reason_starts_with_json(raw: bytes) -> None:
    out = parse_event(raw)
    assert isinstance(out, DeadLetter)
    assert out.reason.startswith("json: ")
    assert out.category == "json"
    assert out.to_json()["category"] == "json"


# -- good events -------------------------------------------------------------

GOOD_TS = [
    ("rfc3339-Z", "2026-01-01T00:00:00Z", TS),
    ("rfc3339-plus-0800", "2026-01-01T08:00:00+08:00", TS),
    ("rfc3339-minus-0530", "2025-12-31T18:30:00-05:30", TS),
    ("rfc3339-fraction-ms", "2026-01-01T00:00:00.123Z", TS + 123),
    ("rfc3339-fraction-one-digit", "2026-01-01T08:00:00.5+08:00", TS + 500),
    ("rfc3339-fraction-us-rounds", "2026-01-01T00:00:00.123999Z", TS + 124),
    ("epoch-ms-int", TS, TS),
    ("epoch-ms-integral-float", float(TS), TS),
    ("epoch-ms-first-allowed", MIN_TS_MS, MIN_TS_MS),
]


@pytest.mark.parametrize(("ts", "ts_ms"), [g[1:] for g in GOOD_TS], ids=[g[0] for g in GOOD_TS])
def test_good_timestamps(ts: Any, ts_ms: int) -> None:
    out = parse_event(gps(ts=ts))
    assert isinstance(out, GpsEvent), out
    assert out.ts_ms == ts_ms


def test_good_gps_event_carries_every_field() -> None:
    out = parse_event(
        gps(**{"class": "hazmat_truck"}, speed=42.5, heading=90, cargo="UN1203", src="gw-1", id=77)
    )
    assert out == GpsEvent(
        TS, "hz-001", 121.0, 32.0, "hazmat_truck", 42.5, 90.0, "UN1203", "gw-1", "77"
    )
    assert out.key == "hz-001"
    assert out.type == "gps"


def test_good_sensor_and_video_events() -> None:
    s = parse_event(sensor(unit="m", lon=120.9, lat=32.0))
    assert s == SensorEvent(TS, "wl-01", "water_level", 4.2, 120.9, 32.0, "m")
    assert s.key == "wl-01"
    v = parse_event(video(snapshot="s3://x.jpg"))
    assert v == VideoEvent(TS, "cam-01", "person", 0.9, snapshot="s3://x.jpg")
    assert v.key == "cam-01"


@pytest.mark.parametrize("edge", [0, 1], ids=["confidence-0", "confidence-1"])
def test_confidence_bounds_are_inclusive(edge: int) -> None:
    assert isinstance(parse_event(video(confidence=edge)), VideoEvent)


@pytest.mark.parametrize("default_type", ["gps", "sensor", "video"])
def test_type_defaults_to_the_topic_type(default_type: str) -> None:
    raw = raw_of(BASES[default_type], type=_DROP)
    out = parse_event(raw, default_type=default_type)
    assert not isinstance(out, DeadLetter), out
    assert out.type == default_type


def test_explicit_type_wins_over_the_topic_type() -> None:
    out = parse_event(gps(), default_type="video")
    assert isinstance(out, GpsEvent)


def test_event_from_obj_raises_value_error_with_the_reason() -> None:
    with pytest.raises(ValueError, match=r"^gps\.lat: 95\.2 is outside \[-90, 90\]$"):
        event_from_obj({**GPS, "lat": 95.2})
    assert isinstance(event_from_obj(dict(GPS)), GpsEvent)


def test_parse_batch_keeps_order_and_splits_good_from_bad() -> None:
    lines = [gps(entity="a"), b"{oops", sensor(), gps(lat=95.2), video(), b"[]", gps(entity="b")]
    good, bad = parse_batch(lines, source="file.jsonl")
    assert [type(e).__name__ for e in good] == ["GpsEvent", "SensorEvent", "VideoEvent", "GpsEvent"]
    assert [good[0].key, good[-1].key] == ["a", "b"]
    assert [d.raw for d in bad] == [b"{oops", gps(lat=95.2), b"[]"]
    assert all(d.source == "file.jsonl" for d in bad)


def test_parse_batch_uses_the_default_type() -> None:
    good, bad = parse_batch([raw_of(SENSOR, type=_DROP)], default_type="sensor")
    assert len(good) == 1 and not bad


# -- dead letters ------------------------------------------------------------


def test_dead_letter_to_json_carries_raw_text_and_category() -> None:
    raw = gps(lat=95.2)
    out = parse_event(raw, source="citywatch.gps")
    assert isinstance(out, DeadLetter)
    assert out.to_json() == {
        "reason": "gps.lat: 95.2 is outside [-90, 90]",
        "category": "gps.lat",
        "source": "citywatch.gps",
        "raw": raw.decode(),
    }
    orjson.dumps(out.to_json())  # serialisable as is


def test_dead_letter_to_json_replaces_undecodable_bytes() -> None:
    out = parse_event(b"\xff{not json")
    assert isinstance(out, DeadLetter)
    assert out.to_json()["raw"] == "\ufffd{not json"


@pytest.mark.parametrize(
    ("reason", "category"),
    [
        ("gps.lat: 95.2 is outside [-90, 90]", "gps.lat"),
        ('type: missing (expected "gps", "sensor" or "video")', "type"),
        ("json: unexpected character", "json"),
        (": nothing before the colon", "other"),
    ],
    ids=["field-path", "type", "json", "empty-head"],
)
def test_reason_category(reason: str, category: str) -> None:
    assert reason_category(reason) == category


# -- round trips -------------------------------------------------------------


def test_format_ts_is_utc_with_milliseconds() -> None:
    assert format_ts(TS) == "2026-01-01T00:00:00.000Z"
    assert format_ts(TS + 7) == "2026-01-01T00:00:00.007Z"


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=MIN_TS_MS, max_value=MAX_TS_MS - 1))
def test_format_ts_parse_ts_round_trip(ts_ms: int) -> None:
    text = format_ts(ts_ms)
    assert parse_ts(text) == ts_ms
    assert datetime.fromisoformat(text).tzinfo == UTC


finite = {"allow_nan": False, "allow_infinity": False}
ident = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=20
).filter(str.strip)
opt_ident = st.none() | ident
ts_ms = st.integers(min_value=MIN_TS_MS, max_value=MAX_TS_MS - 1)
lon = st.floats(-180, 180, **finite)
lat = st.floats(-90, 90, **finite)

gps_events = st.builds(
    GpsEvent,
    ts_ms=ts_ms,
    entity=ident,
    lon=lon,
    lat=lat,
    cls=opt_ident,
    speed_kmh=st.none() | st.floats(0, 400, **finite),
    heading=st.none() | st.floats(0, 360, **finite),
    cargo=opt_ident,
    src=opt_ident,
    id=opt_ident,
)
sensor_events = st.builds(
    SensorEvent,
    ts_ms=ts_ms,
    sensor=ident,
    kind=ident,
    value=st.floats(**finite),
    lon=lon,
    lat=lat,
    unit=opt_ident,
    src=opt_ident,
    id=opt_ident,
)
video_events = st.builds(
    VideoEvent,
    ts_ms=ts_ms,
    camera=ident,
    label=ident,
    confidence=st.floats(0, 1, **finite),
    snapshot=opt_ident,
    src=opt_ident,
    id=opt_ident,
)


@settings(max_examples=200, deadline=None)
@given(gps_events | sensor_events | video_events)
def test_event_to_json_round_trips_through_parse_event(ev: Any) -> None:
    doc = event_to_json(ev)
    assert doc["type"] == ev.type
    back = parse_event(orjson.dumps(doc))
    assert back == ev


def test_event_to_json_leaves_out_absent_optionals() -> None:
    assert event_to_json(GpsEvent(TS, "e", 1.0, 2.0)) == {
        "type": "gps",
        "ts": "2026-01-01T00:00:00.000Z",
        "entity": "e",
        "lon": 1.0,
        "lat": 2.0,
    }


# -- never raises ------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and ±inf become NaN/Infinity literals, which orjson rejects
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
FIELDS = sorted(
    {*GPS, *SENSOR, *VIDEO, "class", "speed", "heading", "cargo", "unit", "snapshot", "src", "id"}
)


def assert_event_or_dead_letter(out: object) -> None:
    if isinstance(out, DeadLetter):
        assert out.reason.strip()
        assert reason_category(out.reason)
        orjson.dumps(out.to_json())
    else:
        assert isinstance(out, GpsEvent | SensorEvent | VideoEvent)
        assert MIN_TS_MS <= out.ts_ms < MAX_TS_MS


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_parser_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    assert_event_or_dead_letter(parse_event(raw))


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_parser_never_raises_on_arbitrary_json(value: Any) -> None:
    assert_event_or_dead_letter(parse_event(json.dumps(value).encode()))


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(sorted(BASES)),
    st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=3),
    st.sets(st.sampled_from(FIELDS), max_size=2),
    st.sampled_from([None, "gps", "sensor", "video"]),
)
def test_parser_never_raises_on_events_with_fields_replaced(
    base: str, replaced: dict[str, Any], dropped: set[str], default_type: str | None
) -> None:
    obj = {k: v for k, v in {**BASES[base], **replaced}.items() if k not in dropped}
    assert_event_or_dead_letter(parse_event(json.dumps(obj).encode(), default_type=default_type))


def test_events_pickle_as_field_tuples_and_older_pickles_still_load() -> None:
    import pickle

    from citywatch.detectors.events import GpsEvent, SensorEvent, VideoEvent

    events = [
        GpsEvent(ts_ms=1, entity="tk-1", lon=120.9, lat=32.0, zones=("z1",)),
        SensorEvent(ts_ms=2, sensor="wl-1", kind="water_level", value=3.5, town="t"),
        VideoEvent(ts_ms=3, camera="cam-1", label="person", confidence=0.9),
    ]
    for ev in events:
        assert isinstance(ev.__getstate__(), tuple)
        assert pickle.loads(pickle.dumps(ev, protocol=5)) == ev
    # What snapshots before this layout hold: pickle's (None, {slot: value}).
    for ev in events:
        slots = {name: getattr(ev, name) for name in type(ev).__dataclass_fields__}
        old = type(ev).__new__(type(ev))
        old.__setstate__((None, slots))
        assert old == ev
