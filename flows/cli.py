"""The ``citywatch`` command line: one subcommand per module in ``flows.commands``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from flows.commands import COMMANDS
from flows.config import ConfigError
from geo.errors import ZoneFileError
from sinks.embedded_redis import EmbeddedRedisError
from sinks.redis_dispatch import DispatchError

EPILOG = """\
Configuration: one TOML file (--config; default: the bundled Nantong sample),
overridden by CITYWATCH_REDIS_URL, CITYWATCH_REDIS_PREFIX,
CITYWATCH_KAFKA_BOOTSTRAP and CITYWATCH_ZONES. Without a Redis URL an embedded
redis-server is started and stopped by the program.
"""

# Errors that mean "fix your input or setup", reported in one line, exit code 2.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError,
    ZoneFileError,
    DispatchError,
    EmbeddedRedisError,
    ValueError,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="citywatch",
        description="Real-time warning engine for a city command centre.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except USER_ERRORS as exc:
        print(f"citywatch {args.command}: error: {exc}", file=sys.stderr)
        for line in getattr(exc, "problems", [])[1:]:
            print(f"  {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ncitywatch {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
