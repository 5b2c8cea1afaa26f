"""Video rules: label + zone kind + local hours, one alert per episode (cooldown)."""

from __future__ import annotations

import copy
import pickle
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from citywatch.detectors.alerts import Alert
from citywatch.detectors.base import ZoneMeta
from citywatch.detectors.events import VideoEvent
from citywatch.detectors.video import VideoRule, VideoRuleDetector

SHANGHAI = ZoneInfo("Asia/Shanghai")
MIN = 60_000
CATALOG = {
    "lv": ZoneMeta("lv", "levee"),
    "lv2": ZoneMeta("lv2", "levee"),
    "ap": ZoneMeta("ap", "airport_site"),
}


def local_ms(hour: int, minute: int = 0) -> int:
    """Epoch ms of 2026-05-01 hour:minute in Asia/Shanghai."""
    return int(datetime(2026, 5, 1, hour, minute, tzinfo=SHANGHAI).timestamp() * 1000)


NOON = local_ms(12)


def seen(
    ts_ms: int,
    label: str = "person",
    confidence: float = 0.9,
    *,
    camera: str = "cam-1",
    zones: tuple[str, ...] = ("lv",),
) -> VideoEvent:
    return VideoEvent(ts_ms, camera, label, confidence, 120.9, 32.0, zones=zones, id=str(ts_ms))


def rule(**overrides: Any) -> VideoRule:
    settings: dict[str, Any] = {
        "kind": "video.intrusion",
        "labels": ("person",),
        "zone_kinds": ("levee",),
        "min_confidence": 0.6,
        "cooldown_s": 600,
    }
    settings.update(overrides)
    return VideoRule(**settings)


def run(det: VideoRuleDetector, events: list[VideoEvent]) -> list[Alert]:
    out: list[Alert] = []
    for ev in events:
        det.on_event(ev, out)
    return out


