"""Real public tracks (AIS, GPX) imported onto Nantong with their metric geometry."""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import orjson
import pytest

from citywatch.benchmarks.real_tracks import measure
from citywatch.detectors.events import DeadLetter, GpsEvent, parse_event
from citywatch.flows.cli import main
from citywatch.flows.config import Config
from citywatch.geo.distance import haversine_m
from citywatch.replay.real_tracks import (
    NANTONG,
    Fix,
    FormatError,
    read_all,
    read_gpx,
    read_marinecadastre,
    read_tracktable,
    relocate,
)

REAL = Path(__file__).resolve().parents[2] / "data" / "real"
AIS = REAL / "tracktable" / "NYHarbor_2020_12_08.traj"
GPX = sorted((REAL / "gpx").glob("*.gpx"))
FIT = sorted((REAL / "fit").glob("*.gpx.gz"))


def test_the_extracts_ship_with_their_licences() -> None:
    assert (REAL / "tracktable" / "LICENSE.txt").read_text().find("Sandia") >= 0
    assert "Apache License" in (REAL / "gpx" / "LICENSE.txt").read_text()
    for name in (
        "fit/LICENSE-python-fitparse.txt",
        "fit/LICENSE-tormoder-fit.txt",
        "runpandas/LICENSE-runpandas.txt",
    ):
        assert (REAL / name).read_text().startswith(("MIT License", "The MIT License"))
    assert sum(p.stat().st_size for p in REAL.rglob("*")) < 4_000_000


def test_tracktable_ais_reads_as_vessels_of_new_york_harbour() -> None:
    fixes = list(read_tracktable(AIS))
    assert len(fixes) > 5000 and len({f.entity for f in fixes}) > 30
    assert all(-74.4 < f.lon < -73.6 and 40.4 < f.lat < 41.0 for f in fixes)
    assert all(f.entity.isdigit() for f in fixes)  # MMSI


