"""The warning flow end to end: recording → Bytewax → Redis work orders.

Timeline of the generated 40-minute recording (seed 7), injected incidents::

    min  0    5    10   15   20   25   30   35   40
         |----|----|----|----|----|----|----|----|
    muck truck onto airport site  ^ (~5)
    fishing boat into no-fishing reach   ^ (~17)
    hazmat stop by the road    [6 ....... 28]  alert at 21
    levee water level ramp       [4 ... 14 .. 22]  alert ~11-13
    PM10 plume                        [12 .. 18]   alert ~14
    people on the airport site            ^ 15
    person on the levee at night                   ^ 25
    hazmat GPS silent               [10 ..... 18]  track.gap ~13
    tanker at 95 km/h                    [12 ...   track.speeding ~13
    tanker + muck truck stopped     [8/9 ..... 20] track.rendezvous ~17
    hazmat fix 42 km off                 ^ 12      a gps.jump dead letter
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import redis
from bytewax.testing import TestingSink, TestingSource, run_main

from citywatch.flows.config import Config
from citywatch.flows.pipeline import FlowOutputs, ReferenceHolder, build_flow
from citywatch.flows.records import RawBatch
from citywatch.flows.runner import run_recordings
from citywatch.flows.stats import RunStats
from citywatch.geo.reference import Reference
from citywatch.replay.generator import GenParams, generate
from citywatch.replay.recording import iter_lines
from citywatch.replay.truth import load_truth, score
from citywatch.sinks.dispatch import Keys

FOUNDATION_KINDS = ("geofence.enter", "track.stop", "sensor.threshold", "video.intrusion")
TRACK_KINDS = ("track.gap", "track.speeding", "track.rendezvous")
SENSOR_VIDEO_KINDS = (  # sensor.window needs an hour of readings: tests/flows/test_sensor_flow.py
    "sensor.rate",
    "sensor.offline",
    "sensor.stuck",
    "video.construction",
    "video.fishing",
    "video.dumping",
    "fusion.corroborated",
)


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory, reference: Reference) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("rec")
    rec, truth = d / "rec.jsonl", d / "truth.json"
    generate(reference, GenParams(minutes=40, seed=7), rec, truth)
    return rec, truth


def _alerts(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line]


@pytest.mark.redis
def test_replay_finds_every_injected_incident_and_nothing_else(
    recording: tuple[Path, Path],
    config: Config,
    reference: Reference,
    redis_url: str,
    tmp_path: Path,
) -> None:
    rec, truth_path = recording
    truth = load_truth(truth_path)
    alerts_out = tmp_path / "alerts.jsonl"
    dead_out = tmp_path / "dead.jsonl"
    result = run_recordings(
        [rec],
        config,
        redis_url,
        alerts_out=alerts_out,
        dead_out=dead_out,
        progress=False,
        reference=reference,
    )
    alerts = _alerts(alerts_out)
    sc = score(alerts, truth)
    assert {i["kind"] for i in truth["incidents"]} >= set(FOUNDATION_KINDS)
    assert {i["kind"] for i in truth["incidents"]} >= set(TRACK_KINDS)
    assert {i["kind"] for i in truth["incidents"]} >= set(SENSOR_VIDEO_KINDS)
    assert "geofence.dwell" in {i["kind"] for i in truth["incidents"]}  # replay/incidents_geo.py
    assert "sensor.anomaly" in {i["kind"] for i in truth["incidents"]}  # incidents_anomaly.py
    assert sc.missed == [], f"missed incidents: {sc.missed}"
    assert sc.false_alerts == [], f"false alerts: {sc.false_alerts}"
    # Every bad line was counted and kept, with its reason, in the file and in Redis.
    assert sum(result.stats.dead.values()) == truth["dead_letters"]
    assert len(_alerts(dead_out)) == truth["dead_letters"]
    assert result.stats.late == truth["late_events"]
    assert result.stats.events_in == truth["events"]
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    keys = Keys(config.redis.prefix)
    assert client.xlen(keys.dlq()) == truth["dead_letters"]
    assert all(e[1]["reason"] for e in client.xrange(keys.dlq()))
    # One work order per incident, in its queue, with an audit entry and every alert.
    queued: set[str] = set()
    for qkey in client.scan_iter(match=keys.queue_pattern(), _type="stream"):
        for _, fields in client.xrange(qkey):
            queued.add(fields["wo"])
            wo = client.hgetall(keys.wo(fields["wo"]))
            assert wo["state"] == "dispatched"
            assert wo["queued"] == "1"
            assert client.xrange(keys.audit(fields["wo"]))[0][1]["action"] == "created"
    incidents = {a["incident"] for a in alerts}
    assert queued == {"wo-" + i.split("-", 1)[1] for i in incidents}
    assert len(queued) == sum(result.stats.work_orders.values())
    assert sum(client.llen(keys.alerts(w)) for w in queued) == len(alerts)


@pytest.mark.redis
def test_second_replay_creates_no_new_work_orders(
    recording: tuple[Path, Path],
    config: Config,
    reference: Reference,
    redis_url: str,
) -> None:
    first = run_recordings([recording[0]], config, redis_url, progress=False, reference=reference)
    again = run_recordings([recording[0]], config, redis_url, progress=False, reference=reference)
    assert sum(first.stats.work_orders.values()) > 0
    assert sum(again.stats.work_orders.values()) == 0
    assert again.stats.repeats == sum(first.stats.alerts.values())


@pytest.mark.redis
@pytest.mark.slow
def test_alert_ids_identical_at_max_speed_and_at_50x(
    config: Config,
    reference: Reference,
    redis_url: str,
    tmp_path: Path,
) -> None:
    rec = tmp_path / "short.jsonl.gz"
    truth = generate(reference, GenParams(minutes=14, seed=3), rec)
    assert truth.incidents, "the short recording must inject incidents"
    runs = []
    for speed, prefix in ((None, "a"), (50.0, "b"), (None, "c")):
        out = tmp_path / f"alerts-{prefix}.jsonl"
        cfg = _with_prefix(config, prefix)
        run_recordings(
            [rec], cfg, redis_url, speed=speed, alerts_out=out, progress=False, reference=reference
        )
        runs.append(sorted(a["id"] for a in _alerts(out)))
    assert runs[0], "alerts were expected"
    assert runs[0] == runs[1] == runs[2]


def _with_prefix(cfg: Config, prefix: str) -> Config:
    from dataclasses import replace

    return replace(cfg, redis=replace(cfg.redis, prefix=prefix))


def _testing_flow(
    lines: list[bytes], config: Config, reference: Reference, batch: int
) -> tuple[list, RunStats, list]:
    batches = [RawBatch("recording", lines[i : i + batch], 0) for i in range(0, len(lines), batch)]
    dispatched: list = []
    dead: list = []
    stats = RunStats()
    flow = build_flow(
        TestingSource(batches),
        FlowOutputs(dispatch=TestingSink(dispatched), dead=TestingSink(dead)),
        config,
        ReferenceHolder(reference),
        stats,
    )
    return [flow, dispatched, dead], stats, batches


@pytest.mark.parametrize("workers", [1, 2], ids=["one-worker", "two-workers"])
@pytest.mark.parametrize("batch", [1, 97, 5000], ids=["batch-1", "batch-97", "batch-5000"])
def test_alerts_do_not_depend_on_batching_or_workers(
    recording: tuple[Path, Path],
    config: Config,
    reference: Reference,
    workers: int,
    batch: int,
) -> None:
    from bytewax.run import cli_main

    lines = list(iter_lines(recording[0]))
    if batch == 1:
        lines = lines[:3000]  # one event per batch is slow; the first minutes suffice
    (flow, dispatched, dead), stats, _ = _testing_flow(lines, config, reference, batch)
    if workers == 1:
        run_main(flow)
    else:
        cli_main(flow, workers_per_process=workers)
    ids = sorted(d.alert.id for d in dispatched)
    (flow2, dispatched2, _), _, _ = _testing_flow(lines, config, reference, 1000)
    run_main(flow2)
    assert ids == sorted(d.alert.id for d in dispatched2)
    assert len(dead) == sum(stats.dead.values())
    assert stats.events_in == len(lines)


def test_malformed_lines_never_stop_the_flow(config: Config, reference: Reference) -> None:
    lines = [
        b"{not json",
        b'{"type":"gps","ts":"2026-06-15T21:00:00+08:00","entity":"t","lon":121.0,"lat":95.2}',
        b"\xff\xfe\x00garbage",
        b"",
        b'{"type":"sensor","ts":1781528400000,"sensor":"unknown-9","kind":"pm10","value":3}',
        b'{"type":"gps","ts":"2026-06-15T21:00:00+08:00","entity":"t","lon":121.0,"lat":32.0}',
    ]
    (flow, dispatched, dead), stats, _ = _testing_flow(lines, config, reference, 2)
    run_main(flow)
    reasons = sorted(d.reason.partition(":")[0] for d in dead)
    assert reasons == ["gps.lat", "json", "json", "json", "sensor.lon"]
    assert dict(stats.events_ok) == {"gps": 1}
    assert all(d.raw for d in dead if d.reason.startswith("gps"))
