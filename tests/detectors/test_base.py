"""Shared detector pieces: KeyedState eviction, LocalClock, in_hours, hours_window."""

from __future__ import annotations

import pickle
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from citywatch.detectors import params
from citywatch.detectors.base import KeyedState, LocalClock, ZoneMeta, in_hours

SHANGHAI = ZoneInfo("Asia/Shanghai")


def shanghai_ms(hour: int, minute: int = 0) -> int:
    return int(datetime(2026, 5, 1, hour, minute, tzinfo=SHANGHAI).timestamp() * 1000)


# -- KeyedState ----------------------------------------------------------------


def test_keyed_state_evicts_least_recently_used_first() -> None:
    # t    0    5    10   12          16
    #      a    b    c    a(get)      evict, idle 5 -> limit 11
    # kept                a           b(5) and c(10) are idle, a(12) is not
    ks: KeyedState[str] = KeyedState(idle_ms=5)
    ks.put("a", "A", now_ms=0)
    ks.put("b", "B", now_ms=5)
    ks.put("c", "C", now_ms=10)
    assert ks.get("a", now_ms=12) == "A"
    assert ks.evict_idle(now_ms=16) == ["b", "c"]
    assert list(ks.items()) == [("a", "A")]
    assert len(ks) == 1 and "a" in ks and "b" not in ks


def test_keyed_state_keeps_a_key_seen_exactly_at_the_limit() -> None:
    ks: KeyedState[int] = KeyedState(idle_ms=10)
    ks.put("a", 1, now_ms=0)
    assert ks.evict_idle(now_ms=10) == []
    assert ks.evict_idle(now_ms=11) == ["a"]


def test_keyed_state_an_older_touch_does_not_refresh_a_key() -> None:
    # t    10   20   5(get a, out of order)   26: idle 10 -> limit 16
    #      a    b                             a stays last seen at 10 -> evicted
    ks: KeyedState[int] = KeyedState(idle_ms=10)
    ks.put("a", 1, now_ms=10)
    ks.put("b", 2, now_ms=20)
    assert ks.get("a", now_ms=5) == 1
    assert ks.evict_idle(now_ms=26) == ["a"]
    assert [k for k, _ in ks.items()] == ["b"]


def test_keyed_state_put_moves_a_key_to_the_back() -> None:
    ks: KeyedState[int] = KeyedState(idle_ms=1)
    ks.put("a", 1, now_ms=0)
    ks.put("b", 2, now_ms=1)
    ks.put("a", 3, now_ms=2)
    assert [k for k, _ in ks.items()] == ["b", "a"]
    assert ks.evict_idle(now_ms=3) == ["b"]


def test_keyed_state_get_of_missing_key_and_pop() -> None:
    ks: KeyedState[int] = KeyedState(idle_ms=1)
    assert ks.get("nope", now_ms=0) is None
    assert len(ks) == 0
    ks.put("a", 1, now_ms=0)
    assert ks.pop("a") == 1
    assert ks.pop("a") is None
    assert ks.evict_idle(now_ms=100) == []


def test_keyed_state_pickles_with_its_order() -> None:
    ks: KeyedState[int] = KeyedState(idle_ms=5)
    ks.put("x", 1, now_ms=0)
    ks.put("y", 2, now_ms=3)
    back = pickle.loads(pickle.dumps(ks))
    assert list(back.items()) == [("x", 1), ("y", 2)]
    assert back.evict_idle(now_ms=6) == ["x"]


def test_keyed_state_memory_is_bounded_by_eviction() -> None:
    ks: KeyedState[int] = KeyedState(idle_ms=1_000)
    for i in range(10_000):
        ks.put(f"k{i}", i, now_ms=i * 10)
        if i % 100 == 0:
            ks.evict_idle(now_ms=i * 10)
    assert len(ks) <= 200


# -- LocalClock ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ts_ms", "hour"),
    [(0, 8), (shanghai_ms(22), 22), (shanghai_ms(12), 12), (shanghai_ms(0, 30), 0)],
    ids=["epoch-is-08h", "22h", "12h", "00h30"],
)
def test_local_clock_hour_in_shanghai(ts_ms: int, hour: int) -> None:
    assert LocalClock("Asia/Shanghai").hour(ts_ms) == hour


def test_local_clock_weekday_and_other_timezone() -> None:
    # 2026-05-01 is a Friday (weekday 4); at 07:00 Shanghai it is still Thursday in UTC.
    ts = shanghai_ms(7)
    assert LocalClock().weekday(ts) == 4
    assert LocalClock("UTC").weekday(ts) == 3
    assert LocalClock("UTC").hour(ts) == 23


def test_local_clock_pickles() -> None:
    clock = pickle.loads(pickle.dumps(LocalClock("Europe/Berlin")))
    assert clock.hour(0) == 1


# -- in_hours --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hour", "window", "inside"),
    [
        (12, None, True),
        (8, (8, 18), True),
        (17, (8, 18), True),
        (18, (8, 18), False),
        (7, (8, 18), False),
        (20, (20, 6), True),
        (23, (20, 6), True),
        (0, (20, 6), True),
        (5, (20, 6), True),
        (6, (20, 6), False),
        (19, (20, 6), False),
        (12, (20, 6), False),
        (0, (0, 24), True),
        (23, (0, 24), True),
        (6, (6, 6), False),
    ],
    ids=lambda v: repr(v) if not isinstance(v, bool) else ("in" if v else "out"),
)
def test_in_hours(hour: int, window: tuple[int, int] | None, inside: bool) -> None:
    assert in_hours(hour, window) is inside


# -- hours_window (parsing of the "hours" setting) ---------------------------------


@pytest.mark.parametrize(
    ("value", "window"),
    [
        (None, None),
        ([20, 6], (20, 6)),
        ((8, 18), (8, 18)),
        ("20-6", (20, 6)),
        ("20:00-06:00", (20, 6)),
        ([0, 24], (0, 24)),
    ],
    ids=["none-all-day", "list", "tuple", "text", "text-with-minutes", "whole-day"],
)
def test_hours_window_accepts(value: object, window: tuple[int, int] | None) -> None:
    assert params.hours_window("rule", value) == window


@pytest.mark.parametrize(
    "value",
    ["night", "20-", [25, 6], [20], [20, 6, 7], [20.5, 6], [-1, 6], "20-30", 20],
    ids=[
        "word",
        "open-end",
        "hour-25",
        "one-hour",
        "three-hours",
        "float",
        "negative",
        "text-hour-30",
        "bare-int",
    ],
)
def test_hours_window_rejects_naming_the_setting(value: object) -> None:
    with pytest.raises(ValueError, match=r'^rule: "hours" must be \[start, end\] local hours'):
        params.hours_window("rule", value)


# -- params helpers and ZoneMeta ---------------------------------------------------


def test_params_build_names_unknown_settings_and_lists_known_ones() -> None:
    from citywatch.detectors.track import StopParams

    with pytest.raises(ValueError, match=r"^owner: unknown setting\(s\) radius; known: .*radius_m"):
        params.build(StopParams, "owner", {"radius": 5})
    built = params.build(StopParams, "owner", {"classes": ["tanker"]})
    assert built.classes == ("tanker",)


def test_zone_meta_defaults() -> None:
    meta = ZoneMeta("z", "levee")
    assert (meta.id, meta.kind, meta.name, dict(meta.rules)) == ("z", "levee", "", {})
