"""The ``citywatch`` command line: one subcommand per module in ``citywatch.flows.commands``."""

from __future__ import annotations

import argparse
import faulthandler
import gc
import importlib
import logging
import signal
import sys
from collections.abc import Sequence

from redis.exceptions import NoPermissionError

from citywatch.detectors.state import StateError
from citywatch.flows.commands import COMMANDS
from citywatch.flows.config import ConfigError, load_config
from citywatch.flows.logs import FORMATS, resolve_format, setup_logging
from citywatch.geo.errors import ZoneFileError
from citywatch.sinks.client import permission_message
from citywatch.sinks.dispatch import DispatchError
from citywatch.sinks.embedded_redis import EmbeddedRedisError

EPILOG = """\
Configuration: one TOML file (--config; default: the bundled Nantong sample),
overridden by CITYWATCH_SECTION__KEY for any key (e.g. CITYWATCH_FLOW__SHARDS=4)
and the shorthands CITYWATCH_REDIS_URL, CITYWATCH_REDIS_PREFIX,
CITYWATCH_KAFKA_BOOTSTRAP and CITYWATCH_ZONES; `citywatch config check FILE`
validates a file. Without a Redis URL an embedded redis-server is started and
stopped by the program.
"""

# Errors that mean "fix your input or setup", reported in one line, exit code 2.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError,
    ZoneFileError,
    DispatchError,
    EmbeddedRedisError,
    StateError,
    ValueError,
)


def user_error(exc: BaseException) -> BaseException | None:
    """The "fix your input or setup" error behind ``exc``, if any: the flow's workers
    wrap what a step raised, so the cause chain is searched."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, (*USER_ERRORS, NoPermissionError)):
            return cur
        cur = cur.__cause__ or cur.__context__
    return None


def _configured_format(args: argparse.Namespace) -> str | None:
    """``[logging] format`` of the command's config; None when it cannot be read
    (the command itself then reports what is wrong with the file)."""
    try:
        return load_config(getattr(args, "config", None)).logging.format
    except Exception:  # noqa: BLE001 - the command reports config errors itself
        return None


def version_text() -> str:
    """citywatch's version and those of the parts it runs on, one line."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from citywatch import __version__

    def dist(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    try:
        import confluent_kafka

        librdkafka = str(confluent_kafka.libversion()[0])
    except ImportError:  # pragma: no cover - a hard dependency
        librdkafka = "not installed"
    return (
        f"citywatch {__version__} (Python {platform.python_version()}, "
        f"bytewax {dist('bytewax')}, librdkafka {librdkafka}, redis-py {dist('redis')})"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="citywatch",
        description="Real-time warning engine for a city command centre.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version",
        action="version",
        version=version_text(),
        help="print the versions of citywatch, Python, bytewax, librdkafka and redis-py",
    )
    parser.add_argument(
        "--log-format",
        choices=FORMATS,
        default=None,
        help=(
            "log lines on stderr: json (one object per line: ts, level, logger, message and "
            "fields such as source, entity, alert_id, wo_id) or text; default: "
            "CITYWATCH_LOG_FORMAT, else [logging] format, else text on a terminal, JSON otherwise"
        ),
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


# The cyclic collector's first threshold (default 700 allocations): a city's flow keeps
# millions of long-lived objects, and collecting every 700 new ones walked them far
# too often (replay of 5 city minutes: 11 % faster with this, the same alerts; see
# benchmarks/RESULTS.md).
GC_THRESHOLDS = (200_000, 20, 100)


def main(argv: Sequence[str] | None = None) -> int:
    gc.set_threshold(*GC_THRESHOLDS)
    # ``kill -USR2 PID`` prints every thread's stack to stderr (a process that hangs).
    if sys.__stderr__ is not None:
        faulthandler.register(signal.SIGUSR2, file=sys.__stderr__, all_threads=True)
    args = build_parser().parse_args(argv)
    try:
        # Warnings and errors by default; long-running commands raise it to info.
        setup_logging(resolve_format(args.log_format, _configured_format(args)), logging.WARNING)
        code: int = args.func(args)
        return code
    except Exception as exc:
        cause = user_error(exc)
        if cause is None:
            raise
        if isinstance(cause, NoPermissionError):
            cause = DispatchError(permission_message(cause, getattr(args, "redis_url", "") or ""))
        print(f"citywatch {args.command}: error: {cause}", file=sys.stderr)
        for line in getattr(cause, "problems", [])[1:]:
            print(f"  {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ncitywatch {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
