"""Field noise of ``citywatch generate``: deterministic, present, labelled where it should alert.

The noise stage draws from its own random stream, so a noisy run without the
extra injectors (``sensor_faults`` and ``overlapping_incidents`` off) carries the
clean run's events underneath: the tests compare the two event by event.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest

from citywatch.detectors.events import parse_ts
from citywatch.flows.config import Config
from citywatch.flows.runner import run_recordings
from citywatch.geo.distance import haversine_m
from citywatch.geo.reference import Reference
from citywatch.replay.generator import Generator, GenParams, generate
from citywatch.replay.recording import iter_lines
from citywatch.replay.truth import score

LOUD = {
    "multipath_per_mille": 20.0,
    "dropout_per_mille": 10.0,
    "duplicate_per_mille": 20.0,
    "reorder_per_mille": 30.0,
}

# Only the clocks noisy: no jitter, multipath, dropouts, duplicates or reordering.
NO_GPS_NOISE = {
    "gps_jitter_m": 0.0,
    "multipath_per_mille": 0.0,
    "dropout_per_mille": 0.0,
    "duplicate_per_mille": 0.0,
    "reorder_per_mille": 0.0,
}


def _noise_only(base: GenParams, **levels: Any) -> GenParams:
    """``base`` with noise on but none of the noisy run's extra injectors: the clean
    run's events stay underneath, comparable one by one."""
    return dataclasses.replace(
        base, noise=True, sensor_faults=False, overlapping_incidents=False, **levels
    )


