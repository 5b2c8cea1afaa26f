"""The lanes' fast path changes nothing: batch by batch, the same alerts as the row-wise
scan of every lane that moved on.

Each batch, a shard hears the clocks of every source of its partition (a city has
thousands of gateways) and its absence and windowed detectors pop what is due in the
lanes that moved on. The fast path (:class:`citywatch.detectors.lanes.Moved`) looks only
at the lanes a detector has something pending in, found once per batch; the reference
walks every lane that moved on, as a plain list, the way it always did. A generated
recording with field noise (skewed and stepped gateway clocks, reordered and late fixes)
goes through the watermark step and the shards as the flow wires them, in both ways:
every batch must raise the same alerts in the same order, and the detectors' state
must end the same.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from citywatch.detectors import watermark
from citywatch.detectors.alerts import Alert
from citywatch.detectors.events import DeadLetter, Event, parse_event
from citywatch.detectors.lanes import LaneClocks, Moved
from citywatch.detectors.state import encode
from citywatch.flows.config import Config
from citywatch.flows.detect import DetectorSuite
from citywatch.flows.pipeline import shard_step
from citywatch.flows.records import EventBatch
from citywatch.flows.stage_watermark import watermark_step
from citywatch.flows.stats import RunStats
from citywatch.geo.reference import Reference
from citywatch.replay.generator import GenParams, generate
from citywatch.replay.recording import iter_lines, unwrap

BATCH = 2_000
SHARDS = 4


@pytest.fixture(scope="module")
def noisy_recording(tmp_path_factory: pytest.TempPathFactory, reference: Reference) -> Path:
    d = tmp_path_factory.mktemp("lanes")
    rec = d / "rec.jsonl"
    params = GenParams(minutes=55, seed=29, scale="medium", noise=True, skewed_gateways_pct=20.0)
    generate(reference, params, rec, d / "truth.json")
    return rec


def batches(rec: Path, reference: Reference) -> Iterator[list[Event]]:
    lines = iter_lines(rec)
    while chunk := list(itertools.islice(lines, BATCH)):
        events: list[Event] = []
        for line in chunk:
            raw, implied, _env = unwrap(line)
            ev = parse_event(raw, implied, "rec")
            if not isinstance(ev, DeadLetter):
                events.append(ev)
        reference.annotate(events)  # type: ignore[arg-type]
        yield events


def run(rec: Path, config: Config, reference: Reference) -> tuple[list[list[str]], list[bytes]]:
    """Each batch's alerts (kind, id, ts) in the order the shards raised them, and each
    shard's state at the end."""
    stamp = watermark_step(config.flow, RunStats())
    split = shard_step(SHARDS)
    catalog = reference.zone_catalog()
    suites: dict[str, DetectorSuite] = {}
    wm: watermark.Watermarker | None = None
    raised: list[list[str]] = []
    for events in batches(rec, reference):
        wm, stamped = stamp(wm, EventBatch("rec", events, [], 0))
        out: list[Alert] = []
        for shard, sb in split(stamped):
            suite = suites.get(shard)
            if suite is None:
                suite = suites[shard] = DetectorSuite.from_config(config, catalog)
            suite.process(
                sb.events, sb.wm_ms, out, heard=sb.heard, clocks=sb.clocks, partition="rec"
            )
        raised.append([f"{a.kind} {a.id} {a.ts_ms}" for a in out])
    states = [encode(suites[name].state()) for name in sorted(suites)]
    return raised, states


def test_lanes_with_pending_work_give_the_alerts_of_a_scan_of_every_lane(
    noisy_recording: Path,
    config: Config,
    reference: Reference,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    looked: list[int] = []
    among = Moved.among

    def counted(self: Moved, names: Iterable[str]) -> list[tuple[str, int]]:
        found = among(self, names)
        looked.append(len(self) - len(found))
        return found

    monkeypatch.setattr(Moved, "among", counted)
    fast, fast_states = run(noisy_recording, config, reference)
    # The fast path was taken, and skipped lanes with nothing pending in them.
    assert len(looked) >= 100
    assert sum(looked) >= 2 * len(looked)
    update = LaneClocks.update

    def scan_all(self: LaneClocks, partition: str, clocks: dict[str, int], cap: int) -> list:
        return list(update(self, partition, clocks, cap))  # a plain list: every lane

    monkeypatch.setattr(LaneClocks, "update", scan_all)
    rows, row_states = run(noisy_recording, config, reference)
    kinds = {line.split()[0] for batch in fast for line in batch}
    # Absence kinds, judged on their lanes' clocks, are there.
    assert {"sensor.offline", "track.gap"} <= kinds
    assert sum(map(len, fast)) >= 10
    assert fast == rows
    assert fast_states == row_states
