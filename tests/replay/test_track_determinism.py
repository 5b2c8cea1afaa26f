"""One recording with long silences gives the same alerts at any speed and batch size.

    hz-stop   stands 10 min at P ... silent 7 h ... stands 20 min at P
    hz-gap    drives, silent 10 min, drives on, silent to the end
    tk-fast   a tanker at 100 km/h with jittered fix times
    hz-jump   one teleported fix
    mk-1, mk-2 background traffic every 60 s (moves event time through the silences)

Whether a vehicle's state survived a silence used to depend on whether a watermark
(at a batch end) evicted it in between: batch size and replay speed changed the
alerts. The alerts file is written in the order alerts are decided, which follows
batching, so the test compares its lines as a sorted list: every line byte for byte.
"""

from __future__ import annotations

import dataclasses
import gzip
import math
from pathlib import Path

import orjson
import pytest

from citywatch.flows.config import Config
from citywatch.flows.runner import run_recordings
from citywatch.geo.reference import Reference

pytestmark = [pytest.mark.redis, pytest.mark.slow]

T0 = 1_767_225_600_000
MIN = 60_000
P = (120.93, 31.93)  # (+DLAT) open country, outside every zone


# The tracks below are drawn around 31.9 N and moved north into open country of Rugao
# and Rudong, away from every zone of the bundled data.
DLAT = 0.45


def _fix(ts: int, entity: str, cls: str, lon: float, lat: float, **extra: object) -> dict:
    return {"type": "gps", "ts": ts, "entity": entity, "class": cls, "lon": lon, "lat": lat + DLAT,
            "id": f"{entity}-{ts}", **extra}  # fmt: skip


def _recording(path: Path) -> None:
    ev: list[dict] = []
    for k in range(40):  # 10 min at P, fixes every 15 s
        ev.append(_fix(T0 + k * 15_000, "hz-stop", "hazmat_truck", P[0], P[1], speed=0))
    for k in range(80):  # 7 h later, 20 min at P
        ts = T0 + 430 * MIN + k * 15_000
        ev.append(_fix(ts, "hz-stop", "hazmat_truck", P[0] + 2e-5, P[1], speed=0))
    for k in range(120):  # drives east, silent from 20 to 30 min, and after 60 min
        if 20 <= k // 2 < 30 or k // 2 >= 60:
            continue
        ev.append(_fix(T0 + k * 30_000, "hz-gap", "hazmat_truck", 120.8 + k * 0.002, 31.9,
                       speed=55))  # fmt: skip
    for k in range(30):  # 100 km/h east, fix times jittered by up to 3 s
        ts = T0 + 60 * MIN + k * 15_000 + (k * 7919 % 7 - 3) * 1000
        ev.append(_fix(ts, "tk-fast", "tanker", 120.7 + k * 0.0044, 31.85, speed=100))
    for k in range(20):
        lon = 120.75 + (0.4 if k == 10 else 0.0) + k * 0.001
        ev.append(_fix(T0 + 90 * MIN + k * 15_000, "hz-jump", "hazmat_truck", lon, 31.8))
    for k in range(460):  # background traffic driving in circles
        for v in (1, 2):
            a = k / 20 + v
            lon, lat = 120.85 + 0.02 * math.cos(a), 31.75 + 0.02 * math.sin(a) + v * 0.001
            ev.append(_fix(T0 + k * MIN + v * 500, f"mk-{v}", "muck_truck", lon, lat, speed=40))
    ev.sort(key=lambda e: e["ts"])
    with gzip.open(path, "wb") as fh:
        fh.writelines(orjson.dumps(e) + b"\n" for e in ev)


def test_same_alerts_at_every_speed_and_batch_size(
    tmp_path: Path, redis_url: str, config: Config, reference: Reference
) -> None:
    rec = tmp_path / "silences.jsonl.gz"
    _recording(rec)
    runs: dict[str, list[bytes]] = {}
    for batch, speed in ((5000, None), (500, None), (7, None), (1, None), (500, 20_000.0)):
        name = f"b{batch}-s{speed or 'max'}"
        cfg = dataclasses.replace(
            config,
            flow=dataclasses.replace(config.flow, batch_size=batch),
            redis=dataclasses.replace(config.redis, prefix=f"cw-{name}"),
        )
        out = tmp_path / f"{name}.jsonl"
        run_recordings(
            [rec], cfg, redis_url, speed=speed, alerts_out=out, progress=False, reference=reference
        )
        runs[name] = sorted(out.read_bytes().splitlines())
    first = runs["b5000-smax"]
    kinds = sorted({orjson.loads(line)["kind"] for line in first})
    assert kinds == ["track.gap", "track.speeding", "track.stop"], kinds
    for name, lines in runs.items():
        assert lines == first, name


def test_output_files_exist_and_are_empty_when_a_run_writes_nothing(
    tmp_path: Path, redis_url: str, config: Config, reference: Reference
) -> None:
    rec = tmp_path / "quiet.jsonl"
    rec.write_bytes(orjson.dumps(_fix(T0, "mk-1", "muck_truck", P[0], P[1])) + b"\n")
    outs = {name: tmp_path / "out" / f"{name}.jsonl" for name in ("alerts", "dead", "late")}
    cfg = dataclasses.replace(config, redis=dataclasses.replace(config.redis, prefix="cw-quiet"))
    run_recordings(
        [rec],
        cfg,
        redis_url,
        alerts_out=outs["alerts"],
        dead_out=outs["dead"],
        late_out=outs["late"],
        progress=False,
        reference=reference,
    )
    assert {name: p.read_bytes() for name, p in outs.items()} == dict.fromkeys(outs, b"")
