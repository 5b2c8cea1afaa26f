"""The track detectors' recovery state as citywatch wrote it before ``KeyedState``
layout 4 and ``track.gap`` state version 4 restores into the same state.

The fixture was written by :func:`_write_fixture` run on the code of that time
(``KeyedState`` layout 3: the records' tuples, lists and arrays pickled one by one;
``track.gap`` version 3: the fleets as a dict of objects), from the first part of a
generated recording with field noise. Restored now, each part holds the same state as
the same part fed the same events by this code, and both go on to the same alerts.

It was written from a tree of main at 8dce745 (``python -m
citywatch.benchmarks.replay_versions --tree 8dce745 OLD``), run outside the
repository so that ``PYTHONPATH`` decides which code is imported::

    cd /tmp && PYTHONPATH=OLD/pkg python -c "import importlib.util as u; \\
        s = u.spec_from_file_location('m', 'REPO/tests/detectors/test_track_state_migration.py'); \\
        m = u.module_from_spec(s); s.loader.exec_module(m); m._write_fixture()"

Written again (issue 22) from the same tree with ``track.gap``'s stationary rule of
this code patched into OLD's ``detectors/tracks_gap.py`` (a fix reporting a speed at
or under ``PARKED_KMH`` is stationary wherever it lies, a vehicle's first fix too): the
generated trucks start parked, so the old rule filed their first fixes' timers at
300 s where this code files them at 900 s; the layout is that of 8dce745.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from citywatch.detectors.alerts import Alert
from citywatch.detectors.base import same_state
from citywatch.detectors.events import Event, parse_batch
from citywatch.detectors.state import Snapshot, decode, encode
from citywatch.flows.config import Config, load_config
from citywatch.flows.detect import DetectorSuite
from citywatch.geo.reference import Reference
from citywatch.replay.generator import generate
from citywatch.replay.scene import GenParams

FIXTURE = Path(__file__).parent / "fixtures" / "track-state-layout3.bin"
PARAMS = GenParams(minutes=20, seed=11, noise=True)
CUT = 0.6  # the share of the recording's events fed before the snapshot
PARTS = ("GapDetector", "StopDetector", "SpeedingDetector", "GeofenceDetector")


def _parts(suite: DetectorSuite) -> dict[str, Any]:
    found: dict[str, Any] = {type(d).__name__: d for d in suite.detectors}
    return {**{name: found[name] for name in PARTS}, "JumpFilter": suite.gate}


def _feed(
    suite: DetectorSuite, reference: Reference, events: list[Event], top: int, lag: int
) -> tuple[list[Alert], int]:
    out: list[Alert] = []
    for i in range(0, len(events), 500):
        batch = events[i : i + 500]
        reference.annotate(batch)
        top = max(top, sorted(ev.ts_ms for ev in batch)[len(batch) // 2])
        suite.process(batch, top - lag, out)
    return out, top


def _events(reference: Reference, path: Path) -> list[Event]:
    generate(reference, PARAMS, path)
    with path.open("rb") as f:
        good, _bad = parse_batch(line.rstrip(b"\n") for line in f if line.strip())
    return good


def _reference(config: Config) -> Reference:
    d = config.data
    return Reference.load(d.zones, d.jurisdictions, d.sensors, d.cameras, config.zone_kinds)


def _write_fixture() -> None:  # pragma: no cover - run on the code that wrote layout 3
    import tempfile

    config = load_config()
    reference = _reference(config)
    with tempfile.TemporaryDirectory() as tmp:
        events = _events(reference, Path(tmp) / "rec.jsonl")
    cut = int(len(events) * CUT)
    suite = DetectorSuite.from_config(config, reference.zone_catalog())
    lag = config.flow.max_out_of_order_s * 1000
    _out, top = _feed(suite, reference, events[:cut], events[0].ts_ms, lag)
    parts = {name: part.state() for name, part in _parts(suite).items()}
    FIXTURE.write_bytes(encode(Snapshot("TrackParts", 1, {"parts": parts, "top": top})))


def test_track_state_written_before_layout_4_restores_into_the_same_state(
    config: Config, reference: Reference, tmp_path: Path
) -> None:
    saved = decode(FIXTURE.read_bytes())
    old = saved.data["parts"]
    assert old["GapDetector"].version == 3
    assert old["StopDetector"].data["_state"].version == 3  # columns, containers as they are
    events = _events(reference, tmp_path / "rec.jsonl")
    cut = int(len(events) * CUT)
    lag = config.flow.max_out_of_order_s * 1000
    fed = DetectorSuite.from_config(config, reference.zone_catalog())
    _out, top = _feed(fed, reference, events[:cut], events[0].ts_ms, lag)
    assert top == saved.data["top"]
    back = DetectorSuite.from_config(config, reference.zone_catalog())
    live = _parts(fed)
    assert all(part.live_keys() > 0 for part in live.values() if part is not fed.gate)
    for name, part in _parts(back).items():
        part.restore(old[name])
        assert same_state(part.state(), live[name].state()), name
    # The rest of the recording: the restored parts raise what the fed ones raise. The
    # other detectors' state is taken from the fed suite (it is not what is tested).
    back.restore(fed.state())
    for name, part in _parts(back).items():
        part.restore(old[name])
    ahead, _ = _feed(fed, reference, events[cut:], top, lag)
    again, _ = _feed(back, reference, events[cut:], top, lag)
    assert [a.id for a in again] == [a.id for a in ahead]
    track = [a for a in ahead if a.kind.startswith(("track.", "geofence."))]
    if not track:
        pytest.fail("the rest of the recording raises no track alert: nothing compared")
