"""Validation helpers for the frozen parameter dataclasses of detectors."""

from __future__ import annotations

import dataclasses
from typing import Any

from citywatch.detectors.alerts import check_severity


def positive(owner: str, name: str, value: float) -> None:
    if not value > 0:
        msg = f'{owner}: "{name}" must be > 0, got {value!r}'
        raise ValueError(msg)


def non_negative(owner: str, name: str, value: float) -> None:
    if not value >= 0:
        msg = f'{owner}: "{name}" must be >= 0, got {value!r}'
        raise ValueError(msg)


def severity(owner: str, value: str) -> None:
    check_severity(value, owner)


def hours_window(owner: str, value: Any) -> tuple[int, int] | None:
    """Parse ``"20-6"`` / ``[20, 6]`` local-hour windows; None means all day."""
    if value is None:
        return None
    if isinstance(value, str):
        parts = value.replace(":00", "").split("-")
        value = (
            [int(p) for p in parts]
            if len(parts) == 2 and all(p.strip().isdigit() for p in parts)
            else value
        )
    if (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(h, int) and 0 <= h <= 24 for h in value)
    ):
        return (int(value[0]), int(value[1]))
    msg = f'{owner}: "hours" must be [start, end] local hours 0-24 like [20, 6], got {value!r}'
    raise ValueError(msg)


def build(cls: type, owner: str, raw: dict[str, Any]) -> Any:
    """Build a params dataclass from a config table, naming unknown keys."""
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        msg = (
            f"{owner}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}"
        )
        raise ValueError(msg)
    values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in raw.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        text = str(exc)
        msg = text if text.startswith(owner) else f"{owner}: {text}"
        raise ValueError(msg) from None
