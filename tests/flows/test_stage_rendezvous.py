"""Track detectors inside the flow: the cross-key rendezvous stage, teleports to the
dead letters, and wall-clock timers for track.gap.

Scripted traffic (minutes after T0), at a spot outside every zone::

    t(min)   0    1    3         9    11        20   21.75   36.75 37.75
    tk-1     [parked at P ..........................]  silent: track.gap ^
    hz-a          [10 m east .......................]  silent: track.gap ^
    mk-b               [10 m west ..................]  silent (parked, 15 min): ^
    hz-j     drives from 3 km east at 36 km/h; one fix 48 km off at 5 -> dead letter
    alerts                       ^tk-1+hz-a ^tk-1+mk-b       ^ gap
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from bytewax.testing import TestingSink, TestingSource, run_main

from citywatch.detectors.alerts import Alert
from citywatch.detectors.events import DeadLetter, GpsEvent, format_ts
from citywatch.flows.config import Config
from citywatch.flows.detect import DetectorSuite, ShardLogic, ShardOutput
from citywatch.flows.pipeline import FlowOutputs, ReferenceHolder, build_flow
from citywatch.flows.records import RawBatch, ShardBatch
from citywatch.flows.stats import RunStats
from citywatch.geo.distance import offset_deg
from citywatch.geo.reference import Reference

T0 = 1_781_528_400_000  # 2026-06-15T13:00:00Z
MIN = 60_000
LON, LAT = 120.95, 32.25  # outside every sample zone


def _line(ts: int, entity: str, cls: str, east_m: float, speed: float = 0.0) -> bytes:
    dlon, _ = offset_deg(LAT, east_m, 0.0)
    return orjson.dumps(
        {
            "type": "gps",
            "ts": format_ts(ts),
            "entity": entity,
            "class": cls,
            "lon": round(LON + dlon, 7),
            "lat": LAT,
            "speed": speed,
        }
    )


def scripted_lines() -> list[bytes]:
    rows: list[tuple[int, bytes]] = []
    for k in range(0, 22 * 4):
        t = T0 + k * 15_000
        rows.append((t, _line(t, "tk-1", "tanker", 0)))
        if k >= 4:
            rows.append((t + 300, _line(t + 300, "hz-a", "hazmat_truck", 10)))
        if k >= 12:
            rows.append((t + 600, _line(t + 600, "mk-b", "muck_truck", -10)))
    for k in range(0, 38 * 4):
        t = T0 + k * 15_000 + 900
        east = 48_000 if k == 20 else 3000 + k * 150  # driving east at 36 km/h
        rows.append((t, _line(t, "hz-j", "hazmat_truck", east, 36.0)))
    return [line for _, line in sorted(rows, key=lambda r: r[0])]


def _run(
    config: Config, reference: Reference, batch: int, workers: int
) -> tuple[list[Alert], list[DeadLetter], RunStats]:
    from bytewax.run import cli_main

    lines = scripted_lines()
    batches = [RawBatch("recording", lines[i : i + batch], 0) for i in range(0, len(lines), batch)]
    dispatched: list = []
    dead: list[DeadLetter] = []
    stats = RunStats()
    flow = build_flow(
        TestingSource(batches),
        FlowOutputs(dispatch=TestingSink(dispatched), dead=TestingSink(dead)),
        config,
        ReferenceHolder(reference),
        stats,
    )
    if workers == 1:
        run_main(flow)
    else:
        cli_main(flow, workers_per_process=workers)
    return [d.alert for d in dispatched], dead, stats


@pytest.fixture(scope="module")
def reference_run(config: Config, reference: Reference) -> tuple[list[Alert], list[DeadLetter]]:
    alerts, dead, stats = _run(config, reference, 400, 1)
    assert stats.dead["gps.jump"] == 1
    return alerts, dead


def test_flow_finds_the_rendezvous_pairs_the_gap_and_the_teleport(
    reference_run: tuple[list[Alert], list[DeadLetter]],
) -> None:
    alerts, dead = reference_run
    rdv = sorted(
        (a.subject, a.evidence["partner"], round((a.ts_ms - T0) / MIN, 1))
        for a in alerts
        if a.kind == "track.rendezvous"
    )
    assert rdv == [("tk-1", "hz-a", 9.0), ("tk-1", "mk-b", 11.0)]
    # All three fall silent at 21.75; hz-j reports on, so event time passes their deadlines.
    gaps = sorted(
        (a.subject, round((a.first_ts_ms - T0) / MIN, 1)) for a in alerts if a.kind == "track.gap"
    )
    assert gaps == [("hz-a", 21.8), ("mk-b", 21.8), ("tk-1", 21.8)]
    assert [d.reason.partition(":")[0] for d in dead] == ["gps.jump"]
    assert orjson.loads(dead[0].raw)["entity"] == "hz-j"
    assert not any(a.subject == "hz-j" for a in alerts)  # the teleport touched no detector


@pytest.mark.parametrize("workers", [1, 2], ids=["one-worker", "two-workers"])
@pytest.mark.parametrize("batch", [1, 13], ids=["batch-1", "batch-13"])
def test_track_alerts_do_not_depend_on_batching_or_workers(
    config: Config,
    reference: Reference,
    reference_run: tuple[list[Alert], list[DeadLetter]],
    workers: int,
    batch: int,
) -> None:
    alerts, dead, _ = _run(config, reference, batch, workers)
    expected_alerts, expected_dead = reference_run
    assert sorted(a.id for a in alerts) == sorted(a.id for a in expected_alerts)
    # The whole alert, less the incident id that the incident stage assigns downstream.
    assert _track_json(alerts) == _track_json(expected_alerts)
    assert [d.reason for d in dead] == [d.reason for d in expected_dead]


def _track_json(alerts: list[Alert]) -> list[bytes]:
    return sorted(
        orjson.dumps({**a.to_json(), "incident": None})
        for a in alerts
        if a.kind.startswith("track")
    )


def test_wall_clock_timers_fire_a_gap_while_input_is_quiet(config: Config) -> None:
    # wall     12:00:00  (fixes at 11:59:30 and 11:59:45)  ... 12:04:48 on_notify
    # wm = now - 30 s; track.gap decides near the front, wm + 28 s = now - 2 s
    # = 12:04:46 > 11:59:45 + 300 s: track.gap, ts from the last fix
    now = [datetime(2026, 6, 15, 12, 0, tzinfo=UTC)]
    t_ms = int(now[0].timestamp() * 1000)
    logic = ShardLogic(
        lambda: DetectorSuite.from_config(config, {}),
        lambda: {},
        None,
        timers="wall",
        lag_ms=30_000,
        now=lambda: now[0],
    )
    assert logic.notify_at() == now[0] + timedelta(seconds=1)
    fixes = [
        GpsEvent(t_ms - 30_000, "hz-1", LON, LAT, "hazmat_truck", 40.0),
        GpsEvent(t_ms - 15_000, "hz-1", LON + 0.002, LAT, "hazmat_truck", 40.0),
    ]
    # Every activation reports the shard's watermark (for the incident stage), alerts
    # or not; what matters here is when the gap alert comes.
    out, _ = logic.on_batch([ShardBatch(fixes, t_ms - 60_000, 0)])
    assert [a for r in out for a in r.alerts] == []
    now[0] += timedelta(minutes=4, seconds=46)  # 12:04:46: the front clock at 12:04:44
    assert [a for r in logic.on_notify()[0] for a in r.alerts] == []
    now[0] += timedelta(seconds=2)
    res = list(logic.on_notify()[0])
    assert len(res) == 1 and isinstance(res[0], ShardOutput)
    assert res[0].wm_ms == int(now[0].timestamp() * 1000) - 30_000
    assert [(a.kind, a.first_ts_ms, a.ts_ms) for a in res[0].alerts] == [
        ("track.gap", t_ms - 15_000, t_ms - 15_000 + 300_000)
    ]


def test_event_time_timers_never_ask_for_a_wall_clock_wake_up(config: Config) -> None:
    logic = ShardLogic(lambda: DetectorSuite.from_config(config, {}), lambda: {}, None)
    assert logic.notify_at() is None
