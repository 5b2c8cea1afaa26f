"""The recording format: JSON Lines, plain / gzip / zstd, header, Kafka envelopes."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest
import zstandard

from citywatch.detectors.events import GpsEvent, parse_event
from citywatch.replay.recording import RecordingWriter, iter_lines, read_header, unwrap

SUFFIXES = [".jsonl", ".jsonl.gz", ".jsonl.zst"]
SUFFIX_IDS = ["plain", "gzip", "zstd"]
GPS_LINE = b'{"type":"gps","ts":1767225600000,"entity":"hz-1","lon":121.0,"lat":32.0}'
LINES = [
    GPS_LINE,
    b'{"ts":1767225601000,"sensor":"wl-1","kind":"water_level","value":4.6}',
    '{"note":"\u4e2d\u6587"}'.encode(),
]


def write(path: Path, lines: list[bytes], header: dict | None = None) -> None:
    with RecordingWriter(path, header=header) as w:
        for line in lines:
            w.write_line(line)
    assert w.lines == len(lines)


@pytest.mark.parametrize("suffix", SUFFIXES, ids=SUFFIX_IDS)
def test_write_then_read_lines_and_header(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"rec{suffix}"
    write(path, LINES, header={"seed": 7, "speed": "max"})
    assert list(iter_lines(path)) == LINES
    assert read_header(path) == {"citywatch_recording": 1, "seed": 7, "speed": "max"}


@pytest.mark.parametrize("suffix", SUFFIXES, ids=SUFFIX_IDS)
def test_recording_without_header(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"rec{suffix}"
    write(path, LINES)
    assert read_header(path) is None
    assert list(iter_lines(path)) == LINES


@pytest.mark.parametrize("suffix", SUFFIXES, ids=SUFFIX_IDS)
def test_empty_recording(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"rec{suffix}"
    write(path, [])
    assert read_header(path) is None
    assert list(iter_lines(path)) == []


def test_compression_follows_the_file_name(tmp_path: Path) -> None:
    write(tmp_path / "a.jsonl.gz", LINES)
    write(tmp_path / "a.jsonl.zst", LINES)
    write(tmp_path / "a.jsonl", LINES)
    assert gzip.decompress((tmp_path / "a.jsonl.gz").read_bytes()) == b"\n".join(LINES) + b"\n"
    with zstandard.ZstdDecompressor().stream_reader((tmp_path / "a.jsonl.zst").open("rb")) as r:
        assert r.read() == b"\n".join(LINES) + b"\n"
    assert (tmp_path / "a.jsonl").read_bytes() == b"\n".join(LINES) + b"\n"


@pytest.mark.parametrize("suffix", SUFFIXES, ids=SUFFIX_IDS)
def test_identical_content_gives_identical_bytes(tmp_path: Path, suffix: str) -> None:
    # gzip is written with mtime=0; the file name is part of a gzip header, so the two
    # recordings share a name and differ in their folder.
    first, second = tmp_path / "one" / f"rec{suffix}", tmp_path / "two" / f"rec{suffix}"
    write(first, LINES, header={"seed": 1})
    write(second, LINES, header={"seed": 1})
    assert first.read_bytes() == second.read_bytes()


def test_writer_creates_parent_folders_and_writes_events(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "rec.jsonl"
    with RecordingWriter(path) as w:
        w.write_event({"type": "gps", "entity": "x"})
    assert list(iter_lines(path)) == [b'{"type":"gps","entity":"x"}']


def test_blank_lines_and_crlf_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "rec.jsonl"
    path.write_bytes(b'{"citywatch_recording":1}\r\n\r\n' + GPS_LINE + b"\r\n\n{}\n")
    assert list(iter_lines(path)) == [GPS_LINE, b"{}"]
    assert read_header(path) == {"citywatch_recording": 1}


# -- Kafka envelopes -------------------------------------------------------------


def envelope(value: object, topic: str = "citywatch.gps") -> bytes:
    return orjson.dumps(
        {
            "kafka": {
                "topic": topic,
                "partition": 3,
                "offset": 42,
                "key": "hz-1",
                "arrival_ms": 1767225600123,
            },
            "value": value,
        }
    )


def test_unwrap_an_envelope_gives_the_value_and_the_topic_type() -> None:
    value = {"ts": 1767225600000, "entity": "hz-1", "lon": 121.0, "lat": 32.0}
    raw, implied, env = unwrap(envelope(value))
    assert orjson.loads(raw) == value
    assert implied == "gps"
    assert env is not None and (env["partition"], env["offset"]) == (3, 42)
    ev = parse_event(raw, default_type=implied)
    assert isinstance(ev, GpsEvent) and ev.entity == "hz-1"


def test_unwrap_a_value_sent_as_text_keeps_its_bytes() -> None:
    text = '{"type":"video","ts":1767225600000,"camera":"c","label":"person","confidence":0.9}'
    raw, implied, _ = unwrap(envelope(text, topic="citywatch.video"))
    assert raw == text.encode()
    assert implied == "video"


@pytest.mark.parametrize(
    ("topic", "implied"),
    [
        ("citywatch.sensor", "sensor"),
        ("prod.citywatch.gps", "gps"),
        ("citywatch.dlq", None),
        ("", None),
        ("gps", "gps"),
    ],
    ids=["sensor", "prefixed-topic", "dlq", "no-topic", "bare-name"],
)
def test_unwrap_type_implied_by_the_topic(topic: str, implied: str | None) -> None:
    assert unwrap(envelope({}, topic=topic))[1] == implied


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(GPS_LINE, id="plain-event"),
        pytest.param(b'{"kafka":{"topic":"citywatch.gps"}}', id="no-value"),
        pytest.param(b'{"kafka":{"topic":"citywatch.gps"},"value":', id="truncated"),
        pytest.param(b'{"kafka":', id="prefix-only"),
        pytest.param(b'{"kafka":1,"value":{}}', id="kafka-not-an-object"),
    ],
)
def test_unwrap_leaves_other_lines_as_they_are(line: bytes) -> None:
    assert unwrap(line) == (line, None, None)


def test_envelopes_round_trip_through_a_compressed_recording(tmp_path: Path) -> None:
    path = tmp_path / "kafka.jsonl.zst"
    lines = [
        envelope({"ts": 1767225600000 + i, "entity": f"e{i}", "lon": 121.0, "lat": 32.0})
        for i in range(3)
    ]
    write(path, lines, header={"recorder": "test"})
    events = [parse_event(raw, default_type=t) for raw, t, _ in map(unwrap, iter_lines(path))]
    assert [e.entity for e in events if isinstance(e, GpsEvent)] == ["e0", "e1", "e2"]
