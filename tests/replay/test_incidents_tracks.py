"""Ground truth of the injected track incidents matches what the detector is asked to see."""

from __future__ import annotations

import pytest

from citywatch.detectors.events import parse_ts
from citywatch.detectors.tracks_gap import PARKED_KMH
from citywatch.geo.reference import Reference
from citywatch.replay.generator import Generator, GenParams
from citywatch.replay.incidents_tracks import GAP_SILENCE_S


@pytest.mark.parametrize(
    ("scale", "seed"), [("small", 1), ("small", 2), ("medium", 21), ("city", 41)]
)
def test_the_hazmat_gps_gap_starts_while_the_truck_drives(
    reference: Reference, scale: str, seed: int
) -> None:
    # The truth expects track.gap after GAP_SILENCE_S of silence: the silence a
    # *moving* hazmat truck is allowed. A truck already parked at its depot when its
    # GPS goes quiet is allowed parked_silence_s (15 min) and, silent 8 minutes, is
    # rightly not alerted: the silence must begin on the road.
    gen = Generator(reference, GenParams(minutes=40, seed=seed, scale=scale))
    gaps = [i for i in gen.truth.incidents if i["kind"] == "track.gap"]
    hz = [i for i in gaps if i["subject"].startswith("hz-gap-")]
    assert hz, "the run has a hazmat GPS gap"
    for inc in hz:
        fixes = sorted((t, f) for t, f in gen.video_injections if f.get("entity") == inc["subject"])
        last_ms = parse_ts(inc["start"]) - GAP_SILENCE_S * 1000
        before = [f for t, f in fixes if t == last_ms]
        after = [t for t, _ in fixes if t > last_ms]
        assert len(before) == 1
        assert before[0]["speed"] > PARKED_KMH, (inc["subject"], before[0])
        assert after and after[0] - last_ms >= 8 * 60_000 - 15_000
        # ... and reappears still driving: not parked during the silence, which the
        # detector would rightly call "reappeared off its track"
        back = next(f for t, f in fixes if t > last_ms)
        assert back["speed"] > PARKED_KMH, (inc["subject"], back)
