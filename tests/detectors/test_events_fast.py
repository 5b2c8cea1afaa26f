"""The parser's fast paths give exactly what the general builders give.

``parse_ts`` reads the gateways' ``YYYY-MM-DDTHH:MM:SS.fffZ`` through a cache of
whole seconds, and well-formed GPS fixes and sensor readings are validated inline;
anything else (and every rejection) goes the general way. Each test runs the same
input both ways, the general way with the fast paths switched off.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from citywatch.detectors import events
from citywatch.detectors.events import DeadLetter, parse_event, parse_ts


def general(raw: bytes) -> object:
    """``parse_event`` with both fast paths off: the row-wise reference."""
    fast, millis = events._FAST, events._utc_millis
    events._FAST = {}
    events._utc_millis = lambda _value: None  # type: ignore[assignment]
    try:
        return parse_event(raw)
    finally:
        events._FAST, events._utc_millis = fast, millis


def ts_general(value: Any) -> object:
    millis = events._utc_millis
    events._utc_millis = lambda _value: None  # type: ignore[assignment]
    try:
        return parse_ts(value)
    except events._Reject as rej:
        return rej.reason
    finally:
        events._utc_millis = millis


def ts_fast(value: Any) -> object:
    try:
        return parse_ts(value)
    except events._Reject as rej:
        return rej.reason


stamps = st.builds(
    "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}.{:03d}Z".format,
    st.integers(1990, 2110),
    st.integers(0, 13),
    st.integers(0, 32),
    st.integers(0, 25),
    st.integers(0, 61),
    st.integers(0, 61),
    st.integers(0, 999),
)


@settings(max_examples=500, deadline=None)
@given(stamps)
@example("2026-06-15T130002.1.098Z")  # a head that alone would parse, in another form
@example("2026-W24-1T13:00:02.098Z")  # ISO week date: the general path decides
@example("2026-06-15T13:00:02.0\u0669\u0668Z")  # non-ASCII digits
@example("1999-12-31T23:59:59.999Z")  # just before the allowed range
@example("2026-02-30T00:00:00.000Z")  # no such day
def test_fast_timestamps_equal_the_general_parse(value: str) -> None:
    first = ts_fast(value)
    assert first == ts_general(value)
    assert ts_fast(value) == first  # the second time from the cache


values = st.none() | st.booleans() | st.integers(-500, 500) | st.floats(-500, 500)
values |= st.sampled_from([-0.5, 0, 90, 90.5, -180, 180.5, 360, 360.5, 400, 400.5, 1e308])
values |= st.text(max_size=4) | st.sampled_from(["", " ", "\t", "x" * 129, "x" * 128])
FIELDS = ["entity", "lon", "lat", "class", "speed", "heading", "cargo", "src", "id"]
FIELDS += ["sensor", "kind", "value", "unit"]
GPS = {"type": "gps", "ts": "2026-06-15T13:00:02.098Z", "entity": "m-1", "lon": 121.3}
GPS |= {"lat": 32.2, "speed": 12.5, "class": "muck_truck"}
SENSOR = {"type": "sensor", "ts": "2026-06-15T13:00:00.016Z", "sensor": "pm-1", "kind": "pm25"}
SENSOR |= {"value": 28.7, "lon": 121.06, "lat": 32.07}


@settings(max_examples=1500, deadline=None)
@given(
    st.sampled_from([GPS, SENSOR]),
    st.dictionaries(st.sampled_from(FIELDS), values, max_size=3),
    st.sets(st.sampled_from(FIELDS), max_size=2),
)
def test_fast_events_equal_the_general_builders(
    base: dict[str, Any], replaced: dict[str, Any], dropped: set[str]
) -> None:
    obj = {k: v for k, v in {**base, **replaced}.items() if k not in dropped}
    raw = json.dumps(obj).encode()
    fast, slow = parse_event(raw), general(raw)
    assert fast == slow
    assert type(fast) is type(slow)
    if not isinstance(fast, DeadLetter):  # the same value types (1 and 1.0 compare equal)
        assert [type(getattr(fast, f)) for f in fast.__slots__] == [
            type(getattr(slow, f)) for f in slow.__slots__
        ]


def test_well_formed_lines_take_the_fast_paths() -> None:
    """Else the equality above would hold trivially."""
    obj = events.orjson.loads(json.dumps(GPS))
    assert events._fast_gps(obj, 1) is not None
    assert events._fast_sensor(events.orjson.loads(json.dumps(SENSOR)), 1) is not None
    assert events._utc_millis("2026-06-15T13:00:02.098Z") == 1781528402098


DROP = object()
EDGES: list[Any] = [None, True, 0, -0.5, 90, 90.5, -180, 180.5, 360, 360.5, 400, 400.5]
EDGES += [1e308, 7, "", " ", "\u3000", "ok", "x" * 128, "x" * 129, [], {}]


@pytest.mark.parametrize("base", [GPS, SENSOR], ids=["gps", "sensor"])
@pytest.mark.parametrize("field", FIELDS)
def test_each_field_at_its_edges_parses_as_the_general_builders(
    base: dict[str, Any], field: str
) -> None:
    for value in [*EDGES, DROP]:
        obj = {k: v for k, v in {**base, field: value}.items() if v is not DROP}
        raw = json.dumps(obj).encode()
        assert parse_event(raw) == general(raw), (field, value)
