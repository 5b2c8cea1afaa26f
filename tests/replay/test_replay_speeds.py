"""Two replays of one recording at different speeds give identical work orders.

    recording (40 min of event time, every injector once)
      --speed max  ──► prefix "fast": work orders W1
      --speed 1200 ──► prefix "slow": work orders W2   (paced: ~2 s of wall time)
    W1 == W2, field by field, except wall-clock stamps (created/updated/due times)

The list fields (kinds, subjects, departments of the incident) are compared as
sets: two alerts with the same event time (a fusion.corroborated and the alert it
corroborates) may reach the incident merger in either order depending on batching,
and the work order lists them in merge order.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from citywatch.flows.bench import work_orders
from citywatch.flows.config import Config
from citywatch.flows.runner import run_recordings
from citywatch.geo.reference import Reference
from citywatch.replay.generator import GenParams, generate

pytestmark = [pytest.mark.redis, pytest.mark.slow]

# Every work-order field that does not record when (in wall-clock time) it was written.
FIELDS = [
    "id", "incident", "state", "kind", "kinds", "severity", "subject", "subject_type",
    "subjects", "zone", "lon", "lat", "first_ts", "ts", "centre", "department",
    "departments", "level", "jurisdiction", "queue", "alert_count", "incident_closes_at_ms",
]  # fmt: skip


LISTS = ("kinds", "subjects", "departments")


def _as_set(name: str, value: str | None) -> str | frozenset[str] | None:
    return frozenset((value or "").split(",")) if name in LISTS else value


def test_replays_at_max_and_paced_speed_give_identical_work_orders(
    tmp_path: Path, redis_url: str, config: Config, reference: Reference
) -> None:
    rec = tmp_path / "r.jsonl.gz"
    generate(reference, GenParams(minutes=40, seed=11), rec)
    got = {}
    for name, speed in (("fast", None), ("slow", 1200.0)):
        cfg = dataclasses.replace(
            config, redis=dataclasses.replace(config.redis, prefix=f"cw-{name}")
        )
        run_recordings([rec], cfg, redis_url, speed=speed, progress=False, reference=reference)
        got[name] = {
            wo: {k: _as_set(k, v) for k, v in fields.items()}
            for wo, fields in work_orders(redis_url, f"cw-{name}", FIELDS).items()
        }
    assert len(got["fast"]) >= 5
    assert got["fast"] == got["slow"]
