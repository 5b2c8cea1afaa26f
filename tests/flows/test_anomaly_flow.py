"""sensor.anomaly end to end over an 80-minute recording (per-sensor and peer models).

min   0         15        30        40        60  70        80
      |---------|---------|---------|---------|---|---------|
group-rental dwelling  [x6 water, power from the start ...........]
      alert once every dwelling has reported ^ (< 35)
noise monitor warm-up [0 .. 30]                 [+15 dB 60..70]
                                                ^ alert on the first loud reading
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bytewax.testing import TestingSink, TestingSource, run_main

from citywatch.flows.config import Config
from citywatch.flows.pipeline import FlowOutputs, ReferenceHolder, build_flow
from citywatch.flows.records import RawBatch
from citywatch.geo.reference import Reference
from citywatch.replay.generator import GenParams, generate
from citywatch.replay.recording import iter_lines
from citywatch.replay.truth import load_truth, score


@pytest.mark.slow
def test_eighty_minutes_find_both_anomalies_and_nothing_else(
    tmp_path: Path, config: Config, reference: Reference
) -> None:
    rec, truth_path = tmp_path / "rec.jsonl", tmp_path / "truth.json"
    generate(reference, GenParams(minutes=80, seed=11), rec, truth_path)
    lines = list(iter_lines(rec))
    batches = [RawBatch("recording", lines[i : i + 1000], 0) for i in range(0, len(lines), 1000)]
    dispatched: list = []
    flow = build_flow(
        TestingSource(batches),
        FlowOutputs(dispatch=TestingSink(dispatched)),
        config,
        ReferenceHolder(reference),
    )
    run_main(flow)
    alerts = [d.alert.to_json() for d in dispatched]
    truth = load_truth(truth_path)
    sc = score(alerts, truth, kinds=["sensor.anomaly"])
    notes = sorted(
        i["note"].split(":")[0] for i in truth["incidents"] if i["kind"] == "sensor.anomaly"
    )
    assert notes == ["group-rental dwelling", "noise 15 dB above the monitor's learned level"]
    assert sc.missed == [] and sc.false_alerts == []
    peer = next(a for a in alerts if a["kind"] == "sensor.anomaly" and "peer" in a["evidence"])
    assert set(peer["evidence"]["contributing"]) >= {"water", "power"}
