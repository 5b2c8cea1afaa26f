"""fusion.corroborated: cross-source alerts in one zone, independent of arrival order."""

from __future__ import annotations

import itertools
import pickle

import pytest

from citywatch.detectors.alerts import Alert
from citywatch.detectors.base import ZoneMeta, keyed_v1
from citywatch.detectors.fusion import Corroborator, FusionParams

T0 = 1_781_528_400_000
MIN = 60_000
ZONES = {
    "ap": ZoneMeta("ap", "airport_site"),
    "lv": ZoneMeta("lv", "levee"),
    "res": ZoneMeta("res", "residential"),
}


def alert(
    kind: str,
    subject: str,
    source: str,
    minute: float,
    zone: str | None = "ap",
    severity: str = "yellow",
) -> Alert:
    ts = T0 + int(minute * MIN)
    return Alert.make(
        kind, severity, subject, source, zone, 121.2, 31.9, ts_ms=ts, first_ts_ms=ts, evidence={}
    )


ENTER = alert("geofence.enter", "muck-1", "gps", 5, severity="orange")
DIG = alert("video.construction", "cam-3", "video", 12, severity="orange")
PEOPLE = alert("video.intrusion", "cam-1", "video", 15)
LATE_PEOPLE = alert("video.intrusion", "cam-1", "video", 40)


def fuse(alerts: list[Alert], p: FusionParams | None = None) -> list[Alert]:
    c = Corroborator(p or FusionParams(), ZONES)
    out: list[Alert] = []
    for a in alerts:
        c.on_alerts([a], out)
    return out


def test_a_truck_entering_and_a_camera_seeing_an_excavator_fuse() -> None:
    # t(min)  0 ... 5 ....... 12 .. 15 ................. 40      window 20 min
    # gps           enter
    # video                   dig   people               people (25 min after dig)
    # fusion                  ^dig  ^people              (none: nothing of gps within 20)
    out = fuse([ENTER, DIG, PEOPLE, LATE_PEOPLE])
    assert [(a.subject, a.ts_ms, a.severity) for a in out] == [
        ("cam-3", DIG.ts_ms, "red"),
        ("cam-1", PEOPLE.ts_ms, "red"),
    ]
    first = out[0]
    assert first.kind == "fusion.corroborated" and first.zone == "ap"
    assert [e["id"] for e in first.evidence["alerts"]] == [ENTER.id, DIG.id]
    assert first.evidence["sources"] == ["gps", "video"] and first.evidence["anchor"] == DIG.id
    assert first.first_ts_ms == ENTER.first_ts_ms


@pytest.mark.parametrize(
    "order", list(itertools.permutations(range(4))), ids=lambda o: "".join(map(str, o))
)
def test_the_same_fusion_ids_in_any_arrival_order(order: tuple[int, ...]) -> None:
    alerts = [ENTER, DIG, PEOPLE, LATE_PEOPLE]
    expected = sorted(a.id for a in fuse(alerts))
    assert sorted(a.id for a in fuse([alerts[i] for i in order])) == expected


def test_same_source_other_zone_kind_and_no_zone_never_fuse() -> None:
    other_video = alert("video.intrusion", "cam-9", "video", 6)
    assert fuse([DIG, other_video]) == []  # both video
    assert (
        fuse(
            [
                alert("geofence.enter", "m", "gps", 1, zone="res"),
                alert("video.intrusion", "c", "video", 2, zone="res"),
            ]
        )
        == []
    )
    assert (
        fuse(
            [
                alert("geofence.enter", "m", "gps", 1, zone=None),
                alert("video.intrusion", "c", "video", 2, zone=None),
            ]
        )
        == []
    )
    assert (
        fuse(
            [
                alert("sensor.offline", "g", "sensor", 1, zone="lv"),
                alert("video.dumping", "c", "video", 2, zone="lv"),
            ]
        )
        == []
    )  # kind not listed


def test_equal_times_make_one_anchor_and_repeats_are_ignored() -> None:
    a = alert("sensor.rate", "wl-1", "sensor", 10, zone="lv")
    b = alert("video.dumping", "cam-l", "video", 10, zone="lv")
    out = fuse([a, b, a, b])
    assert len(out) == 1
    assert out[0].evidence["anchor"] == max(a.id, b.id)


