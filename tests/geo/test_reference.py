"""Reference data on the bundled sample: registries fill positions, annotate sets zones/town."""

from __future__ import annotations

from pathlib import Path

import pytest

from citywatch.detectors.events import GpsEvent, SensorEvent, VideoEvent
from citywatch.flows.config import load_config
from citywatch.geo.errors import ZoneFileError
from citywatch.geo.reference import Reference
from citywatch.geo.registry import load_registry

TS = 1_767_225_600_000


@pytest.fixture(scope="module")
def ref() -> Reference:
    data = load_config(env={}).data
    return Reference.load(
        data.zones,
        data.jurisdictions,
        data.sensors,
        data.cameras,
        known_kinds=load_config(env={}).zone_kinds,
    )


def test_load_bundled_reference(ref: Reference) -> None:
    assert len(ref.zones) == 21
    assert len(ref.sensors) == 60
    assert len(ref.cameras) == 25
    catalog = ref.zone_catalog()
    assert catalog["airport-site"].kind == "airport_site"
    assert catalog["stop-etdz-hazmat-parking"].kind == "approved_stop"


def test_fill_position_from_the_sensor_registry(ref: Reference) -> None:
    ev = SensorEvent(TS, "wl-chongchuan-01", "water_level", 4.6)
    assert ref.fill_position(ev) is None
    assert (ev.lon, ev.lat) == (120.828418, 31.993687)


def test_fill_position_from_the_camera_registry(ref: Reference) -> None:
    ev = VideoEvent(TS, "cam-airport-01", "person", 0.9)
    assert ref.fill_position(ev) is None
    assert (ev.lon, ev.lat) == (121.234391, 32.04)


def test_fill_position_keeps_a_sent_position(ref: Reference) -> None:
    ev = SensorEvent(TS, "wl-chongchuan-01", "water_level", 4.6, lon=121.0, lat=32.0)
    assert ref.fill_position(ev) is None
    assert (ev.lon, ev.lat) == (121.0, 32.0)
    assert ref.fill_position(GpsEvent(TS, "t", 121.0, 32.0)) is None


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (
            SensorEvent(TS, "wl-nowhere", "water_level", 1.0),
            "sensor.lon: missing, and sensor 'wl-nowhere' is not in the sensor registry; "
            "send lon/lat or register the sensor",
        ),
        (
            VideoEvent(TS, "cam-nowhere", "person", 0.9),
            "video.lon: missing, and camera 'cam-nowhere' is not in the camera registry; "
            "send lon/lat or register the camera",
        ),
    ],
    ids=["unknown-sensor", "unknown-camera"],
)
def test_fill_position_reason_for_an_unknown_device(
    ref: Reference, event: SensorEvent | VideoEvent, reason: str
) -> None:
    assert ref.fill_position(event) == reason
    assert event.lon is None and event.lat is None


def test_annotate_sets_zones_and_town(ref: Reference) -> None:
    events = [
        GpsEvent(TS, "m1", 121.245, 32.04, "muck_truck"),  # airport site centre
        SensorEvent(TS, "wl-chongchuan-01", "water_level", 4.6),
        GpsEvent(TS, "far", 116.4, 39.9),  # Beijing
    ]
    assert ref.fill_position(events[1]) is None
    ref.annotate(events)
    assert [(e.zones, e.town) for e in events] == [
        (("airport-site",), "town:haimen-changle"),
        (("levee-chongchuan-langshan",), "town:chongchuan-tangzha"),
        ((), None),
    ]
    ref.annotate([])  # an empty batch is fine


def test_every_registered_device_lies_in_the_zone_it_names(ref: Reference) -> None:
    for registry, make in (
        (ref.sensors, lambda d: SensorEvent(TS, d.id, d.attrs.get("kind", "x"), 0.0)),
        (ref.cameras, lambda d: VideoEvent(TS, d.id, "person", 0.9)),
    ):
        events = [make(d) for d in registry.values()]
        for ev in events:
            assert ref.fill_position(ev) is None
        ref.annotate(events)
        for ev in events:
            zone = registry[ev.key].attrs.get("zone")
            assert ev.zones == ((zone,) if zone else ()), ev.key
            assert ev.town is not None and ev.town.startswith("town:"), ev.key


@pytest.mark.parametrize(
    ("csv", "problem"),
    [
        ("id,lon,lat\n,1,2\n", "'id' is empty"),
        ("id,lon,lat\na,1,2\na,3,4\n", "duplicate id 'a'"),
        ("id,lon,lat\na,east,2\n", "'a': lon/lat must be numbers"),
        ("id,lon,lat\na,1,95\n", "'a': lon/lat out of range"),
        ("id,lon,lat\na,nan,2\n", "'a': lon/lat out of range"),
    ],
    ids=["empty-id", "duplicate-id", "not-a-number", "lat-95", "nan"],
)
def test_registry_errors_name_the_line(tmp_path: Path, csv: str, problem: str) -> None:
    path = tmp_path / "devices.csv"
    path.write_text(csv, encoding="utf-8")
    with pytest.raises(ZoneFileError) as info:
        load_registry(path)
    assert f"{path}:" in info.value.problems[0]
    assert problem in info.value.problems[0]


def test_registry_none_is_empty() -> None:
    assert load_registry(None) == {}
