"""Log lines of every command: JSON for ops stacks, or text for people.

The format is, first found: ``citywatch --log-format json|text|auto``, the
environment variable ``CITYWATCH_LOG_FORMAT``, ``[logging] format`` in the
config file; ``auto`` (the default) means text when stderr is a terminal and
JSON otherwise. Logs go to stderr.

**JSON**: one object per line with ``ts`` (RFC 3339, UTC, milliseconds),
``level``, ``logger``, ``message`` and the structured fields a log call passes
with ``extra=`` (:data:`FIELDS`: ``source``, ``entity``, ``alert_id``,
``wo_id`` and others), so that an ops stack indexes them.

**Text**: ``ts level logger: message key=value ...``, with every control
character from input escaped (:func:`citywatch.flows.printable.printable`), so
an id with an ANSI escape or a newline cannot recolour a terminal or forge a
line.

>>> rec = logging.LogRecord("citywatch.run", logging.INFO, "", 0, "dead %s", ("a\\nb",), None)
>>> rec.created, rec.source = 0.0, "gps#0"
>>> print(JsonFormatter().format(rec))  # doctest: +ELLIPSIS
{"ts":"1970-01-01T00:00:00.000Z","level":"info",...,"message":"dead a\\nb","source":"gps#0"}
>>> TextFormatter().format(rec)
'1970-01-01T00:00:00.000Z info citywatch.run: dead a\\\\nb source=gps#0'
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

import orjson

from citywatch.flows.printable import printable

FORMATS = ("auto", "json", "text")
ENV = "CITYWATCH_LOG_FORMAT"
# The structured fields of the important log calls (``extra={...}``), for ops stacks.
FIELDS = ("source", "entity", "alert_id", "wo_id", "queue", "department", "webhook")

_STD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
}


def _ts(created: float) -> str:
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
        + f".{int(created * 1000) % 1000:03d}Z"
    )


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STD_ATTRS and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message and the ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": _ts(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_extras(record),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


class TextFormatter(logging.Formatter):
    """``ts level logger: message key=value ...`` with control characters escaped."""

    def format(self, record: logging.LogRecord) -> str:
        fields = "".join(f" {k}={printable(v)}" for k, v in _extras(record).items())
        line = (
            f"{_ts(record.created)} {record.levelname.lower()} {record.name}: "
            f"{printable(record.getMessage())}{fields}"
        )
        if record.exc_info:  # a traceback is ours, not input: kept on its own lines
            line += "\n" + self.formatException(record.exc_info)
        return line


class _StderrHandler(logging.Handler):
    """Writes to the current ``sys.stderr`` (so a redirected stderr gets the lines)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - logging must never break the program
            self.handleError(record)


def resolve_format(flag: str | None, configured: str | None = None) -> str:
    """``json`` or ``text``: the flag, else the environment, else the config, else
    text on a terminal and JSON otherwise."""
    for choice, where in ((flag, "--log-format"), (os.environ.get(ENV), ENV)):
        if choice:
            if choice not in FORMATS:
                msg = f"{where}: {choice!r} is not one of {', '.join(FORMATS)}"
                raise ValueError(msg)
            if choice != "auto":
                return choice
            return "text" if sys.stderr.isatty() else "json"
    if configured and configured != "auto":
        return configured
    return "text" if sys.stderr.isatty() else "json"


def setup_logging(fmt: str, level: int = logging.INFO) -> None:
    """Send what the ``citywatch`` loggers say at ``level`` or above to stderr in ``fmt``.

    The chosen format is exported in ``CITYWATCH_LOG_FORMAT`` so that worker
    processes a command starts log the same way.
    """
    handler = _StderrHandler(level)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger("citywatch")
    root.handlers[:] = [handler]
    if level < root.getEffectiveLevel():  # the handler filters; the logger only opens up
        root.setLevel(level)
    os.environ[ENV] = fmt
