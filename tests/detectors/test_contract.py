"""The detector contract suite (STYLE.md habit 2): every concrete Detector, the same checks.

Discovery imports every module of the ``citywatch.detectors`` package and walks the
subclasses of :class:`citywatch.detectors.base.Detector`; a concrete class (one that
implements ``on_event``) must provide ``contract_case(seed)`` or it fails here,
so no detector skips the suite silently. A class may excuse itself from one
check with a class attribute ``contract_skips = {"check name": "reason"}``; the
check is then reported as skipped with that reason.

Checks, each over the class's own seeded scenario (``ContractCase``):

- ``no_mutation``: the input events are equal to deep copies taken before;
- ``before_learning``: a fresh detector takes the first event and a watermark;
- ``finds_incident``: an alert of an expected kind at or after ``anomaly_from``,
  none before (prequential: scored as the stream goes);
- ``same_seed``: two cases from one seed give the same events and alerts;
- ``state``: a detector's state taken mid-stream, encoded as a plain versioned snapshot
  and poured into a detector freshly built from the config, continues exactly like
  the original; the rebuilt detector keeps its own (configured) parameters;
- ``bounded``: a long stream of many keys, time moving on by days, keeps
  ``live_keys()`` bounded (idle keys are evicted).
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import inspect
import pkgutil
from typing import Any

import pytest

from citywatch import detectors
from citywatch.detectors.alerts import Alert
from citywatch.detectors.base import ContractCase, Detector
from citywatch.detectors.events import Event
from citywatch.detectors.state import decode, encode

DAY_MS = 86_400_000
KEY_FIELD = {"gps": "entity", "sensor": "sensor", "video": "camera"}


def _import_all() -> None:
    for mod in pkgutil.walk_packages(detectors.__path__, prefix="citywatch.detectors."):
        importlib.import_module(mod.name)


def _subclasses(cls: type) -> list[type]:
    out: list[type] = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_subclasses(sub))
    return out


def concrete_detectors() -> list[type[Detector]]:
    _import_all()
    found = {
        f"{c.__module__}.{c.__qualname__}": c
        for c in _subclasses(Detector)
        if c.__module__.startswith("citywatch.detectors.")
        and not inspect.isabstract(c)
        and not c.__name__.startswith("_")
        and c.on_event is not Detector.on_event
    }
    return [found[name] for name in sorted(found)]


DETECTORS = concrete_detectors()
IDS = [f"{c.__module__.removeprefix('citywatch.detectors.')}.{c.__qualname__}" for c in DETECTORS]


def _case(cls: type[Detector], seed: int = 7) -> ContractCase:
    if cls.contract_case.__func__ is Detector.contract_case.__func__:  # type: ignore[attr-defined]
        pytest.fail(
            f"{cls.__module__}.{cls.__qualname__} has no contract_case(seed): every concrete "
            "detector must provide one (see detectors.base.ContractCase)"
        )
    case = cls.contract_case(seed)
    assert isinstance(case, ContractCase)
    assert isinstance(case.detector, cls)
    assert 0 < case.anomaly_from < len(case.events), "anomaly_from must index into events"
    assert case.expect_kinds <= set(cls.kinds), "expect_kinds must be kinds the class raises"
    return case


def _skip_if_excused(cls: type[Detector], check: str) -> None:
    reason = getattr(cls, "contract_skips", {}).get(check)
    if reason:
        pytest.skip(f"{cls.__qualname__} skips {check}: {reason}")


def _run(
    det: Detector, events: list[Event], watermarks: dict[int, int], start: int = 0
) -> list[tuple[int, Alert]]:
    """Feed events[start:]; returns (index of the event after which it came, alert)."""
    fired: list[tuple[int, Alert]] = []
    for i in range(start, len(events)):
        out: list[Alert] = []
        det.on_event(events[i], out)
        if i in watermarks:
            det.on_watermark(watermarks[i], out)
        fired.extend((i, a) for a in out)
    return fired


def _as_json(fired: list[tuple[int, Alert]]) -> list[tuple[int, dict[str, Any]]]:
    return [(i, a.to_json()) for i, a in fired]


@pytest.mark.parametrize("cls", DETECTORS, ids=IDS)
def test_no_mutation(cls: type[Detector]) -> None:
    _skip_if_excused(cls, "no_mutation")
    case = _case(cls)
    before = copy.deepcopy(case.events)
    _run(case.detector, case.events, case.watermarks)
    assert [dataclasses.asdict(e) for e in case.events] == [dataclasses.asdict(e) for e in before]


@pytest.mark.parametrize("cls", DETECTORS, ids=IDS)
def test_before_learning(cls: type[Detector]) -> None:
    _skip_if_excused(cls, "before_learning")
    case = _case(cls)
    out: list[Alert] = []
    case.detector.on_event(case.events[0], out)
    case.detector.on_watermark(case.events[0].ts_ms, out)
    assert all(isinstance(a, Alert) for a in out)
    assert case.detector.live_keys() >= 0


@pytest.mark.parametrize("cls", DETECTORS, ids=IDS)
def test_finds_incident(cls: type[Detector]) -> None:
    _skip_if_excused(cls, "finds_incident")
    case = _case(cls)
    fired = _run(case.detector, case.events, case.watermarks)
    early = [(i, a.kind, a.subject) for i, a in fired if i < case.anomaly_from]
    assert early == [], f"alerts before the injected incident (index {case.anomaly_from})"
    found = [a.kind for i, a in fired if a.kind in case.expect_kinds]
    assert found, f"no alert of {sorted(case.expect_kinds)} after index {case.anomaly_from}"


@pytest.mark.parametrize("cls", DETECTORS, ids=IDS)
def test_same_seed_same_output(cls: type[Detector]) -> None:
    _skip_if_excused(cls, "same_seed")
    a, b = _case(cls, 11), _case(cls, 11)
    assert [dataclasses.asdict(e) for e in a.events] == [dataclasses.asdict(e) for e in b.events]
    run_a = _as_json(_run(a.detector, a.events, a.watermarks))
    run_b = _as_json(_run(b.detector, b.events, b.watermarks))
    assert run_a == run_b
    assert run_a, "the seeded case must raise alerts to compare"


@pytest.mark.parametrize("cls", DETECTORS, ids=IDS)
def test_state_round_trip_rebuilds_under_the_current_config(cls: type[Detector]) -> None:
    _skip_if_excused(cls, "state")
    whole = _case(cls)
    expected = _as_json(_run(whole.detector, whole.events, whole.watermarks))
    case = _case(cls)
    half = len(case.events) // 2
    first = _run(case.detector, case.events[:half], case.watermarks)
    snap = decode(encode(case.detector.state()))  # plain data only, or decode refuses
    assert snap.kind == cls.__name__ and snap.version == cls.STATE_VERSION
    fresh = _case(cls).detector  # built from the config, as a restarted flow does
    params = {k: v for k, v in vars(fresh).items() if k not in fresh._state_names()}
    revived = fresh
    revived.restore(snap)
    # Parameters and what is derived from them stay those of the fresh build.
    assert all(getattr(revived, k) is v for k, v in params.items())
    rest_original = _run(case.detector, case.events, case.watermarks, start=half)
    rest_revived = _run(revived, case.events, case.watermarks, start=half)
    assert _as_json(rest_revived) == _as_json(rest_original)
    assert _as_json(first) + _as_json(rest_revived) == expected


def _renamed(ev: Event, suffix: str, shift_ms: int) -> Event:
    field = KEY_FIELD[ev.type]
    changes: dict[str, Any] = {field: f"{getattr(ev, field)}{suffix}", "ts_ms": ev.ts_ms + shift_ms}
    return dataclasses.replace(ev, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize("cls", DETECTORS, ids=IDS)
def test_memory_bounded_over_a_long_stream_of_many_keys(cls: type[Detector]) -> None:
    # Rounds of the case's stream, each with its own keys, 3 days apart; the
    # watermark moves on between rounds, so the keys of a round go idle:
    #   round   0 [keys ~0] ...3 days... 1 [keys ~1] ...3 days... 2 ...   x 30
    #   live    n0                       levels off               <= max so far
    _skip_if_excused(cls, "bounded")
    case = _case(cls)
    det = case.detector
    span = case.events[-1].ts_ms - case.events[0].ts_ms
    gap = max(3 * DAY_MS, 2 * span)
    peaks: list[int] = []
    for r in range(30):
        shift = r * (span + gap)
        events = [_renamed(ev, f"~{r}", shift) for ev in case.events]
        wms = {i: wm + shift for i, wm in case.watermarks.items()}
        _run(det, events, wms)
        peaks.append(det.live_keys())
        det.on_watermark(events[-1].ts_ms + gap - 1, [])
    # A leak grows round after round; bounded state levels off once eviction kicks in.
    assert max(peaks[20:]) <= max(peaks[:20]), f"live keys grow with the stream: {peaks}"
    det.on_watermark(events[-1].ts_ms + 400 * DAY_MS, [])
    assert det.live_keys() <= peaks[0], "keys idle for 400 days were not evicted"


def test_a_detector_without_contract_case_fails_the_suite() -> None:
    class NoCase(Detector):
        kinds = ("x.y",)

        def on_event(self, ev: Event, out: list[Alert]) -> None:
            return None

    with pytest.raises(pytest.fail.Exception, match="has no contract_case"):
        _case(NoCase)


def test_discovery_finds_the_foundation_and_sensor_detectors() -> None:
    names = {c.__qualname__ for c in DETECTORS}
    assert {
        "ThresholdDetector",
        "RateDetector",
        "WindowDetector",
        "OfflineDetector",
        "StuckDetector",
        "VideoRuleDetector",
        "StopDetector",
        "EnterDetector",
    } <= names