def test_cooldown_merges_repeats_and_a_new_episode_follows_a_quiet_cooldown() -> None:
    # t(min)  0    5    14   24   35   36
    # seen    P    P    P    P    P    P        cooldown 10 min, measured from the last sighting
    # alert   ^1   (gaps <= 10 min merge)  ^2   (11 quiet minutes: a new episode)
    det = VideoRuleDetector((rule(),), CATALOG)
    events = [seen(NOON + m * MIN) for m in (0, 5, 14, 24, 35, 36)]
    alerts = run(det, events)
    assert [(a.ts_ms - NOON) // MIN for a in alerts] == [0, 35]
    assert [a.first_ts_ms for a in alerts] == [a.ts_ms for a in alerts]
    assert alerts[0].id != alerts[1].id
    first = alerts[0]
    assert (first.kind, first.severity, first.subject, first.subject_type, first.zone) == (
        "video.intrusion",
        "yellow",
        "cam-1",
        "video",
        "lv",
    )
    assert first.evidence == {
        "label": "person",
        "confidence": 0.9,
        "snapshot": None,
        "event_id": str(NOON),
    }


@pytest.mark.parametrize(
    ("confidence", "alerts"),
    [(0.59, 0), (0.6, 1), (0.95, 1)],
    ids=["below-min-ignored", "at-min-counts", "above-min"],
)
def test_min_confidence(confidence: float, alerts: int) -> None:
    det = VideoRuleDetector((rule(min_confidence=0.6),), CATALOG)
    assert len(run(det, [seen(NOON, confidence=confidence)])) == alerts


def test_a_low_confidence_detection_does_not_extend_the_episode() -> None:
    # t(min)  0    8(0.3)   15
    # seen    P    p        P      the weak sighting at 8 is ignored, so 15 is a new episode
    det = VideoRuleDetector((rule(cooldown_s=600),), CATALOG)
    alerts = run(det, [seen(NOON), seen(NOON + 8 * MIN, confidence=0.3), seen(NOON + 15 * MIN)])
    assert len(alerts) == 2


@pytest.mark.parametrize(
    ("hour", "minute", "fires"),
    [(22, 0, True), (12, 0, False), (20, 0, True), (5, 59, True), (6, 0, False), (19, 59, False)],
    ids=[
        "22h00-night",
        "12h00-day",
        "20h00-starts",
        "05h59-still-night",
        "06h00-ends",
        "19h59-not-yet",
    ],
)
def test_night_hours_rule_uses_shanghai_local_time(hour: int, minute: int, fires: bool) -> None:
    det = VideoRuleDetector((rule(hours=(20, 6)),), CATALOG, timezone="Asia/Shanghai")
    assert bool(run(det, [seen(local_ms(hour, minute))])) is fires


def test_hours_given_as_text_are_parsed() -> None:
    assert rule(hours="20-6").hours == (20, 6)
    assert rule(hours=[8, 18]).hours == (8, 18)


def test_detector_timezone_decides_the_local_hour() -> None:
    # 22:00 in Shanghai is 14:00 UTC: a UTC detector sees daytime.
    det = VideoRuleDetector((rule(hours=(20, 6)),), CATALOG, timezone="UTC")
    assert run(det, [seen(local_ms(22))]) == []


@pytest.mark.parametrize(
    ("event", "why"),
    [
        (seen(NOON, label="boat"), "label not in the rule"),
        (seen(NOON, zones=("ap",)), "zone kind not in the rule"),
        (seen(NOON, zones=()), "in no zone"),
        (seen(NOON, zones=("unknown-zone",)), "zone not in the catalog"),
    ],
    ids=["label-not-in-rule", "zone-kind-not-in-rule", "no-zone", "zone-not-in-catalog"],
)
def test_detections_no_rule_matches_are_ignored(event: VideoEvent, why: str) -> None:
    det = VideoRuleDetector((rule(),), CATALOG)
    assert run(det, [event]) == [], why
    assert det.live_keys() == 0


def test_each_zone_and_each_rule_is_its_own_episode() -> None:
    rules = (
        rule(),
        rule(kind="video.fishing", labels=("person", "fishing"), severity="orange"),
    )
    det = VideoRuleDetector(rules, CATALOG)
    alerts = run(det, [seen(NOON, zones=("lv", "lv2")), seen(NOON + MIN, zones=("lv", "lv2"))])
    assert sorted((a.kind, a.zone) for a in alerts) == [
        ("video.fishing", "lv"),
        ("video.fishing", "lv2"),
        ("video.intrusion", "lv"),
        ("video.intrusion", "lv2"),
    ]
    assert len({a.id for a in alerts}) == 4


def test_cameras_are_independent() -> None:
    det = VideoRuleDetector((rule(),), CATALOG)
    events = [seen(NOON, camera="a"), seen(NOON, camera="b"), seen(NOON + MIN, camera="a")]
    alerts = run(det, events)
    assert [a.subject for a in alerts] == ["a", "b"]


def test_zone_kinds_follow_the_catalog_on_reload() -> None:
    det = VideoRuleDetector((rule(),), {"z": ZoneMeta("z", "residential")})
    assert run(det, [seen(NOON, zones=("z",))]) == []
    det.set_zones({"z": ZoneMeta("z", "levee")})
    assert len(run(det, [seen(NOON + MIN, zones=("z",))])) == 1


def test_idle_episodes_are_evicted_and_the_detector_pickles() -> None:
    det = VideoRuleDetector((rule(hours=(20, 6)),), CATALOG, idle_evict_s=3600)
    run(det, [seen(local_ms(22))])
    clone = pickle.loads(pickle.dumps(det))
    assert run(clone, [seen(local_ms(22, 5))]) == []  # same episode after restore
    assert clone.live_keys() == 1
    clone.on_watermark(local_ms(23, 30), [])
    assert clone.live_keys() == 0


def test_input_events_are_not_mutated() -> None:
    events = [seen(NOON + m * MIN) for m in range(5)]
    before = copy.deepcopy(events)
    run(VideoRuleDetector((rule(),), CATALOG), events)
    assert events == before


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"kind": "video.ufo"}, '"kind" must be one of video.intrusion'),
        ({"labels": ()}, '"labels" and "zone_kinds"'),
        ({"zone_kinds": ()}, '"labels" and "zone_kinds"'),
        ({"min_confidence": 1.4}, '"min_confidence" must be within [0, 1], got 1.4'),
        ({"min_confidence": -0.1}, '"min_confidence" must be within [0, 1], got -0.1'),
        ({"hours": [25, 6]}, '"hours" must be [start, end]'),
        ({"hours": "night"}, '"hours" must be [start, end]'),
        ({"cooldown_s": 0}, '"cooldown_s" must be > 0, got 0'),
        ({"severity": "purple"}, "severity must be one of"),
    ],
    ids=[
        "kind-unknown",
        "labels-empty",
        "zone_kinds-empty",
        "min_confidence-1.4",
        "min_confidence-negative",
        "hours-25",
        "hours-word",
        "cooldown_s-zero",
        "severity",
    ],
)
def test_video_rule_rejects_bad_values_naming_the_setting(
    overrides: dict[str, Any], names: str
) -> None:
    with pytest.raises(ValueError, match="^video rule ") as info:
        rule(**overrides)
    assert names in str(info.value)
