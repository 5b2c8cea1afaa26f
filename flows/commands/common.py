"""Argument helpers shared by the subcommands."""

from __future__ import annotations

import argparse
from pathlib import Path


def speed(text: str) -> float | None:
    """``--speed`` values: a positive factor of real time, or ``max``."""
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        msg = f"speed must be a number like 50 or 'max', got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if value <= 0:
        msg = f"speed must be > 0, got {text}"
        raise argparse.ArgumentTypeError(msg)
    return value


def add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="TOML configuration (default: data/nantong/citywatch.toml)",
    )
