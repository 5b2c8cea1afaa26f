"""The incremental snapshot of ``KeyedState`` restores exactly what a full one would.

A ``KeyedState`` keeps each key's record encoded and re-encodes only the keys
used, added or dropped since (``get``/``put``/``pop``/``take_stale`` and idle
eviction). Random sequences of those operations (records changed in place after
``get``, as detectors do), with snapshots, early encoding (``precode``) and
restores at random points, are run beside a twin that never snapshots; every
snapshot must decode to the twin's keys, use order, last-use times and records,
and the restored object must go on exactly as the twin does.
"""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from citywatch.detectors.base import KeyedState, plain_state
from citywatch.detectors.state import Snapshot, StateError, decode, encode

KEYS = [f"k{i}" for i in range(8)]
IDLE_MS = 50

_key = st.sampled_from(KEYS)
_now = st.integers(min_value=0, max_value=400)
_op = st.one_of(
    st.tuples(st.just("put"), _key, _now, st.integers(0, 9)),
    st.tuples(st.just("get"), _key, _now, st.integers(0, 9)),  # and change the record
    st.tuples(st.just("peek"), _key, _now, st.just(0)),  # get, record left as is
    st.tuples(st.just("pop"), _key, st.just(0), st.just(0)),
    st.tuples(st.just("take_stale"), _key, _now, st.just(0)),
    st.tuples(st.just("evict"), _key, _now, st.just(0)),
    st.tuples(st.just("snapshot"), _key, st.just(0), st.just(0)),
    st.tuples(st.just("precode"), _key, st.just(0), st.integers(0, 3)),
    st.tuples(st.just("restore"), _key, st.just(0), st.just(0)),
)


def _apply(ks: KeyedState[list[int]], op: str, key: str, now: int, x: int) -> Any:
    if op == "put":
        ks.put(key, [x], now)
        return None
    if op in ("get", "peek"):
        rec = ks.get(key, now)
        if rec is not None and op == "get":
            rec.append(x)  # changed in place, as a detector changes what get returned
        return None if rec is None else list(rec)
    if op == "pop":
        return ks.pop(key)
    if op == "take_stale":
        return ks.take_stale(key, now)
    return ks.evict_idle(now)


def _contents(ks: KeyedState[list[int]]) -> bytes:
    """Keys in use order, each with its last use and record (what must survive)."""
    return pickle.dumps([(k, ks._seen[k], rec) for k, rec in ks.items()])


def _decoded(snap: Snapshot) -> bytes:
    _kind, rows = plain_state(decode(encode(snap)))
    return pickle.dumps(rows)


@settings(max_examples=300, deadline=None)
@given(st.lists(_op, max_size=80))
def test_incremental_snapshots_restore_the_same_state_as_a_full_one(
    ops: list[tuple[str, str, int, int]],
) -> None:
    ks: KeyedState[list[int]] = KeyedState(IDLE_MS)
    twin: KeyedState[list[int]] = KeyedState(IDLE_MS)  # never snapshotted
    for op, key, now, x in ops:
        if op == "snapshot":
            assert _decoded(ks.state()) == _contents(twin)
        elif op == "precode":
            ks.precode(x)
        elif op == "restore":
            back: KeyedState[list[int]] = KeyedState(IDLE_MS)
            back.restore(decode(encode(ks.state())))
            ks = back
        else:
            assert _apply(ks, op, key, now, x) == _apply(twin, op, key, now, x)
        assert _contents(ks) == _contents(twin)
    assert _decoded(ks.state()) == _contents(twin)
    # The restored order decides what goes first as event time passes.
    back = KeyedState[list[int]](IDLE_MS)
    back.restore(decode(encode(ks.state())))
    assert back.evict_idle(10_000) == twin.evict_idle(10_000)


def test_only_changed_keys_are_encoded_again() -> None:
    ks: KeyedState[list[int]] = KeyedState(IDLE_MS)
    for i, key in enumerate(KEYS):
        ks.put(key, [i], now_ms=i)
    # Every key changed: all of them as columns (layout 3), no record kept encoded, and
    # none encoded ahead of the next snapshot while most keys keep changing.
    assert ks.state().version == 4 and ks.pending() == len(KEYS)
    assert ks.precode(100) == 0
    # A quiet interval: still a full snapshot (nothing is encoded yet), then records are
    # encoded ahead again and the next snapshot is incremental (layout 2).
    ks.get("k1", now_ms=10)
    assert ks.state().version == 4
    assert ks.precode(100) == len(KEYS)
    assert ks.state().version == 2 and ks.pending() == 0
    ks.get("k3", now_ms=20)
    ks.pop("k5")
    ks.get("missing", now_ms=20)
    assert ks.pending() == 2
    assert ks.precode(1) == 1 and ks.pending() == 1
    assert ks.state().version == 2 and ks.pending() == 0


def test_a_key_dropped_before_it_was_ever_encoded_leaves_nothing_pending() -> None:
    # A replay never snapshots: evicted keys must not pile up as changes.
    ks: KeyedState[list[int]] = KeyedState(IDLE_MS)
    for i in range(1_000):
        ks.put(f"k{i}", [i], now_ms=i)
        ks.evict_idle(now_ms=i)
    assert ks.pending() == len(ks) <= IDLE_MS + 1


def test_a_version_1_snapshot_restores_in_its_use_order() -> None:
    v1 = Snapshot("KeyedState", 1, {"items": [("b", [2]), ("a", [1])], "seen": {"a": 9, "b": 5}})
    ks: KeyedState[list[int]] = KeyedState(IDLE_MS)
    ks.restore(decode(encode(v1)))
    assert list(ks.items()) == [("b", [2]), ("a", [1])]
    assert ks.evict_idle(now_ms=5 + IDLE_MS + 1) == ["b"]
    ks.put("c", [3], now_ms=70)
    assert [k for k, _ in ks.items()] == ["a", "c"]


@pytest.mark.parametrize(
    "records",
    [b"\x05\x00\x00", b"\x40\x00\x00\x00\x80\x05", b"\x02\x00\x00\x00\x80\x05"],
    ids=["short-length", "truncated-record", "unreadable-record"],
)
def test_a_damaged_record_blob_is_a_state_error(records: bytes) -> None:
    ks: KeyedState[list[int]] = KeyedState(IDLE_MS)
    with pytest.raises(StateError, match="record"):
        ks.restore(Snapshot("KeyedState", 2, {"records": records}))


def test_a_record_holding_code_is_refused() -> None:
    from citywatch.detectors.state import encode_record

    blob = encode_record(("k", 1, 0, print))
    ks: KeyedState[list[int]] = KeyedState(IDLE_MS)
    with pytest.raises(StateError, match="not plain state data"):
        ks.restore(Snapshot("KeyedState", 2, {"records": blob}))
