"""Ground truth of corroboration: derived from the other incidents, never guessed."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from citywatch.detectors.events import format_ts
from citywatch.replay.generator import truth_entry
from citywatch.replay.incidents_sensors import corroborated_truth, tide_level

T0 = 1_781_528_400_000
MIN = 60_000


class TruthOnly:
    """Just the parts of a Generator that corroborated_truth reads and writes."""

    def __init__(self, incidents: list[dict[str, Any]]) -> None:
        self.truth = SimpleNamespace(incidents=incidents)
        self.world = SimpleNamespace(zone_kind={"ap": "airport_site", "res": "residential"})

    def expect(
        self, kind: str, subject: str, zone: str | None, t0: int, t1: int, note: str
    ) -> None:
        self.truth.incidents.append(
            truth_entry(len(self.truth.incidents) + 1, kind, subject, zone, t0, t1, note)
        )


def incident(
    i: int, kind: str, subject: str, m0: float, m1: float, zone: str = "ap"
) -> dict[str, Any]:
    return {
        "id": f"inj-{i:03d}",
        "kind": kind,
        "subject": subject,
        "zone": zone,
        "start": format_ts(T0 + int(m0 * MIN)),
        "end": format_ts(T0 + int(m1 * MIN)),
    }


def test_a_certain_pair_gives_one_fusion_on_the_later_alert() -> None:
    # t(min)  4..6 enter (gps)      15 people (video)      window 20 min -> fusion at 15
    gen = TruthOnly(
        [
            incident(1, "geofence.enter", "muck", 4, 6),
            incident(2, "video.intrusion", "cam", 15, 15.1),
            incident(3, "geofence.enter", "m2", 1, 2, zone="res"),
        ]
    )
    corroborated_truth(gen, 0, T0, 40 * MIN)  # type: ignore[arg-type]
    corroborated_truth(gen, 1, T0 + 40 * MIN, 40 * MIN)  # type: ignore[arg-type]
    fusion = [i for i in gen.truth.incidents if i["kind"] == "fusion.corroborated"]
    assert [(f["subject"], f["zone"], f["anchor"]) for f in fusion] == [("cam", "ap", "inj-002")]


@pytest.mark.parametrize(
    ("enter", "video"),
    [((4, 6), (5, 5.1)), ((0, 1), (20.5, 20.6))],
    ids=["order-unknown", "distance-unknown"],
)
def test_an_uncertain_pair_is_an_error(
    enter: tuple[float, float], video: tuple[float, float]
) -> None:
    gen = TruthOnly(
        [
            incident(1, "geofence.enter", "muck", *enter),
            incident(2, "video.intrusion", "cam", *video),
        ]
    )
    with pytest.raises(ValueError, match="depends on exact alert times"):
        corroborated_truth(gen, 0, T0, 40 * MIN)  # type: ignore[arg-type]


def test_tide_level_matches_the_background_model_without_noise() -> None:
    import random

    from citywatch.replay.world import normal_value

    rng = random.Random(0)
    t = T0 + 17 * MIN
    assert abs(normal_value("water_level", 3.0, t, rng) - tide_level(3.0, t)) < 0.1


@pytest.mark.parametrize("seed", [21, 31])
def test_hazy_hours_on_one_monitor_are_an_hour_apart_or_more(reference: Any, seed: int) -> None:
    # A hazy hour runs from 30 minutes before the truth's start - 10 min to 30 after;
    # two on one monitor closer than an hour leave no hourly mean at or below
    # clear_at between them: one episode, one alert, where the truth expected two.
    from citywatch.detectors.events import parse_ts
    from citywatch.replay.generator import Generator, GenParams

    gen = Generator(reference, GenParams(scale="medium", minutes=200, seed=seed))
    spans: dict[str, list[tuple[int, int]]] = {}
    for inc in gen.truth.incidents:
        if inc["kind"] == "sensor.window":
            t0 = parse_ts(inc["start"]) - 40 * MIN
            spans.setdefault(inc["subject"], []).append((t0, t0 + 60 * MIN))
    assert sum(len(v) for v in spans.values()) >= 4
    for hazes in spans.values():
        hazes.sort()
        for (_, end), (start, _) in zip(hazes, hazes[1:], strict=False):
            assert start - end >= 60 * MIN
