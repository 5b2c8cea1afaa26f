"""Hot reload of the zones file: mid-stream, on file change, on SIGHUP; bad files rejected."""

from __future__ import annotations

import dataclasses
import io
import os
import signal
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from citywatch.detectors.alerts import Alert
from citywatch.flows.config import Config
from citywatch.flows.detect import DetectorSuite, ShardLogic
from citywatch.flows.pipeline import ReferenceHolder, parse_step
from citywatch.flows.records import RawBatch, ShardBatch
from citywatch.flows.stats import RunStats
from citywatch.flows.zone_reload import ZoneReloader
from citywatch.geo.reference import Reference

T0 = 1_781_528_400_000  # 2026-06-15T21:00+08:00
# A spot in no bundled zone, where the new file adds an "airport_site" zone.
SPOT = (121.10, 32.30)
NEW_ZONE = {
    "type": "Feature",
    "properties": {"id": "airport-site-east", "name": "East extension", "kind": "airport_site"},
    "geometry": {
        "type": "Polygon",
        "coordinates": [
            [[121.09, 32.29], [121.11, 32.29], [121.11, 32.31], [121.09, 32.31], [121.09, 32.29]]
        ],
    },
}


def zones_doc(config: Config) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(config.data.zones.read_bytes())
    return doc


@pytest.fixture()
def setup(
    tmp_path: Path, config: Config, reference: Reference
) -> tuple[Config, Path, ReferenceHolder]:
    path = tmp_path / "zones.geojson"
    path.write_bytes(config.data.zones.read_bytes())
    cfg = dataclasses.replace(config, data=dataclasses.replace(config.data, zones=path))
    return cfg, path, ReferenceHolder(reference)


def write_with_new_zone(config: Config, path: Path, **props: Any) -> None:
    doc = zones_doc(config)
    feat = {**NEW_ZONE, "properties": {**NEW_ZONE["properties"], **props}}
    doc["features"].append(feat)
    path.write_bytes(orjson.dumps(doc))


def fixes(start: int, n: int, entity: str = "muck-r1") -> RawBatch:
    lines = [
        orjson.dumps(
            {
                "type": "gps",
                "ts": T0 + (start + i) * 20_000,
                "entity": entity,
                "class": "muck_truck",
                "lon": SPOT[0],
                "lat": SPOT[1],
            }
        )
        for i in range(n)
    ]
    return RawBatch("recording", lines, 0)


def test_reload_mid_stream_applies_new_zones_to_later_events(
    setup: tuple[Config, Path, ReferenceHolder],
) -> None:
    # batch   1 (fixes 0-4)      reload      2 (fixes 5-9)
    # zones   none at the spot   + airport   airport-site-east
    # alerts  -                              geofence.enter at fix 5
    cfg, path, holder = setup
    parse = parse_step(holder, RunStats())
    logic = ShardLogic(
        lambda: DetectorSuite.from_config(cfg, holder.catalog()), holder.catalog, None
    )

    def run(batch: RawBatch) -> list[Alert]:
        events = parse(batch).events
        out, _ = logic.on_batch([ShardBatch(events, events[0].ts_ms - 30_000, 0)])
        # a shard emits alert lists or objects carrying ``alerts`` (and other outputs)
        return [a for item in out for a in getattr(item, "alerts", item)]

    first = run(fixes(0, 5))
    assert first == []
    write_with_new_zone(cfg, path)
    reloader = ZoneReloader(holder, cfg, log=io.StringIO())
    assert reloader.reload_now() is True
    second = run(fixes(5, 5))
    assert [(a.kind, a.zone, a.ts_ms) for a in second] == [
        ("geofence.enter", "airport-site-east", T0 + 5 * 20_000)
    ]
    assert "airport-site-east" in holder.catalog()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [
                        [[121, 32], [121.1, 32.1], [121.1, 32], [121, 32.1], [121, 32]]
                    ],
                }
            },
            "invalid geometry: Self-intersection",
        ),
        (
            {"properties": {**NEW_ZONE["properties"], "rules": {"dwell": {"dwel_s": 60}}}},
            "zone 'airport-site-east' rules.dwell: unknown setting(s) dwel_s",
        ),
        ({"properties": {**NEW_ZONE["properties"], "kind": "volcano"}}, "unknown kind 'volcano'"),
    ],
    ids=["self-intersection", "bad-rule-field", "unknown-kind"],
)
def test_a_bad_new_file_is_rejected_and_the_old_zones_stay(
    setup: tuple[Config, Path, ReferenceHolder], change: dict[str, Any], message: str
) -> None:
    cfg, path, holder = setup
    doc = zones_doc(cfg)
    doc["features"].append({**NEW_ZONE, **change})
    path.write_bytes(orjson.dumps(doc))
    before, catalog = holder.ref, holder.catalog()
    log = io.StringIO()
    reloader = ZoneReloader(holder, cfg, log=log)
    assert reloader.reload_now() is False
    assert holder.ref is before and holder.catalog() is catalog
    assert reloader.rejected == 1 and any(message in p for p in reloader.last_errors)
    assert "zones reload rejected, the previous zones stay in force" in log.getvalue()
    assert message in log.getvalue()


def wait_for(event: threading.Event) -> None:
    assert event.wait(20), "the reloader did not react"


def test_the_watcher_reloads_when_the_file_changes(
    setup: tuple[Config, Path, ReferenceHolder],
) -> None:
    cfg, path, holder = setup
    done = threading.Event()
    reloader = ZoneReloader(
        holder, cfg, poll_s=0.05, log=io.StringIO(), on_reload=lambda ok: done.set()
    ).start()
    try:
        write_with_new_zone(cfg, path)
        wait_for(done)
    finally:
        reloader.stop()
    assert reloader.reloads == 1
    assert "airport-site-east" in holder.catalog()


def test_sighup_reloads_the_zones(setup: tuple[Config, Path, ReferenceHolder]) -> None:
    cfg, path, holder = setup
    done = threading.Event()
    reloader = ZoneReloader(
        holder, cfg, poll_s=3600, log=io.StringIO(), on_reload=lambda ok: done.set()
    )
    write_with_new_zone(cfg, path)
    reloader._seen = reloader._stamp()  # the watcher alone would not notice
    previous = signal.getsignal(signal.SIGHUP)
    reloader.start()
    try:
        os.kill(os.getpid(), signal.SIGHUP)
        wait_for(done)
    finally:
        reloader.stop()
    assert reloader.reloads == 1
    assert "airport-site-east" in holder.catalog()
    assert signal.getsignal(signal.SIGHUP) == previous