def test_state_is_bounded_picklable_and_forgets_old_alerts() -> None:
    p = FusionParams(retain_s=3600, max_alerts_per_zone=16)
    c = Corroborator(p, ZONES)
    out: list[Alert] = []
    for i in range(200):
        c.on_alerts([alert("video.intrusion", f"cam-{i}", "video", i * 2)], out)
    assert out == []
    assert max(len(z.alerts) for _, z in c._zones.items()) <= 16
    revived = pickle.loads(pickle.dumps(c))
    gps = [alert("geofence.enter", "m", "gps", 399.5)]
    c.on_alerts(gps, out)
    again: list[Alert] = []
    revived.on_alerts(gps, again)
    assert [a.to_json() for a in out] == [a.to_json() for a in again]
    assert len(out) == 1 and out[0].subject == "m"  # the truck anchors on recent cameras
    c.evict_idle(T0 + 10_000 * MIN)
    assert c.live_keys() == 0


def test_fusion_params_validate() -> None:
    with pytest.raises(ValueError, match='"retain_s" \\(60\\) must be >= "window_s" \\(1200\\)'):
        FusionParams(retain_s=60)
    with pytest.raises(ValueError, match="must not include fusion.corroborated"):
        FusionParams(kinds=("fusion.corroborated",))


def held(alerts: list[Alert], clock_after: list[int]) -> list[Alert]:
    """A replay's fusion: alerts held, decided as the clock (given after each) passes."""
    c = Corroborator(FusionParams(), ZONES)
    out: list[Alert] = []
    for a, clock in zip(alerts, clock_after, strict=True):
        c.hold([a], out)
        c.advance(clock, out)
    c.flush(out)
    return out


@pytest.mark.parametrize(
    "order", list(itertools.permutations(range(4))), ids=lambda o: "".join(map(str, o))
)
def test_held_fusion_evidence_and_first_ts_do_not_depend_on_arrival_order(
    order: tuple[int, ...],
) -> None:
    # A second gps partner (a truck entering at minute 1) is known to the anchor DIG
    # only if it arrived before DIG was decided: holding until the clock passes DIG
    # makes that always so. The clock stays behind every alert until all arrived.
    early = alert("geofence.enter", "muck-2", "gps", 1, severity="yellow")
    alerts = [ENTER, DIG, PEOPLE, early]
    expected = [a.to_json() for a in held(alerts, [T0] * 4)]
    got = held([alerts[i] for i in order], [T0] * 4)
    assert [a.to_json() for a in got] == expected
    dig = next(a for a in got if a.subject == "cam-3")
    assert [e["subject"] for e in dig.evidence["alerts"]] == ["muck-2", "muck-1", "cam-3"]
    assert dig.first_ts_ms == early.first_ts_ms


def test_held_fusion_is_decided_when_the_clock_passes_the_anchor() -> None:
    c = Corroborator(FusionParams(), ZONES, lag_ms=60_000)
    out: list[Alert] = []
    c.hold([ENTER, DIG], out)
    c.advance(DIG.ts_ms + 60_000, out)  # the clock at the anchor plus the lag: not yet
    assert out == []
    c.advance(DIG.ts_ms + 60_001, out)
    assert [(a.kind, a.subject) for a in out] == [("fusion.corroborated", "cam-3")]
    # An alert the clock already passed (minute 11 < 12 + 1) is decided at once: no
    # partner before it; the held PEOPLE (minute 15) is decided later with it in.
    late_gps = alert("geofence.enter", "muck-9", "gps", 11)
    c.hold([late_gps], out)
    assert len(out) == 1
    c.hold([PEOPLE], out)
    c.advance(PEOPLE.ts_ms + 60_001, out)
    assert [a.subject for a in out] == ["cam-3", "cam-1"]
    assert [e["subject"] for e in out[1].evidence["alerts"]] == ["muck-1", "muck-9", "cam-1"]


def test_producer_marks_give_the_clock_once_all_reported() -> None:
    c = Corroborator(FusionParams(), ZONES)
    c.mark("shard-000", 5_000)
    assert c.clock(2) is None
    c.mark("shard-001", 3_000)
    c.mark("shard-000", 4_000)  # never goes back
    assert c.clock(2) == 3_000


def test_a_version_1_snapshot_restores_with_everything_decided() -> None:
    from citywatch.detectors.state import Snapshot, decode, encode

    c = Corroborator(FusionParams(), ZONES)
    out: list[Alert] = []
    c.on_alerts([ENTER], out)
    snap = c.state()
    snap.data["_zones"] = keyed_v1(snap.data["_zones"])
    for _zid, zone in snap.data["_zones"].data["items"]:
        object.__delattr__(zone, "decided_ms")
    data = {"_zones": snap.data["_zones"]}
    fresh = Corroborator(FusionParams(), ZONES)
    fresh.restore(decode(encode(Snapshot("Corroborator", 1, data))))
    fresh.hold([DIG], out)  # after the zone's newest alert: held until the clock passes
    assert out == []
    fresh.advance(DIG.ts_ms + 1, out)
    assert [a.subject for a in out] == ["cam-3"]
