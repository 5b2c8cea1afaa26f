"""Argument helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import signal
from collections.abc import Callable
from pathlib import Path

from citywatch.flows.config import ConfigError


def positive_or_none(
    option: str, none_words: tuple[str, ...], example: str
) -> Callable[[str], float | None]:
    """An argparse type: a number > 0, or one of ``none_words`` for None (no limit)."""
    off = repr(none_words[0])

    def parse(text: str) -> float | None:
        if text in none_words:
            return None
        try:
            value = float(text)
        except ValueError:
            msg = f"{option} must be a number like {example}, or {off}, got {text!r}"
            raise argparse.ArgumentTypeError(msg) from None
        if value <= 0:
            msg = f"{option} must be > 0 (or {off}), got {text}"
            raise argparse.ArgumentTypeError(msg)
        return value

    return parse


# ``--speed``: a positive factor of real time, or ``max``.
speed = positive_or_none("--speed", ("max",), "50")


def add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="TOML configuration (default: data/nantong/citywatch.toml)",
    )


def check_cluster(args: argparse.Namespace) -> None:
    """``-w``/``-p`` at least 1; ``--process-id`` and ``--addresses`` only together."""
    for name in ("workers", "processes"):
        if getattr(args, name) < 1:
            msg = f"--{name} must be >= 1, got {getattr(args, name)}"
            raise ConfigError(msg)
    if (args.process_id is None) != (args.addresses is None):
        msg = "--process-id and --addresses go together (one cluster across hosts)"
        raise ConfigError(msg)


def stop_on_interrupt() -> None:
    """SIGINT (Ctrl-C) stops a serving command from its first moment. A shell starts a
    background job with SIGINT ignored, and Python keeps it so; the web server takes
    SIGINT only once it serves, so one that came while the command started up was lost
    and the command ran on."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
