"""The generator's bucketed schedule emits exactly what visiting every key each tick did.

``Generator.events`` keeps vehicles, sensors and cameras in buckets by the 5 s
tick they are next due in, so a tick costs per event instead of per key. The
reference below is the straightforward loop it replaced (every key looked at
every tick); both must give the same events, in the same order, drawing the
same random numbers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from citywatch.geo.reference import Reference
from citywatch.replay import generator as gmod
from citywatch.replay.generator import (
    DEFAULT_SENSOR_PERIOD_S,
    SENSOR_PERIOD_S,
    Generator,
    GenParams,
)


def every_key_every_tick(gen: Generator) -> Iterator[tuple[int, dict[str, Any]]]:
    rng, tick = gen.rng, 5_000
    periods = [SENSOR_PERIOD_S.get(s[1], DEFAULT_SENSOR_PERIOD_S) * 1000 for s in gen.sensors]
    sensor_next = [gen.t0 + rng.randrange(p) for p in periods]
    camera_next = [gen.t0 + rng.randrange(120_000) for _ in gen.cameras]
    videos = sorted(gen.video_injections, key=lambda x: x[0])
    vi, t = 0, gen.t0
    while t < gen.t_end:
        t_hi = min(t + tick, gen.t_end)
        out: list[tuple[int, dict[str, Any]]] = []
        for v in gen.vehicles:
            while v.next_ms < t_hi:
                out.append((v.next_ms, gen._fix(v, v.next_ms)))
                v.next_ms += v.period_ms
        for i, s in enumerate(gen.sensors):
            while sensor_next[i] < t_hi:
                if not (gen.sensor_silence and gen._silenced(s[0], sensor_next[i])):
                    out.append((sensor_next[i], gen._reading(s, sensor_next[i])))
                sensor_next[i] += periods[i]
        for i, c in enumerate(gen.cameras):
            while camera_next[i] < t_hi:
                out.append((camera_next[i], gen._background_video(c, camera_next[i])))
                camera_next[i] += rng.randrange(60_000, 240_000)
        while vi < len(videos) and videos[vi][0] < t_hi:
            ts, obj = videos[vi]
            out.append((ts, {**obj, "ts": gen._ts(ts)}))
            vi += 1
        out.sort(key=lambda x: x[0])
        yield from out
        t = t_hi


@pytest.mark.parametrize("seed", [3, 8], ids=["seed3", "seed8"])
def test_bucketed_schedule_equals_visiting_every_key(reference: Reference, seed: int) -> None:
    p = GenParams(minutes=40, seed=seed)
    got = list(Generator(reference, p).events())
    want = list(every_key_every_tick(Generator(reference, p)))
    assert len(got) > 10_000
    assert got == want


def test_meters_may_have_their_own_number_of_copies(
    reference: Reference, monkeypatch: pytest.MonkeyPatch
) -> None:
    scale = {**gmod.SCALES["small"], "sensor_copies": 2, "meter_copies": 3}
    monkeypatch.setitem(gmod.SCALES, "tiny-meters", scale)
    gen = Generator(reference, GenParams(minutes=5, scale="tiny-meters", inject=False))
    registry = list(reference.sensors.values())
    meters = sum(1 for d in registry if d.attrs.get("kind") in SENSOR_PERIOD_S)
    assert meters and len(registry) > meters
    got_meters = sum(1 for s in gen.sensors if s[1] in SENSOR_PERIOD_S)
    assert got_meters == 3 * meters
    assert len(gen.sensors) - got_meters == 2 * (len(registry) - meters)
    assert len({s[0] for s in gen.sensors}) == len(gen.sensors)
