"""Console settings: the ``[console]`` table of the configuration file.

>>> ConsoleSettings.from_table({"port": 9000}).port
9000
>>> ConsoleSettings.from_table({"session_idle_s": 0})
Traceback (most recent call last):
...
citywatch.console.settings.ConsoleSettingsError: [console] session_idle_s: must be > 0, got 0
>>> ConsoleSettings(time_zone="Asia/Beijing")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
citywatch.console.settings.ConsoleSettingsError: [console] time_zone: unknown time zone ...
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class ConsoleSettingsError(ValueError):
    """The ``[console]`` table is wrong; fix the named setting in the TOML file."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsoleSettings:
    host: str = "127.0.0.1"
    port: int = 8765
    session_idle_s: int = 1800  # signed out after this long without a request
    session_max_s: int = 43200  # and after this long whatever the activity
    refresh_s: float = 2.0  # how often open work orders are re-read from Redis
    time_zone: str = "Asia/Shanghai"  # every time the console shows is in this zone
    secure_cookies: bool = False  # Secure cookies even when the request did not come over TLS
    # Failed sign-ins, counted per user name and per client address: after
    # login_free_failures, each further one makes the next attempt wait login_delay_s,
    # doubling up to login_delay_max_s; counts are forgotten login_window_s after the last.
    login_free_failures: int = 5
    login_delay_s: float = 2.0
    login_delay_max_s: float = 900.0
    login_window_s: int = 3600
    # Password hashing (scrypt, ~16 MiB each) runs on hash_workers threads with at most
    # hash_queue sign-ins waiting; beyond that a sign-in is answered 503 at once.
    hash_workers: int = 2
    hash_queue: int = 16

    def __post_init__(self) -> None:
        for name in (
            "port",
            "session_idle_s",
            "session_max_s",
            "refresh_s",
            "login_free_failures",
            "login_delay_s",
            "login_delay_max_s",
            "login_window_s",
            "hash_workers",
            "hash_queue",
        ):
            value = getattr(self, name)
            if value <= 0:
                msg = f"[console] {name}: must be > 0, got {value}"
                raise ConsoleSettingsError(msg)
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            msg = (
                f"[console] time_zone: unknown time zone {self.time_zone!r}; use an IANA "
                "name such as 'Asia/Shanghai' or 'UTC'"
            )
            raise ConsoleSettingsError(msg) from None
        if self.session_idle_s > self.session_max_s:
            msg = (
                f"[console] session_idle_s ({self.session_idle_s}) must not exceed "
                f"session_max_s ({self.session_max_s})"
            )
            raise ConsoleSettingsError(msg)

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> ConsoleSettings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(table) - known)
        if unknown:
            msg = f"[console] unknown setting(s) {unknown}; known: {sorted(known)}"
            raise ConsoleSettingsError(msg)
        return cls(**dict(table))
