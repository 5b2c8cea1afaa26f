"""Recovery snapshots are plain, versioned state; detectors are rebuilt from the current config.

A real recovery run: Bytewax's recovery store (SQLite partitions), the flow
aborted mid-input (``TestingSource.ABORT``) and resumed from its last snapshot
with a changed config::

    input   b0: s1=160 s1=160 | b1..b3: quiet | ABORT | b4: s1=160 | b5: s2=120 x3
    run 1   |== limit 150 ===== snapshot ====X
    run 2                      r== limit 100 ============================| end
    s1: 2 readings restored + 1 -> min_readings 3 reached -> alert (state kept)
    s2: 120 is above the new limit 100 -> alert (the new threshold applies)
"""

from __future__ import annotations

import dataclasses
import pickle
import sqlite3
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from bytewax.recovery import RecoveryConfig
from bytewax.run import cli_main
from bytewax.testing import TestingSink, TestingSource

from citywatch.detectors.state import Snapshot, StateError, decode, encode
from citywatch.flows.config import Config
from citywatch.flows.detect import DetectorSuite, ShardLogic
from citywatch.flows.live import RECOVERY_PAGE_SIZE, ensure_recovery_dir
from citywatch.flows.pipeline import FlowOutputs, ReferenceHolder, build_flow
from citywatch.flows.records import RawBatch
from citywatch.flows.recovery import reset_steps
from citywatch.geo.reference import Reference
from citywatch.sinks.dispatch import Dispatch

FIXTURE = Path(__file__).parent / "fixtures" / "state-v1-detect.bin"
T0 = 1_750_000_000_000
MIN = 60_000


def _reading(sensor: str, i: int, value: float) -> bytes:
    ev = {"type": "sensor", "sensor": sensor, "kind": "pm10", "value": value}
    ev |= {"ts": T0 + i * MIN, "lon": 120.86, "lat": 32.01}
    return orjson.dumps(ev)


def _batches() -> list[object]:
    b = [
        [_reading("pm-s1", 0, 160.0), _reading("pm-s1", 1, 160.0)],
        [_reading("pm-s0", 2, 20.0)],
        [_reading("pm-s0", 3, 20.0)],
        [_reading("pm-s0", 4, 20.0)],
        [_reading("pm-s1", 5, 160.0)],
        [_reading("pm-s2", 6 + i, 120.0) for i in range(3)],
    ]
    items: list[object] = [RawBatch("recording", lines, 0) for lines in b]
    items.insert(4, TestingSource.ABORT())
    return items


def _with_pm10_limit(config: Config, limit: float) -> Config:
    p = config.sensor_threshold["pm10"]
    changed = dataclasses.replace(p, limit=limit, clear_at=limit - 20)
    return dataclasses.replace(
        config, sensor_threshold={**config.sensor_threshold, "pm10": changed}
    )


def _run(items: list[object], cfg: Config, reference: Reference, rec: Path) -> list[Dispatch]:
    out: list[Dispatch] = []
    flow = build_flow(
        TestingSource(items),
        FlowOutputs(dispatch=TestingSink(out)),
        cfg,
        ReferenceHolder(reference),
    )
    cli_main(
        flow,
        epoch_interval=timedelta(0),
        recovery_config=RecoveryConfig(str(rec)),
    )
    return out


def _threshold_subjects(out: list[Dispatch]) -> list[str]:
    return sorted(d.alert.subject for d in out if d.alert.kind == "sensor.threshold")


def test_a_changed_threshold_applies_after_restart_and_state_is_kept(
    config: Config, reference: Reference, tmp_path: Path
) -> None:
    assert ensure_recovery_dir(tmp_path, 1)  # as `citywatch run` makes it
    items = _batches()
    first = _run(items, _with_pm10_limit(config, 150.0), reference, tmp_path)
    assert _threshold_subjects(first) == []  # aborted before s1's third reading
    second = _run(items, _with_pm10_limit(config, 100.0), reference, tmp_path)
    # s1 alerts on its one reading after the restart: its two earlier ones came back
    # from the snapshot (they are not re-read); s2 alerts under the new limit.
    assert _threshold_subjects(second) == ["pm-s1", "pm-s2"]


