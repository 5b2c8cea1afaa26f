"""Full ``KeyedState`` snapshots as columns (layout 4: the arrays, tuples and lists
records hold as columns too) restore exactly, and every earlier layout (1: one
pickle of all items; 2: one encoded record per key; 3: columns of records, their
containers as they are) still restores into the same state.

Records are slotted ``TuplePickled`` dataclasses as the detectors keep them,
with nested records (some None), deques, arrays, tuples, lists of tuples,
containers and a field added since a snapshot was written.
"""

from __future__ import annotations

import io
import pickle
from array import array
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from citywatch.detectors.base import KeyedState, plain_state, same_state
from citywatch.detectors.columns import (
    _Arrays,
    _Columns,
    _Dicts,
    _Lists,
    _Some,
    _Tuples,
    pack,
    unpack,
)
from citywatch.detectors.events import SensorEvent
from citywatch.detectors.sensor_health import _Line
from citywatch.detectors.state import Snapshot, TuplePickled, decode, encode, encode_record


@dataclass(slots=True)
class _Rec(TuplePickled):
    FLAT_COLUMNS = True

    n: int
    name: str
    last: SensorEvent | None = None
    samples: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=4))
    arr: array[int] = field(default_factory=lambda: array("q"))
    held: list[int] = field(default_factory=list)
    fix: tuple[int, float, str | None] | None = None
    fixes: list[tuple[int, float, str | None]] = field(default_factory=list)
    ring: array[float] = field(default_factory=lambda: array("d"))
    nested: list[list[int]] = field(default_factory=list)
    by: dict[str, dict[int, tuple[int, float]]] = field(default_factory=dict)


@dataclass(slots=True)
class _Grown(TuplePickled):  # _Rec's first two fields and one added "since"
    n: int
    name: str
    extra: list[int] = field(default_factory=list)


_event = st.builds(
    SensorEvent,
    ts_ms=st.integers(0, 10**13),
    sensor=st.sampled_from(["a", "b", "pm10-x"]),
    kind=st.sampled_from(["pm10", "power"]),
    value=st.floats(allow_nan=False),
    zones=st.tuples(st.sampled_from(["z1", "z2"])),
)
_fix = st.tuples(st.integers(), st.floats(allow_nan=False), st.none() | st.text(max_size=2))
_rec = st.builds(
    _Rec,
    n=st.integers(),
    name=st.text(max_size=3),
    last=st.none() | _event,
    samples=st.lists(st.tuples(st.integers(), st.floats(allow_nan=False)), max_size=6).map(
        lambda xs: deque(xs, maxlen=4)
    ),
    arr=st.lists(st.integers(-(2**63), 2**63 - 1), max_size=3).map(lambda xs: array("q", xs)),
    held=st.lists(st.integers(), max_size=2),
    fix=st.none() | _fix,
    fixes=st.lists(_fix, max_size=3),
    ring=st.lists(st.floats(allow_nan=False), max_size=4).map(lambda xs: array("d", xs)),
    nested=st.lists(st.lists(st.integers(), max_size=2), max_size=2),
    by=st.dictionaries(
        st.text(max_size=2),
        st.dictionaries(st.integers(), st.tuples(st.integers(), st.floats(allow_nan=False))),
        max_size=3,
    ),
)


def _unshared(value: Any) -> bytes:
    buf = io.BytesIO()
    p = pickle.Pickler(buf, protocol=5)
    p.fast = True
    p.dump(value)
    return buf.getvalue()


def _copied(value: Any) -> Any:
    # These test records live outside citywatch.detectors, which the recovery loader
    # refuses: a plain pickle round trip (the detectors' own records go through the
    # loader below).
    return pickle.loads(pickle.dumps(value, protocol=5))  # noqa: S301 - written just above