def _events(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in iter_lines(path):
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(obj, dict) and "ts" in obj and isinstance(obj["ts"], str):
            out.append(obj)
    return out


def test_noise_is_off_for_small_and_same_seed_gives_same_bytes(
    tmp_path: Path, reference: Reference
) -> None:
    p = GenParams(minutes=8, seed=4, noise=True, **LOUD)
    generate(reference, p, tmp_path / "a.jsonl", tmp_path / "a.json")
    generate(reference, p, tmp_path / "b.jsonl", tmp_path / "b.json")
    generate(reference, dataclasses.replace(p, seed=5), tmp_path / "c.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert (tmp_path / "a.jsonl").read_bytes() != (tmp_path / "c.jsonl").read_bytes()
    # small without --noise: no noise fields in the header, no noise in the truth
    truth = generate(reference, GenParams(minutes=8, seed=4), tmp_path / "d.jsonl")
    assert truth.noise == {}
    header = orjson.loads(next(iter(Path(tmp_path / "d.jsonl").read_bytes().splitlines())))
    assert "gps_jitter_m" not in str(header)


def test_every_gps_noise_kind_appears(tmp_path: Path, reference: Reference) -> None:
    base = GenParams(minutes=12, seed=6, bad_per_mille=0.0, late_per_mille=0.0)
    noisy = _noise_only(base, skewed_gateways_pct=0.0, clock_steps_pct=0.0, **LOUD)
    generate(reference, base, tmp_path / "clean.jsonl")
    truth = generate(reference, noisy, tmp_path / "noisy.jsonl")
    clean, got = _events(tmp_path / "clean.jsonl"), _events(tmp_path / "noisy.jsonl")
    fixes = {(e["entity"], e["ts"]): e for e in clean if e["type"] == "gps"}
    noisy_fixes = [e for e in got if e["type"] == "gps"]
    # duplicates: the same line twice
    lines = Counter(orjson.dumps(e) for e in got)
    assert sum(n - 1 for n in lines.values()) == truth.noise["duplicates"] > 0
    # dropouts: fixes missing; multipath: single fixes 100-500 m off (jitter is ~5 m)
    kept = {(e["entity"], e["ts"]) for e in noisy_fixes}
    assert len(set(fixes) - kept) == truth.noise["dropped_fixes"] > 0
    off = [
        haversine_m(e["lon"], e["lat"], fixes[k]["lon"], fixes[k]["lat"])
        for e in noisy_fixes
        if (k := (e["entity"], e["ts"])) in fixes
    ]
    far = [d for d in off if d > 60]
    assert 0 < len(set(far)) <= truth.noise["multipath_fixes"]
    assert all(d < 520 for d in far)
    assert sorted(off)[len(off) // 2] < 15  # jitter of a few metres
    # out of order: a fix arriving after a later fix of the same vehicle
    last: dict[str, int] = {}
    behind = 0
    for e in noisy_fixes:
        ts = parse_ts(e["ts"])
        behind += ts < last.get(e["entity"], ts)
        last[e["entity"]] = max(ts, last.get(e["entity"], ts))
    assert behind > 0 and truth.noise["out_of_order_fixes"] >= behind // 2


def test_gateway_clock_skew_and_steps_shift_timestamps(
    tmp_path: Path, reference: Reference
) -> None:
    base = GenParams(minutes=10, seed=8, bad_per_mille=0.0, late_per_mille=0.0)
    noisy = _noise_only(
        base,
        **NO_GPS_NOISE,
        skewed_gateways_pct=60.0,
        max_skew_s=4.0,
        clock_steps_pct=50.0,
        max_step_s=600.0,
    )
    generate(reference, base, tmp_path / "clean.jsonl")
    truth = generate(reference, noisy, tmp_path / "noisy.jsonl")
    assert truth.noise["skewed_gateways"] > 0 and truth.noise["stepped_gateways"] > 0

    def by_sensor(events: list[dict[str, Any]]) -> dict[str, list[int]]:
        out: dict[str, list[int]] = defaultdict(list)
        for e in events:
            if e["type"] == "sensor":
                out[e["sensor"]].append(parse_ts(e["ts"]))
        return out

    clean, got = (
        by_sensor(_events(tmp_path / "clean.jsonl")),
        by_sensor(_events(tmp_path / "noisy.jsonl")),
    )
    assert set(clean) == set(got)
    shifts = Counter()
    for sid, times in clean.items():
        assert len(got[sid]) == len(times)  # a skewed reading is still a reading
        for t, u in zip(times, got[sid], strict=True):
            d = u - t
            assert abs(d) <= 4_000 + 600_000
            shifts["skew" if 0 < abs(d) <= 4_000 else "step" if d else "none"] += 1
    assert shifts["skew"] > 0 and shifts["step"] > 0
    assert sum(shifts.values()) - shifts["none"] <= truth.noise["skewed_events"]


def test_sensor_faults_and_overlaps_are_labelled(reference: Reference) -> None:
    # Truth only (no events emitted): medium copies give the faults their sensors.
    gen = Generator(reference, GenParams(minutes=200, seed=21, scale="medium", noise=True))
    incidents = gen.truth.incidents

    def labelled(kind: str, note: str) -> list[dict[str, Any]]:
        return [i for i in incidents if i["kind"] == kind and note in i["note"]]

    drift = labelled("sensor.anomaly", "drifting")
    assert len(drift) == 1
    d = drift[0]
    (t0, t1, ramp) = gen.sensor_override[d["subject"]][0]
    assert parse_ts(d["start"]) == t0 and parse_ts(d["end"]) >= t1  # the whole ramp
    rise = [ramp(t0 + k * 600_000) for k in range((t1 - t0) // 600_000)]
    assert rise[-1] - rise[0] > 14  # ~20 dB over two hours, in noise of 2 dB
    stuck = labelled("sensor.stuck", "stuck")
    assert len(stuck) == 5
    for s in stuck:
        t0, t1, fn = gen.sensor_override[s["subject"]][0]
        assert len({fn(t) for t in range(t0, t1, 60_000)}) == 1
    saturated = labelled("sensor.threshold", "saturated")
    assert {s["subject"] for s in saturated} == {
        s["subject"] for s in labelled("sensor.stuck", "saturated")
    }
    assert len(labelled("sensor.anomaly", "calibration")) == 2
    overlap = [i for i in incidents if i["subject"].startswith("muck-ovl-")]
    assert {i["kind"] for i in overlap} >= {"geofence.enter"}
    assert any("border" in i["note"] for i in overlap)
    # Noise itself is never an incident: no multipath, skew or dropout labels (a gateway
    # clock stepped ahead is labelled by ``generate`` after the noise stage ran: below).
    assert not [i for i in incidents if "multipath" in i["note"] or "clock" in i["note"]]
    # Without noise the same run has none of these.
    quiet = Generator(reference, GenParams(minutes=200, seed=21, scale="medium"))
    assert not [i for i in quiet.truth.incidents if "-x" in i["subject"]]


@pytest.mark.redis
@pytest.mark.slow
def test_a_short_noisy_city_run_goes_through_the_flow(
    tmp_path: Path, redis_url: str, config: Config, reference: Reference
) -> None:
    rec, truth_path = tmp_path / "city.jsonl", tmp_path / "city.json"
    p = GenParams(minutes=1, seed=3, scale="city", max_step_s=600.0)
    truth = generate(reference, p, rec, truth_path)
    assert truth.noise["duplicates"] > 0 and truth.noise["skewed_events"] > 0
    res = run_recordings([rec], config, redis_url, progress=False, reference=reference)
    assert res.stats.events_in == truth.events
    assert sum(res.stats.events_ok.values()) > 0.95 * truth.events
    assert sum(res.stats.dead.values()) >= truth.dead_letters
    assert orjson.loads(truth_path.read_bytes())["noise"] == truth.noise


def test_score_counts_repeated_alerts_per_incident() -> None:
    inc = {
        "id": "i1",
        "kind": "sensor.anomaly",
        "subject": "n-1",
        "zone": None,
        "start": "2026-01-01T00:00:00Z",
        "end": "2026-01-01T00:05:00Z",
    }
    alert = {"kind": "sensor.anomaly", "subject": "n-1", "zone": None}
    alerts = [
        {**alert, "ts": "2026-01-01T00:01:00.000Z"},  # the alert
        {**alert, "ts": "2026-01-01T00:15:00.000Z"},  # raised again: false, but a repeat
        {**alert, "ts": "2026-01-01T03:00:00.000Z"},  # hours later: not this incident's
        {**alert, "subject": "n-2", "ts": "2026-01-01T00:01:00.000Z"},
    ]
    sc = score(alerts, {"incidents": [inc]})
    assert sc.summary() == {"recall": 1.0, "precision": 0.25, "alerts_per_incident": 2.0}


def _stepped(minutes: int, seed: int) -> GenParams:
    """Only clock steps, on a quarter of the gateways (a minority: the others keep the
    partition's time), up to an hour either way."""
    base = GenParams(
        minutes=minutes, seed=seed, scale="medium", bad_per_mille=0.0, late_per_mille=0.0
    )
    return _noise_only(
        base,
        **NO_GPS_NOISE,
        skewed_gateways_pct=0.0,
        clock_steps_pct=25.0,
        max_step_s=3600.0,
    )


def test_events_name_their_gateway_and_steps_ahead_are_labelled_on_it(
    tmp_path: Path, reference: Reference
) -> None:
    p = _stepped(10, 2)
    generate(reference, dataclasses.replace(p, noise=False), tmp_path / "clean.jsonl")
    truth = generate(reference, p, tmp_path / "noisy.jsonl")
    clean, got = _events(tmp_path / "clean.jsonl"), _events(tmp_path / "noisy.jsonl")
    incident_subjects = {i["subject"] for i in truth.incidents}

    def subject(e: dict[str, Any]) -> str:
        return str(e.get("entity") or e.get("sensor") or e.get("camera"))

    # every event of a source without an expected alert names its gateway; the others none
    for e in got:
        if subject(e) in incident_subjects:
            assert "src" not in e
        else:
            assert isinstance(e.get("src"), str) and e["src"].startswith("gw-")
    # which gateways' clocks went ahead by more than the flow's future guard (300 s)
    by_subject: dict[str, list[int]] = defaultdict(list)
    for e in clean:
        by_subject[subject(e)].append(parse_ts(e["ts"]))
    ahead: set[str] = set()
    seen: Counter[str] = Counter()
    for e in got:
        s = subject(e)
        d = parse_ts(e["ts"]) - by_subject[s][seen[s]]
        seen[s] += 1
        if d > 300_000:
            ahead.add(e["src"])
    labelled = [i for i in truth.incidents if i["kind"] == "source.clock_skew"]
    assert len(ahead) >= 2 and {i["subject"] for i in labelled} == ahead
    assert all("ahead" in i["note"] for i in labelled)


@pytest.mark.redis
def test_a_gateway_stepped_ahead_raises_the_labelled_clock_skew_and_nothing_else(
    tmp_path: Path, redis_url: str, config: Config, reference: Reference
) -> None:
    rec, truth_path = tmp_path / "k.jsonl", tmp_path / "k.json"
    generate(reference, _stepped(10, 2), rec, truth_path)
    truth = orjson.loads(truth_path.read_bytes())
    alerts_out = tmp_path / "alerts.jsonl"
    run_recordings(
        [rec], config, redis_url, alerts_out=alerts_out, progress=False, reference=reference
    )
    alerts = [orjson.loads(line) for line in alerts_out.read_bytes().splitlines() if line]
    skew = [a for a in alerts if a["kind"] == "source.clock_skew"]
    labelled = [i for i in truth["incidents"] if i["kind"] == "source.clock_skew"]
    assert labelled and skew
    sc = score(skew, {"incidents": labelled})
    assert sc.missed == [] and sc.false_alerts == [], (labelled, skew)


def test_arrivals_give_each_line_its_delivery_and_true_time(
    tmp_path: Path, reference: Reference
) -> None:
    """``generate(arrivals=...)``: one ``(arrival, true time)`` per line written, in the
    recording's (arrival) order; a skewed gateway's stamp is its true time moved by its
    clock, and asking for arrivals leaves the recording's bytes as they were."""
    p = _noise_only(
        GenParams(minutes=10, seed=8, late_per_mille=0.0),
        **NO_GPS_NOISE,
        skewed_gateways_pct=60.0,
        max_skew_s=4.0,
        clock_steps_pct=0.0,
    )
    arrivals: list[tuple[int, int]] = []
    generate(reference, p, tmp_path / "with.jsonl", arrivals=arrivals)
    generate(reference, p, tmp_path / "without.jsonl")
    assert (tmp_path / "with.jsonl").read_bytes() == (tmp_path / "without.jsonl").read_bytes()
    lines = [ln for ln in iter_lines(tmp_path / "with.jsonl") if b"citywatch_recording" not in ln]
    assert len(arrivals) == len(lines)
    assert [a for a, _ in arrivals] == sorted(a for a, _ in arrivals)
    skews: dict[str | None, set[int]] = defaultdict(set)
    for line, (arrival, true) in zip(lines, arrivals, strict=True):
        assert 0 <= arrival - true <= 3_000  # the network's delay (no reordering here)
        try:
            obj = orjson.loads(line)
            stamp = parse_ts(obj["ts"])
        except Exception:  # noqa: BLE001, S112 - a corrupted line: no stamp to compare
            continue
        skews[obj.get("src")].add(stamp - true)
    # incident sources name no gateway and keep true time; each gateway one constant skew
    assert skews.pop(None, {0}) == {0}
    assert all(len(s) == 1 and abs(next(iter(s))) <= 4_000 for s in skews.values())
    assert any(s != {0} for s in skews.values())