def test_relocation_keeps_distances_and_lands_on_nantong() -> None:
    fixes = read_all("tracktable", [AIS])
    moved = relocate(fixes)
    by_entity: dict[str, list[int]] = {}
    for i, f in enumerate(fixes):
        by_entity.setdefault(f.entity, []).append(i)
    checked = 0
    for idx in by_entity.values():
        for i, j in zip(idx, idx[1:], strict=False):
            before = haversine_m(fixes[i].lon, fixes[i].lat, fixes[j].lon, fixes[j].lat)
            after = haversine_m(moved[i].lon, moved[i].lat, moved[j].lon, moved[j].lat)
            if before > 50:
                assert after == pytest.approx(before, rel=0.01)
                checked += 1
    assert checked > 1000
    lons, lats = sorted(f.lon for f in moved), sorted(f.lat for f in moved)
    assert lons[len(lons) // 2] == pytest.approx(NANTONG[0], abs=1e-6)
    assert lats[len(lats) // 2] == pytest.approx(NANTONG[1], abs=1e-6)
    assert [f.ts_ms for f in moved] == [f.ts_ms for f in fixes]


def test_gpx_tracks_read_with_times_only() -> None:
    fixes = [f for p in GPX for f in read_gpx(p)]
    assert len({f.entity for f in fixes}) >= 3
    assert all(f.entity.split("#")[0] in {p.stem for p in GPX} for f in fixes)


def test_fit_extracts_read_gzipped_as_tracks_at_one_to_five_seconds() -> None:
    fixes = read_all("gpx", FIT)
    by: dict[str, list[int]] = {}
    for f in fixes:
        by.setdefault(f.entity, []).append(f.ts_ms)
    assert len(by) == len(FIT) == 20
    assert {e.split("#")[0] for e in by} == {p.name.removesuffix(".gpx.gz") for p in FIT}
    steps = sorted(b - a for ts in by.values() for a, b in zip(ts, ts[1:], strict=False))
    assert steps[len(steps) // 2] == 1000 and steps[(9 * len(steps)) // 10] <= 5000
    assert sum(s for s in steps if s <= 1_800_000) / 3_600_000 > 30  # vehicle-hours
    assert sum(f.speed_kmh is not None for f in fixes) > len(fixes) // 2  # the device's


def test_a_gzipped_file_that_is_not_gzip_is_a_format_error(tmp_path: Path) -> None:
    bad = tmp_path / "track.gpx.gz"
    bad.write_text("<gpx></gpx>")
    with pytest.raises(FormatError, match="not a GPX file"):
        list(read_gpx(bad))


def test_relocating_each_track_keeps_far_apart_tracks_true_to_scale() -> None:
    # a ride in Toronto (43.7 N) and one in Shanghai (31.3 N): moved as one set, the
    # Toronto ride lands 1,000s of km from Nantong, its east-west metres scaled by the
    # set centre's latitude; moved each on its own, both keep their distances
    two = [p for p in FIT if p.name.startswith(("garmin-edge-500", "2019-02-17"))]
    fixes = read_all("gpx", two)
    assert len({f.entity for f in fixes}) == 2

    def worst(moved: list[Fix]) -> float:
        pairs: dict[str, tuple[Fix, Fix]] = {}
        for a, b in zip(fixes, moved, strict=True):
            if a.entity not in pairs or a.ts_ms % 600_000 == 0:
                pairs[a.entity] = (a, b)
        errs = []
        for a, b in zip(fixes, moved, strict=True):
            a0, b0 = pairs[a.entity]
            d = haversine_m(a0.lon, a0.lat, a.lon, a.lat)
            if d > 500:
                errs.append(abs(haversine_m(b0.lon, b0.lat, b.lon, b.lat) / d - 1))
        return max(errs)

    each = relocate(fixes, each=True)
    assert worst(each) < 0.01 < worst(relocate(fixes))
    assert [(f.entity, f.ts_ms) for f in each] == [(f.entity, f.ts_ms) for f in fixes]
    for entity in {f.entity for f in fixes}:
        mine = [f for f in each if f.entity == entity]
        assert haversine_m(*NANTONG, mine[len(mine) // 2].lon, mine[len(mine) // 2].lat) < 30_000


def test_marinecadastre_csv_speed_in_km_h(tmp_path: Path) -> None:
    csv = tmp_path / "ais.csv"
    csv.write_text(
        "BaseDateTime,LON,LAT,MMSI,SOG,COG,Heading\n"
        "2020-06-30T00:00:00,-74.07,40.64,367000140,10.0,-60.0,246\n"
        "2020-06-30T00:01:00,-74.06,40.64,367000140,102.3,360.0,246\n"
    )
    a, b = list(read_marinecadastre(csv))
    assert (a.entity, a.speed_kmh, a.heading) == ("367000140", pytest.approx(18.52), 300.0)
    assert b.speed_kmh is None  # 102.3 knots: not available


def test_import_command_writes_a_replayable_recording(tmp_path: Path) -> None:
    out = tmp_path / "ais.jsonl.gz"
    args = ["import", "tracktable", str(AIS), "-o", str(out), "--class", "hazmat_truck:2,tanker:1"]
    assert main([*args, "--start", "2026-01-05T00:00:00Z"]) == 0
    lines = gzip.decompress(out.read_bytes()).splitlines()
    assert orjson.loads(lines[0])["importer"]["format"] == "tracktable"
    events = [parse_event(line) for line in lines[1:]]
    assert not [e for e in events if isinstance(e, DeadLetter)]
    gps = [e for e in events if isinstance(e, GpsEvent)]
    assert Counter(e.cls for e in gps).keys() == {"hazmat_truck", "tanker"}
    assert min(e.ts_ms for e in gps) == 1_767_571_200_000
    assert all(e.entity.startswith("tracktable-") for e in gps)
    assert [e.ts_ms for e in gps] == sorted(e.ts_ms for e in gps)


def test_import_command_names_a_bad_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.traj"
    bad.write_text(
        "*T*,x,terrestrial,1,0,*P*,terrestrial,2,1,1,0,1,2020-12-01 11:31:39,-74.0,40.7\nhello\n"
    )
    assert main(["import", "tracktable", str(bad), "-o", str(tmp_path / "o.jsonl")]) == 2
    assert f"{bad}:2: not a tracktable trajectory line" in capsys.readouterr().err
    with pytest.raises(FormatError):
        list(read_tracktable(bad))


@pytest.mark.slow
def test_real_ais_through_the_flow_never_repeats_a_stop_alert(config: Config) -> None:
    verdict = measure("ais", "tracktable", [AIS], config)
    assert verdict.alerts["track.stop"] > 10
    repeats = [r for r in verdict.reasons if "repeated alert for one stay" in r]
    assert repeats == []
    assert verdict.false["track.stop"] == 0


@pytest.mark.slow
def test_real_ais_alerts_do_not_depend_on_batch_size(config: Config) -> None:
    # A day of AIS: vessels come and go (newcomers are judged by their fleet, learned
    # while the day goes on) and one tanker meets another vessel. Every alert must be
    # the same whatever the batch boundaries. A batch of 5,000 fixes holds hours of
    # this day: the rendezvous stage once forgot a span by the clock of the shard that
    # ran ahead and lost that meeting at 5,000 only.
    import dataclasses

    from citywatch.benchmarks.real_tracks import _replay
    from citywatch.replay.real_tracks import class_picker, to_events

    fixes = relocate(read_all("tracktable", [AIS]))
    events = list(to_events(fixes, "tracktable", class_picker("hazmat_truck:2,tanker:1")))
    lines = [orjson.dumps(ev) for ev in events]
    runs = []
    for size in (7, 500, 5000):
        cfg = dataclasses.replace(config, flow=dataclasses.replace(config.flow, batch_size=size))
        alerts, _dead = _replay(cfg, lines, [f.ts_ms for f in fixes])
        runs.append(sorted(orjson.dumps(a.to_json()) for a in alerts))
    kinds = Counter(orjson.loads(a)["kind"] for a in runs[0])
    assert kinds["track.gap"] > 40 and kinds["track.rendezvous"] >= 1
    assert runs[0] == runs[1] == runs[2]


@pytest.mark.slow
def test_one_second_tracks_give_the_same_alerts_at_every_batch_size(config: Config) -> None:
    # Three real 1 s tracks (a ride with a long stop and pauses, two rides over a
    # residential zone's limit) in one stream, each fix arriving at its own time: the
    # same alerts, byte for byte, in batches of 1, 7, 500 and 5,000 fixes.
    import dataclasses

    from citywatch.benchmarks.real_tracks import _replay
    from citywatch.replay.real_tracks import class_picker, to_events

    names = ("mornindew-broken", "null_compressed_speed_dist", "2015-10-13-08-43-15")
    fixes = relocate(read_all("gpx", [REAL / "fit" / f"{n}.gpx.gz" for n in names]), each=True)
    events = list(to_events(fixes, "gpx", class_picker("hazmat_truck:2,tanker:1")))
    lines = [orjson.dumps(ev) for ev in events]
    runs = []
    for size in (1, 7, 500, 5000):
        cfg = dataclasses.replace(config, flow=dataclasses.replace(config.flow, batch_size=size))
        alerts, _dead = _replay(cfg, lines, [f.ts_ms for f in fixes])
        runs.append(sorted(orjson.dumps(a.to_json()) for a in alerts))
    kinds = Counter(orjson.loads(a)["kind"] for a in runs[0])
    assert kinds["track.gap"] >= 3 and kinds["track.stop"] >= 1 and kinds["track.speeding"] >= 1
    assert runs[0] == runs[1] == runs[2] == runs[3]


def test_verdicts_compare_alert_by_alert(tmp_path: Path) -> None:
    from citywatch.benchmarks.real_tracks import compare

    def row(subject: str, first_ts: int, false: str | None) -> dict[str, object]:
        return {
            "set": "ais",
            "kind": "track.gap",
            "subject": subject,
            "first_ts": first_ts,
            "ts": first_ts + 300_000,
            "follow_up": False,
            "evidence": {},
            "false": false,
        }

    before, after = tmp_path / "before.jsonl", tmp_path / "after.jsonl"
    before.write_bytes(
        b"\n".join(orjson.dumps(r) for r in (row("a", 1, "a dropout of 360 s"), row("b", 2, None)))
    )
    after.write_bytes(orjson.dumps(row("b", 2, None)) + b"\n" + orjson.dumps(row("c", 3, None)))
    text = compare(before, after)
    assert "gone track.gap: 1 (1 false, 0 right" in text
    assert "false: a {}: a dropout of 360 s" in text
    assert "new track.gap: 1 (0 false, 1 right" in text