@settings(max_examples=200, deadline=None)
@given(st.lists(_rec, max_size=12))
def test_records_packed_as_columns_come_back_field_for_field(recs: list[_Rec]) -> None:
    back = unpack(_copied(pack(recs)))
    assert list(back) == recs
    assert [type(r) for r in back] == [type(r) for r in recs]
    assert [r.samples.maxlen for r in back] == [r.samples.maxlen for r in recs]
    assert _unshared(list(back)) == _unshared(recs)


def test_containers_records_hold_are_packed_as_columns_of_their_items() -> None:
    recs = [
        _Rec(1, "a", fix=(1, 0.5, None), fixes=[(1, 0.5, "z")], ring=array("d", [1.5])),
        _Rec(2, "b", fix=None, fixes=[], ring=array("d")),
        _Rec(3, "c", fix=(3, 0.25, "y"), fixes=[(2, 0.5, None), (3, 0.25, "y")]),
    ]
    recs[2].by = {"b": {7: (1, 0.5)}, "a": {}}
    packed = pack(recs)
    assert isinstance(packed, _Columns)
    cols = dict(zip(packed.names, packed.cols, strict=True))
    assert isinstance(cols["arr"], _Arrays) and isinstance(cols["ring"], _Arrays)
    assert cols["ring"].flat == array("d", [1.5]) and list(cols["ring"].lengths) == [1, 0, 0]
    assert isinstance(cols["fix"], _Some) and isinstance(cols["fix"].packed, _Tuples)
    assert isinstance(cols["fixes"], _Lists) and isinstance(cols["fixes"].items, _Tuples)
    assert list(cols["fixes"].lengths) == [1, 0, 2]
    assert isinstance(cols["by"], _Dicts) and isinstance(cols["by"].values, _Dicts)
    back = unpack(_copied(packed))
    assert list(back) == recs
    assert [type(r.fixes) for r in back] == [list] * 3
    assert [r.ring.typecode for r in back] == ["d"] * 3
    assert list(back[2].by) == ["b", "a"]  # each dict in its own order


def test_containers_of_records_that_do_not_ask_for_it_stay_as_they_are() -> None:
    recs = [_Grown(1, "a", [1, 2]), _Grown(2, "b", [])]
    packed = pack(recs)
    assert isinstance(packed, _Columns) and packed.cols[2] == ([1, 2], [])
    assert list(unpack(packed)) == recs
    lists = [[(1, 2)], []]
    assert pack(lists) is lists and isinstance(pack(lists, deep=True), _Lists)


def test_containers_of_several_shapes_stay_as_they_are() -> None:
    tuples = [(1, 2), (1,)]
    assert pack(tuples, deep=True) is tuples
    arrays = [array("q", [1]), array("d", [1.0])]
    assert pack(arrays, deep=True) is arrays
    empty = [(), ()]
    assert pack(empty, deep=True) is empty


def test_what_is_not_records_of_one_class_stays_as_it_is() -> None:
    ev = SensorEvent(ts_ms=1, sensor="s", kind="pm10", value=1.0)
    mixed = [ev, _Grown(1, "a"), None]
    assert pack(mixed) is mixed
    unset = [_Grown.__new__(_Grown)]  # a record with a field never set
    assert pack(unset) is unset
    nested = pack([_Rec(1, "a", last=None), _Rec(2, "b", last=ev)])
    assert isinstance(nested, _Columns) and isinstance(nested.cols[2], _Columns)


def test_a_field_added_since_the_snapshot_takes_its_default() -> None:
    packed = pack([_Rec(1, "a"), _Rec(2, "b")])
    assert isinstance(packed, _Columns)
    old = _Columns(_Grown, packed.names[:2], packed.n, packed.cols[:2])
    assert list(unpack(old)) == [_Grown(1, "a"), _Grown(2, "b")]


def _filled(n: int) -> KeyedState[_Line]:
    ks: KeyedState[_Line] = KeyedState(idle_ms=1_000)
    for i in range(n):
        ev = SensorEvent(ts_ms=i, sensor=f"s{i}", kind="pm10", value=i / 4) if i % 3 else None
        ks.put(f"k{i % 7}" if i % 5 == 0 else f"k{i}", _Line("pm10", ev, timer_due=i), now_ms=i)
    ks.get("k3", now_ms=2)  # an older use: moves nothing
    ks.get("k6", now_ms=40)
    return ks


