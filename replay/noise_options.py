"""Default levels and command-line options of the generator's field noise.

Kept free of heavy imports: ``citywatch generate --help`` reads them without
loading the generator. The levels are realistic for a city fleet and sensor
network (``citywatch.replay.noise`` describes each kind of noise).
"""

from __future__ import annotations

# field -> (default, flag, help)
NOISE_LEVELS: dict[str, tuple[float, str, str]] = {
    "gps_jitter_m": (5.0, "--gps-jitter-m", "extra GPS jitter, metres (sd per axis)"),
    "multipath_per_mille": (
        0.5,
        "--multipath-per-mille",
        "single fixes displaced 100-500 m (multipath), per 1,000 fixes",
    ),
    "dropout_per_mille": (
        0.3,
        "--dropout-per-mille",
        "fixes starting a 30-120 s urban-canyon dropout, per 1,000 fixes",
    ),
    "duplicate_per_mille": (2.0, "--duplicate-per-mille", "events sent twice, per 1,000"),
    "reorder_per_mille": (
        2.0,
        "--reorder-per-mille",
        "fixes delivered after the next fix, per 1,000 fixes",
    ),
    "skewed_gateways_pct": (5.0, "--skewed-gateways-pct", "gateways with a skewed clock, %%"),
    "max_skew_s": (5.0, "--max-skew-s", "largest constant clock skew, seconds"),
    "clock_steps_pct": (1.0, "--clock-steps-pct", "gateways whose clock steps once, %%"),
    "max_step_s": (3600.0, "--max-step-s", "largest clock step, seconds (10 s up, either way)"),
}


def default(name: str) -> float:
    return NOISE_LEVELS[name][0]
