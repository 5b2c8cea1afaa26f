"""The sensor detectors' per-key state as rows of columns (``SlotKeys``).

- A recovery snapshot written before the change (``KeyedState`` records, see
  ``fixtures/make_sensor_state.py``) restores through the state migrations, and the
  detector then raises exactly the alerts the earlier citywatch raised from there.
- ``SlotKeys`` keeps ``KeyedState``'s use order and idle eviction, operation for
  operation, and its snapshot restores into a store that goes on the same way.
- A snapshot of the new layout, taken at any cut, restores into a detector that goes on
  exactly as the fed one (rings widened, buckets past the bound, timers rebuilt).
"""

from __future__ import annotations

import base64
import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from citywatch.detectors.base import Detector, KeyedState, same_state
from citywatch.detectors.events import Event, SensorEvent
from citywatch.detectors.sensor import ThresholdDetector
from citywatch.detectors.sensor_health import OfflineDetector, OfflineParams, StuckDetector
from citywatch.detectors.sensor_rate import RateDetector
from citywatch.detectors.sensor_window import WindowDetector
from citywatch.detectors.slot_keys import SlotKeys
from citywatch.detectors.state import StateError, decode, encode

FIXTURE = Path(__file__).parent / "fixtures" / "sensor-state-records.json"
CLASSES: dict[str, type[Detector]] = {
    c.__name__: c
    for c in (ThresholdDetector, RateDetector, WindowDetector, OfflineDetector, StuckDetector)
}
T0 = 1_781_528_400_000


def _generator() -> Any:
    """The fixture's generator module: its streams and ``feed`` are the test's."""
    path = FIXTURE.parent / "make_sensor_state.py"
    spec = importlib.util.spec_from_file_location("make_sensor_state", path)
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    return gen


GEN = _generator()
_feed: Callable[[Detector, list[Event], dict[int, int], int, int], list[Any]] = GEN.feed


def _scenario(name: str) -> tuple[Callable[[], Detector], list[Event], dict[int, int]]:
    """The detector, events and watermarks the fixture was written from (rebuilt by the
    generator's own code)."""
    if name in CLASSES:
        cls = CLASSES[name]
        case = cls.contract_case(GEN.SEED)
        return (lambda: cls.contract_case(GEN.SEED).detector), case.events, case.watermarks
    make, stream = GEN.EXTRA[name]
    events, wms = stream()
    return make, events, wms


_SAVED = json.loads(FIXTURE.read_text())
_CUTS = [(name, k) for name, entry in sorted(_SAVED.items()) for k in range(len(entry["cuts"]))]


@pytest.mark.parametrize(("name", "k"), _CUTS, ids=[f"{n}-{k}" for n, k in _CUTS])
def test_a_snapshot_of_keyed_records_goes_on_with_the_alerts_it_gave_before(
    name: str, k: int
) -> None:
    entry = _SAVED[name]
    cut = entry["cuts"][k]
    make, events, wms = _scenario(name)
    snap = decode(base64.b64decode(cut["state"]))
    assert snap.version == entry["version"] < type(make()).STATE_VERSION  # a migration runs
    det = make()
    det.restore(snap)
    assert _feed(det, events, wms, cut["cut"], len(events)) == cut["rest"]


def test_the_fixture_gives_alerts_after_its_cuts() -> None:
    # Otherwise the test above would compare empty lists only.
    for name, entry in _SAVED.items():
        assert sum(len(c["rest"]) for c in entry["cuts"]) >= 2, name


@pytest.mark.parametrize("name", sorted(_SAVED))
def test_a_restored_snapshot_goes_on_exactly_as_the_fed_detector(name: str) -> None:
    make, events, wms = _scenario(name)
    whole = _feed(make(), events, wms, 0, len(events))
    assert whole, "the scenario must raise alerts"
    for cut in (len(events) // 5, len(events) // 2, 4 * len(events) // 5):
        det = make()
        first = _feed(det, events, wms, 0, cut)
        revived = make()
        revived.restore(decode(encode(det.state())))
        rest = _feed(revived, events, wms, cut, len(events))
        assert first + rest == whole, cut
        assert _feed(det, events, wms, cut, len(events)) == rest
        assert same_state(revived.state(), det.state()), cut


_ops = st.lists(
    st.tuples(
        st.sampled_from(["use", "use", "add", "pop", "evict", "stale"]),
        st.sampled_from(["a", "b", "c", "d", "e"]),
        st.integers(0, 200),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(_ops)
def test_slot_keys_keep_the_use_order_and_eviction_of_keyed_state(
    ops: list[tuple[str, str, int]],
) -> None:
    ks: KeyedState[int] = KeyedState(idle_ms=30)
    sk = SlotKeys(30, {"v": ("q", 0)})
    for op, key, now in ops:
        if op == "use":
            assert (ks.get(key, now) is not None) == (sk.slot(key, now) >= 0)
        elif op == "add" and key not in ks:
            ks.put(key, now, now)
            sk.col["v"][sk.add(key, now)] = now
        elif op == "pop":
            assert (ks.pop(key) is not None) == (sk.pop(key) >= 0)
        elif op == "evict":
            assert ks.evict_idle(now) == sk.evict_idle(now)
        elif op == "stale":
            assert (ks.take_stale(key, now) is not None) == sk.take_stale(key, now)
        assert [(k, v) for k, v in ks.items()] == [(k, sk.col["v"][s]) for k, s in sk.items()]
    back = SlotKeys(30, {"v": ("q", 0)})
    back.restore(decode(encode(sk.state())))
    assert back.rows() == sk.rows()
    # Both hand out the same slots from here on, and evict alike.
    for key in "vwxyz":
        assert back.add(key, 300) == sk.add(key, 300)
    assert back.evict_idle(10_000) == sk.evict_idle(10_000)


def test_a_snapshot_whose_columns_do_not_fit_is_refused() -> None:
    sk = SlotKeys(30, {"v": ("q", 0)})
    sk.add("a", 1)
    other = SlotKeys(30, {"v": ("d", 0.0)})
    with pytest.raises(StateError, match="do not fit"):
        other.restore(decode(encode(sk.state())))


def test_an_offline_alert_keeps_the_last_reading_it_names() -> None:
    det = OfflineDetector({"water_level": OfflineParams(silent_s=300)})
    out: list[Any] = []
    ev = SensorEvent(T0, "wl-1", "water_level", 3.25, 121.5, 32.1, id="r-1", zones=("levee",))
    det.on_event(ev, out)
    det.on_watermark(T0 + 1, out)
    det.on_watermark(T0 + 400_000, out)
    (a,) = out
    assert (a.subject, a.zone, a.lon, a.lat) == ("wl-1", "levee", 121.5, 32.1)
    assert a.evidence["last_value"] == 3.25 and a.evidence["event_id"] == "r-1"
