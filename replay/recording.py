"""The recording format: JSON Lines, optionally gzip- or zstd-compressed.

A recording is what ``citywatch generate`` and ``citywatch record`` write and
``citywatch replay`` / ``bench`` / ``demo`` read:

* **Lines.** UTF-8, one JSON object per line, ``\n``-terminated (``\r\n`` and
  blank lines are tolerated on reading), in **arrival order**: the order the
  events reached the gateway, which may differ from event-time order by
  network delay; replaying keeps it, and late events stay late.
* **Events.** Each line is an input event as in the input contract
  (``type``, ``ts``, and the type's fields), bytes as received: a line that
  is not valid JSON or not a valid event is replayed as is and becomes a dead
  letter, exactly as it would live.
* **Header.** An optional first line ``{"citywatch_recording": 1, ...}``
  (``1`` is the format version) carries the writer's parameters: the
  generator's under ``"generator"`` (``name``, ``minutes``, ``seed``,
  ``start``, ``scale``, ``bad_per_mille``, ``late_per_mille``, ``inject``),
  the recorder's under its own key. Readers skip it; ``read_header`` returns
  it. A header line anywhere else (recordings concatenated with ``cat``) is
  not skipped: it is replayed and becomes a dead letter that says so.
  ``citywatch bench`` reports the generator's parameters with its figures.
* **Kafka envelope.** A line may wrap its event as ``{"kafka": {"topic",
  "partition", "offset", "key", "arrival_ms"}, "value": {...}}`` (``value``
  may also be the raw message as a JSON string). Readers unwrap it; the event
  type comes from the topic's last dotted part (``citywatch.gps`` → ``gps``)
  when the event has none; several enveloped files are merged by
  ``arrival_ms``, and each recorded partition replays as its own source.
* **Compression** follows the file name: ``.gz`` gzip (written with no file
  name and mtime 0, so the same content gives the same bytes), ``.zst`` zstd
  (level 3), anything else plain.

Reading and writing stream: ``iter_lines`` yields one line at a time from the
(decompressing) file object and ``RecordingWriter`` writes through a buffered
(compressing) stream, so memory does not grow with the recording's length.

>>> import tempfile, os
>>> p = os.path.join(tempfile.mkdtemp(), "r.jsonl.gz")
>>> with RecordingWriter(p, header={"seed": 1}) as w:
...     w.write_line(b'{"type":"gps"}')
>>> read_header(p)["seed"], list(iter_lines(p))
(1, [b'{"type":"gps"}'])
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any, cast

import orjson

HEADER_KEY = b'{"citywatch_recording"'
ENVELOPE_PREFIX = b'{"kafka":'
FORMAT_VERSION = 1


def _open_read(path: str | Path) -> IO[bytes]:
    p = str(path)
    if p.endswith(".gz"):
        return cast(IO[bytes], gzip.open(p, "rb"))
    if p.endswith(".zst"):
        import zstandard

        raw = open(p, "rb")  # noqa: SIM115 - closed with the stream reader
        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw, closefd=True))
    return open(p, "rb")  # noqa: SIM115 - the caller closes it


def _open_write(path: str | Path) -> IO[bytes]:
    p = str(path)
    Path(p).parent.mkdir(parents=True, exist_ok=True)
    if p.endswith(".gz"):
        # No file name and mtime=0 in the gzip header: same content, same bytes.
        return cast(IO[bytes], _ClosingGzip(open(p, "wb")))  # noqa: SIM115
    if p.endswith(".zst"):
        import zstandard

        return zstandard.ZstdCompressor(level=3).stream_writer(open(p, "wb"), closefd=True)  # noqa: SIM115
    return open(p, "wb")  # noqa: SIM115 - closed by RecordingWriter


class _ClosingGzip(gzip.GzipFile):
    """A gzip writer over a file object it owns and closes."""

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__(filename="", mode="wb", compresslevel=6, fileobj=raw, mtime=0)
        self._raw = raw

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._raw.close()


def read_header(path: str | Path) -> dict[str, Any] | None:
    """The header of a recording, or None when it has none."""
    with _open_read(path) as fh:
        first = fh.readline()
    if first.startswith(HEADER_KEY):
        header: dict[str, Any] = orjson.loads(first)
        return header
    return None


def iter_lines(path: str | Path) -> Iterator[bytes]:
    """Raw lines of a recording (first-line header and blank lines skipped, envelopes kept).

    A header line further down is yielded: the parser turns it into a dead letter
    saying that recordings were concatenated, rather than dropping it unseen.
    """
    with _open_read(path) as fh:
        for n, line in enumerate(fh):
            line = line.rstrip(b"\r\n")
            if not line or (n == 0 and line.startswith(HEADER_KEY)):
                continue
            yield line


def unwrap(line: bytes) -> tuple[bytes, str | None, dict[str, Any] | None]:
    """The event bytes of a line, the event type its topic implies, and the envelope."""
    if not line.startswith(ENVELOPE_PREFIX):
        return line, None, None
    try:
        doc = orjson.loads(line)
        env = doc["kafka"]
        value = doc["value"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return line, None, None
    if not isinstance(env, dict):
        return line, None, None
    raw = value.encode() if isinstance(value, str) else orjson.dumps(value)
    topic = str(env.get("topic") or "")
    implied = topic.rsplit(".", 1)[-1] if topic else None
    return raw, (implied if implied in ("gps", "sensor", "video") else None), env


class RecordingWriter:
    """Streams lines into a recording, with an optional header line first."""

    def __init__(self, path: str | Path, header: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self._fh = _open_write(path)
        self.lines = 0
        if header is not None:
            self._fh.write(orjson.dumps({"citywatch_recording": FORMAT_VERSION, **header}) + b"\n")

    def write_line(self, line: bytes) -> None:
        self._fh.write(line + b"\n")
        self.lines += 1

    def write_lines(self, lines: list[bytes]) -> None:
        """Several lines at once (one write call; the generator's hot path)."""
        if lines:
            self._fh.write(b"\n".join(lines) + b"\n")
            self.lines += len(lines)

    def write_event(self, obj: dict[str, Any]) -> None:
        self.write_line(orjson.dumps(obj))

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
