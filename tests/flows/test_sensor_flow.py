"""Sensor, video and corroboration kinds through the whole flow, on an 80-minute recording.

Two 40-minute blocks: the hourly PM10 window needs the first hour of readings,
so ``sensor.window`` is only injected from the second block on::

    min   0 ........ 40 ........ 80
    blk   [ block 0 ][ block 1  ]
    pm10        [~130 µg/m³ 10 .. 70]   hourly mean > 115 at 50..70
    rate/offline/stuck/video/fusion: once per block (replay/incidents_sensors.py)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from citywatch.geo.reference import Reference
from citywatch.replay.generator import GenParams, generate
from citywatch.replay.recording import iter_lines
from citywatch.replay.truth import load_truth, score

MY_KINDS = (
    "sensor.rate",
    "sensor.window",
    "sensor.offline",
    "sensor.stuck",
    "video.construction",
    "video.fishing",
    "video.dumping",
    "fusion.corroborated",
)


@pytest.fixture(scope="module")
def long_recording(tmp_path_factory: pytest.TempPathFactory, reference: Reference) -> Path:
    d = tmp_path_factory.mktemp("rec80")
    generate(reference, GenParams(minutes=80, seed=5), d / "rec.jsonl", d / "truth.json")
    return d


def test_every_injected_sensor_and_video_incident_is_found_and_nothing_else(
    long_recording: Path,
    run_batched: Callable[[list[bytes], int, int], list],
) -> None:
    truth = load_truth(long_recording / "truth.json")
    lines = list(iter_lines(long_recording / "rec.jsonl"))
    alerts = [d.alert for d in run_batched(lines, 1000, 1)]
    kinds_in_truth = {i["kind"] for i in truth["incidents"]}
    assert kinds_in_truth >= set(MY_KINDS)
    sc = score([a.to_json() for a in alerts], truth, kinds=MY_KINDS)
    assert sc.missed == [], f"missed: {sc.missed}"
    assert sc.false_alerts == [], f"false alerts: {sc.false_alerts}"
    fusion = [a for a in alerts if a.kind == "fusion.corroborated"]
    for f in fusion:
        sources = {e["subject_type"] for e in f.evidence["alerts"]}
        assert len(sources) >= 2 and f.evidence["anchor"] in {e["id"] for e in f.evidence["alerts"]}
        top = max(
            ("blue", "yellow", "orange", "red").index(e["severity"]) for e in f.evidence["alerts"]
        )
        assert ("blue", "yellow", "orange", "red").index(f.severity) == min(3, top + 1)


def test_fusion_and_window_ids_do_not_depend_on_batching_or_workers(
    long_recording: Path,
    run_batched: Callable[[list[bytes], int, int], list],
) -> None:
    lines = list(iter_lines(long_recording / "rec.jsonl"))
    one = sorted((a.kind, a.id) for a in [d.alert for d in run_batched(lines, 5000, 1)])
    two = sorted((a.kind, a.id) for a in [d.alert for d in run_batched(lines, 97, 2)])
    assert one == two
    assert {k for k, _ in one} >= {"fusion.corroborated", "sensor.window", "sensor.offline"}
