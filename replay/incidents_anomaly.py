"""Injected ``sensor.anomaly`` incidents: a group-rental dwelling and a noise level shift.

- :func:`group_rental_dwelling` (first block only): one registry dwelling uses
  several times the water and power of its peers from the start of the run, as
  a flat let to many tenants does. Its own meters look steady, so only the peer
  comparison can see it; the alert comes once every dwelling has reported
  (household meters report every 15 minutes), within 35 minutes.
- :func:`noise_level_shift` (second and later blocks only): a noise monitor
  reads 15 dB above its usual level for 10 minutes. The per-sensor baseline
  needs ``warmup_readings`` (30) readings first, so the shift is injected only
  once the block starts 40 minutes into the run.
"""

from __future__ import annotations

import random

from citywatch.replay.scene import Scene, zone_of_sensor
from citywatch.replay.world import normal_value

MINUTE = 60_000
# Per-dwelling means of a flat with many tenants, about ten times the background's
# (0.01-0.04 m³ of water and 0.1-0.5 kWh per 15 minutes): at half that, a rental in a
# small estate whose peers use more than average was found or missed by the luck of
# the background draw (its own readings widen the spread of a class of six dwellings).
RENTAL_BASE = {"water": 0.32, "power": 3.2}


def group_rental_dwelling(gen: Scene, b: int, base: int, span: int) -> None:
    """One dwelling's water and power several times its peers' (peer sensor.anomaly)."""
    if b != 0 or span < 35 * MINUTE:
        return
    waters = sorted(
        s[0] for s in gen.sensors if s[5] and s[0].startswith("hh-") and s[1] == "water"
    )
    if len(waters) < 5:
        return
    water_id = waters[gen.rng.randrange(len(waters))]
    dwelling = water_id.removesuffix("-water")
    rnd = random.Random(gen.p.seed * 7919 + 5)
    for kind, level in RENTAL_BASE.items():

        def consume(t: int, kind: str = kind, level: float = level) -> float:
            return normal_value(kind, level, t, rnd)

        gen.sensor_override.setdefault(f"{dwelling}-{kind}", []).append(
            (gen.t0, gen.t_end + MINUTE, consume)
        )

    gen.expect(
        "sensor.anomaly",
        dwelling,
        zone_of_sensor(gen.ref, water_id),
        base,
        base + 35 * MINUTE,
        "group-rental dwelling: water and power far above its peers",
    )


def noise_level_shift(gen: Scene, b: int, base: int, span: int) -> None:
    """A noise monitor 15 dB above its learned level for 10 minutes (sensor.anomaly)."""
    monitors = [s for s in gen.sensors if s[1] == "noise" and s[5]]
    if b < 1 or span < 35 * MINUTE or not monitors:
        return
    sid, _, _, _, level, _ = monitors[b % len(monitors)]
    t_on = base + 20 * MINUTE
    t_off = t_on + 10 * MINUTE
    rnd = random.Random(gen.p.seed * 7919 + b)

    def loud(t: int, level: float = level) -> float:
        return normal_value("noise", level, t, rnd) + 15.0

    gen.sensor_override.setdefault(sid, []).append((t_on, t_off, loud))
    # The first reading of the shift arrives within a minute (plus network delay);
    # the episode, and any echo as the level returns, fall inside the window.

    gen.expect(
        "sensor.anomaly",
        sid,
        zone_of_sensor(gen.ref, sid),
        t_on,
        t_off + 3 * MINUTE,
        "noise 15 dB above the monitor's learned level",
    )