def test_a_full_snapshot_is_columns_and_restores_the_same_keys_order_and_records() -> None:
    ks = _filled(30)
    snap = ks.state()
    assert snap.version == 4 and isinstance(snap.data["records"], _Columns)
    back: KeyedState[_Line] = KeyedState(idle_ms=1_000)
    back.restore(decode(encode(snap)))
    assert list(back.items()) == list(ks.items())
    assert back._seen == ks._seen
    assert same_state(back.state(), _filled(30).state())
    assert back.evict_idle(1_010) == ks.evict_idle(1_010)


def test_layouts_1_and_2_restore_into_the_same_state_as_layout_3() -> None:
    ks = _filled(30)
    rows = plain_state(ks.state())[1]  # [(key, last use, record)] in use order
    v1 = Snapshot(
        "KeyedState",
        1,
        {"items": [(k, r) for k, _s, r in rows], "seen": {k: s for k, s, _r in rows}},
    )
    v2 = Snapshot(
        "KeyedState",
        2,
        {"records": b"".join(encode_record((k, n, s, r)) for n, (k, s, r) in enumerate(rows))},
    )
    for old in (v1, v2):
        back: KeyedState[_Line] = KeyedState(idle_ms=1_000)
        back.restore(decode(encode(old)))
        assert list(back.items()) == list(ks.items())
        assert same_state(back.state(), _filled(30).state())
        back.put("new", _Line("pm10"), now_ms=50)
        assert next(reversed(list(back.items())))[0] == "new"


def test_a_detectors_records_go_through_the_recovery_loader_as_columns() -> None:
    ks: KeyedState[_Line] = KeyedState(idle_ms=1_000)
    for i in range(20):
        ev = SensorEvent(ts_ms=i, sensor=f"s{i}", kind="power", value=0.5, zones=("z",))
        ks.put(f"s{i}", _Line("power", last=ev if i % 4 else None, timer_due=i), now_ms=i)
    snap = decode(encode(ks.state()))
    assert snap.version == 4 and isinstance(snap.data["records"], _Columns)
    back: KeyedState[_Line] = KeyedState(idle_ms=1_000)
    back.restore(snap)
    assert list(back.items()) == list(ks.items())


def _layout3(packed: Any) -> Any:
    """``packed`` as layout 3 wrote it: records as columns, their containers as they are."""
    if isinstance(packed, _Columns):
        cols = [_layout3(c) for c in packed.cols]
        return _Columns(packed.cls, packed.names, packed.n, cols, packed.at, packed.size)
    if isinstance(packed, (_Arrays, _Tuples, _Lists, _Dicts, _Some)):
        return list(unpack(packed))
    return packed


def test_a_layout_3_snapshot_of_track_records_restores_into_the_same_state() -> None:
    from citywatch.detectors.tracks_gap import _Track

    ks: KeyedState[_Track] = KeyedState(idle_ms=10_000)
    for i in range(12):
        fix = (i, 121.0 + i, 32.0, "z" if i % 2 else None, f"e{i}", "tanker", None, 300, i, 0)
        undecided = [fix] if i % 3 else []
        prev = (i - 1, 121.0, 32.0) if i % 4 else None
        ks.put(f"v{i}", _Track(i, undecided, fix, prev, array("q", range(i % 5))), now_ms=i)
    snap = ks.state()
    assert snap.version == 4
    old = Snapshot("KeyedState", 3, {**snap.data, "records": _layout3(snap.data["records"])})
    assert isinstance(old.data["records"].cols[1], list)  # undecided: lists of tuples
    for written in (snap, old):
        back: KeyedState[_Track] = KeyedState(idle_ms=10_000)
        back.restore(decode(encode(written)))
        assert list(back.items()) == list(ks.items())
        assert same_state(back.state(), ks.state())
