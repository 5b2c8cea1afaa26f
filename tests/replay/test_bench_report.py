"""``citywatch bench``: the report's fields, and quality computed from the truth file.

One small recording (40 minutes, every injector once) is benchmarked once,
with the baseline and a short paced run, against a *doctored* copy of its
truth: one injected incident removed (its alert becomes a false alert, so that
kind's precision drops below 1) and one incident added that nothing raises (so
its kind's recall drops below 1). Figures such as events/s are not asserted:
speed belongs in benchmarks/RESULTS.md, not in tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from citywatch.flows.bench import BenchOptions, markdown, percentiles, run_bench
from citywatch.flows.config import Config
from citywatch.geo.reference import Reference
from citywatch.replay.generator import GenParams, generate

pytestmark = [pytest.mark.redis, pytest.mark.slow]

FAKE = {
    "id": "inj-fake",
    "kind": "track.stop",
    "subject": "hz-nobody",
    "zone": None,
    "start": "2026-06-15T13:05:00.000Z",
    "end": "2026-06-15T13:10:00.000Z",
    "note": "never happens: recall of track.stop must drop",
}


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory, reference: Reference) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("bench")
    rec, truth = d / "r.jsonl", d / "t.json"
    generate(reference, GenParams(minutes=40, seed=7), rec, truth)
    return rec, truth


def doctored_truth(truth: Path, out: Path) -> tuple[Path, str]:
    """The truth without its first geofence.enter incident and with ``FAKE`` added."""
    doc: dict[str, Any] = orjson.loads(truth.read_bytes())
    removed = next(i for i in doc["incidents"] if i["kind"] == "geofence.enter")
    doc["incidents"] = [i for i in doc["incidents"] if i is not removed] + [FAKE]
    out.write_bytes(orjson.dumps(doc))
    return out, removed["kind"]


def test_bench_reports_every_figure_and_scores_against_the_truth_file(
    recording: tuple[Path, Path],
    tmp_path: Path,
    redis_url: str,
    config: Config,
    reference: Reference,
) -> None:
    rec, truth = recording
    truth2, removed_kind = doctored_truth(truth, tmp_path / "truth-doctored.json")
    opts = BenchOptions(
        paths=(rec,),
        out=tmp_path / "report",
        truth=truth2,
        redis_url=redis_url,
        paced_rate=4000.0,
        paced_seconds=1.5,
        compare=True,
        progress=False,
        command="pytest",
    )
    report = run_bench(opts, config, reference)

    # Written as JSON and Markdown, and the JSON is the returned report.
    assert orjson.loads((opts.out / "report.json").read_bytes()) == orjson.loads(
        orjson.dumps(report)
    )
    assert (opts.out / "report.md").read_text() == markdown(report)

    lines = sum(1 for _ in rec.open("rb")) - 1  # minus the header line
    assert report["recording"]["lines"] == lines
    assert 40 * 60 - 10 < report["recording"]["event_span_s"] <= 40 * 60
    flow = report["flow"]
    assert flow["events"] == lines
    assert flow["events_per_s"] > 0 and flow["peak_rss_mb"] > 0
    assert flow["redis"]["peak_rss_mb"] > 0  # read from the server's /proc entry
    assert flow["alerts"] == sum(flow["alerts_by_kind"].values()) > 0
    assert flow["work_orders"] == sum(flow["work_orders_by_kind"].values()) > 0
    assert flow["incidents"] == sum(flow["incidents_by_kind"].values()) > 0
    assert set(flow["work_orders_by_kind"]) <= set(flow["alerts_by_kind"])

    # The baseline finds exactly the flow's alerts and dispatches as many work orders.
    base = report["baseline"]
    assert base["same_alerts"], (base["only_flow"], base["only_baseline"])
    assert base["events"] == lines
    assert base["work_orders_by_kind"] == flow["work_orders_by_kind"]
    assert base["flow_over_baseline"] > 0
    assert 0 < base["distinct_keys"] <= base["live_keys_at_end"]

    # The paced run covers the first rate × seconds lines and measures each alert.
    paced = report["paced"]
    assert paced["events"] == 6000
    lat = paced["latency_ms"]
    assert lat["count"] >= 1
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]

    # Quality comes from the (doctored) truth file, kind by kind.
    q = report["quality"]["per_kind"]
    assert q[removed_kind]["precision"] < 1.0  # its alert now matches no incident
    assert q[removed_kind]["alerts"] - q[removed_kind]["true_alerts"] == 1
    assert q["track.stop"]["recall"] < 1.0  # the fake incident is never found
    assert q["track.stop"]["incidents"] - q["track.stop"]["found"] == 1
    assert report["quality"]["missed"] == ["inj-fake track.stop hz-nobody"]
    others = {k: v for k, v in q.items() if k not in (removed_kind, "track.stop")}
    assert others and all(v["precision"] == v["recall"] == 1.0 for v in others.values())

    aims = report["aims"]
    assert set(aims) == {"events_per_s", "peak_rss", "p99_latency"}
    assert all(isinstance(a["met"], bool) for a in aims.values())


def test_percentiles_of_nothing_and_of_a_known_list() -> None:
    assert percentiles([])["p99"] is None
    got = percentiles([float(x) for x in range(1, 101)])
    assert (got["count"], got["p50"], got["max"]) == (100, 50.5, 100.0)