def test_reset_state_starts_a_step_empty(
    config: Config, reference: Reference, tmp_path: Path
) -> None:
    assert ensure_recovery_dir(tmp_path, 1)  # as `citywatch run` makes it
    items = _batches()
    _run(items, _with_pm10_limit(config, 150.0), reference, tmp_path)
    assert reset_steps(tmp_path, ["detect"]) > 0
    second = _run(items, _with_pm10_limit(config, 100.0), reference, tmp_path)
    assert _threshold_subjects(second) == ["pm-s2"]  # s1's two readings were dropped
    with pytest.raises(StateError, match="unknown step 'detection'.*detect, rdv_match"):
        reset_steps(tmp_path, ["detection"])


def _suite(config: Config, reference: Reference) -> DetectorSuite:
    return DetectorSuite.from_config(config, reference.zone_catalog())


def _logic(config: Config, reference: Reference, resume: bytes | None) -> ShardLogic:
    catalog = reference.zone_catalog()
    return ShardLogic(lambda: _suite(config, reference), lambda: catalog, resume)


def test_a_snapshot_of_the_committed_v1_format_restores(
    config: Config, reference: Reference
) -> None:
    # The fixture was written by ``_write_fixture`` below (state format v1). When a
    # state version is bumped, this test fails until a migration reads it again.
    logic = _logic(config, reference, FIXTURE.read_bytes())
    stop = next(d for d in logic.suite.detectors if type(d).__name__ == "ThresholdDetector")
    assert stop.live_keys() == 1
    assert logic.suite.watermarks.combined_ > 0


def _write_fixture(config: Config, reference: Reference) -> None:  # pragma: no cover
    """Regenerate the fixture (only when the v1 format itself is meant to change)."""
    from citywatch.detectors.events import parse_event

    # Without the anomaly baselines (their numpy columns would make the file large):
    # a restore then starts them empty, as for any detector new since the snapshot.
    small = dataclasses.replace(config, anomaly=dataclasses.replace(config.anomaly, sensor={}))
    suite = _suite(small, reference)
    ev = parse_event(_reading("pm-s1", 0, 160.0), None, "recording")
    assert not isinstance(ev, type(None))
    suite.watermarks.update("recording", T0, False, ())
    suite.process([ev], T0, [])  # type: ignore[list-item]
    FIXTURE.write_bytes(encode(suite.state()))


def test_a_snapshot_of_the_old_pickled_objects_gives_a_clear_error(
    config: Config, reference: Reference
) -> None:
    legacy = pickle.dumps(_suite(config, reference))
    with pytest.raises(StateError, match=r"step 'detect'.*--reset-state detect"):
        _logic(config, reference, legacy)


def test_a_newer_state_version_names_the_step_and_the_fix(
    config: Config, reference: Reference
) -> None:
    snap = decode(FIXTURE.read_bytes())
    newer = encode(Snapshot(snap.kind, 99, snap.data))
    with pytest.raises(StateError, match=r"step 'detect'.*version 99.*--reset-state detect"):
        _logic(config, reference, newer)


def test_a_snapshot_never_carries_objects_other_than_state_records() -> None:
    smuggled = encode(Snapshot("DetectorSuite", 1, {"x": Path("/")}))
    with pytest.raises(StateError, match=r"pathlib.*not plain state data"):
        decode(smuggled, step="detect")


def test_the_recovery_store_is_made_with_large_pages_and_moved_in_complete(tmp_path: Path) -> None:
    """Bytewax's tables in SQLite files of ``RECOVERY_PAGE_SIZE`` pages, each file moved
    into the directory once its tables exist (another process waiting for the files
    must not open one half made); a second start finds them and leaves them."""
    rec = tmp_path / "rec"
    assert ensure_recovery_dir(rec, 3)
    assert sorted(p.name for p in rec.iterdir()) == [f"part-{i}.sqlite3" for i in range(3)]
    for i in range(3):
        db = sqlite3.connect(rec / f"part-{i}.sqlite3")
        try:
            assert db.execute("PRAGMA page_size").fetchone() == (RECOVERY_PAGE_SIZE,)
            assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            tables = {
                r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
        finally:
            db.close()
        assert {"snaps", "commits", "fronts", "parts"} <= tables
    assert not ensure_recovery_dir(rec, 3)
