"""CPU per event of the detection step alone: a recording's batches through the
watermark step, the shard split and one ``DetectorSuite`` per shard, in process (no
Bytewax, no Redis, no incidents), as the flow wires them.

Parsing and annotating the batches is done first and not timed; the timed part is
the watermark step plus the shards (``time.process_time``). Run it as a file with
``PYTHONPATH`` set to a tree (``python -m citywatch.benchmarks.replay_versions --tree
REF DIR``) to compare versions of the code on the same recording:

    PYTHONPATH=OLD/pkg python benchmarks/shard_cpu.py city10.jsonl
    PYTHONPATH=NEW/pkg python benchmarks/shard_cpu.py city10.jsonl

Prints the events, the alerts the shards raised (and a digest of their ids, equal for
equal code paths), the CPU seconds and the microseconds per event.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import time
from pathlib import Path

from citywatch.detectors.alerts import Alert
from citywatch.detectors.events import DeadLetter, Event, parse_event
from citywatch.flows.config import Config, load_config
from citywatch.flows.detect import DetectorSuite
from citywatch.flows.pipeline import shard_step
from citywatch.flows.records import EventBatch
from citywatch.flows.stage_watermark import watermark_step
from citywatch.flows.stats import RunStats
from citywatch.geo.reference import Reference
from citywatch.replay.recording import iter_lines, unwrap


def batches(rec: Path, ref: Reference, size: int) -> list[list[Event]]:
    out: list[list[Event]] = []
    lines = iter_lines(rec)
    while chunk := list(itertools.islice(lines, size)):
        events: list[Event] = []
        for line in chunk:
            raw, implied, _env = unwrap(line)
            ev = parse_event(raw, implied, "rec")
            if not isinstance(ev, DeadLetter):
                events.append(ev)
        ref.annotate(events)
        out.append(events)
    return out


def run_shards(
    work: list[list[Event]], cfg: Config, ref: Reference, shards: int
) -> tuple[list[list[Alert]], dict[str, DetectorSuite]]:
    """``work``'s batches through the watermark step, the shard split and one suite per
    shard; returns each batch's alerts (in the order the shards raised them) and the
    suites by shard."""
    stamp = watermark_step(cfg.flow, RunStats())
    split = shard_step(shards)
    catalog = ref.zone_catalog()
    suites: dict[str, DetectorSuite] = {}
    raised: list[list[Alert]] = []
    wm = None
    for events in work:
        wm, stamped = stamp(wm, EventBatch("rec", events, [], 0))
        out: list[Alert] = []
        for shard, sb in split(stamped):
            suite = suites.get(shard)
            if suite is None:
                suite = suites[shard] = DetectorSuite.from_config(cfg, catalog)
            suite.process(
                sb.events, sb.wm_ms, out, heard=sb.heard, clocks=sb.clocks, partition="rec"
            )
        raised.append(out)
    return raised, suites


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recording", type=Path)
    ap.add_argument("--batch", type=int, default=5_000, help="events per input batch")
    ap.add_argument("--shards", type=int, default=8)
    args = ap.parse_args(argv)
    cfg = load_config()
    d = cfg.data
    ref = Reference.load(d.zones, d.jurisdictions, d.sensors, d.cameras, cfg.zone_kinds)
    work = batches(args.recording, ref, args.batch)
    n = sum(map(len, work))
    start = time.process_time()
    raised, _suites = run_shards(work, cfg, ref, args.shards)
    cpu = time.process_time() - start
    alerts = [a for out in raised for a in out]
    digest = hashlib.sha256("\n".join(sorted(a.id for a in alerts)).encode()).hexdigest()[:12]
    print(
        f"events {n:,}, alerts {len(alerts)} ({digest}), CPU {cpu:.2f} s, "
        f"{cpu / n * 1e6:.2f} us/event"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
