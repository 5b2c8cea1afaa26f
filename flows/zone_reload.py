"""Hot reload of the zones file while a flow runs (file change or SIGHUP).

A :class:`ZoneReloader` watches the zones file (its modification time and
size, polled) and reloads it when it changes or when the process gets SIGHUP.
The new file is validated in full first: GeoJSON, geometry, kinds, city
bounds, and every zone's rule overrides against the configured geofence rules.
Only then is the reference data in force replaced (``ReferenceHolder.replace``),
so batches parsed after that use the new zones and each detector shard
re-applies the new zone catalog before its next batch. A bad file is rejected
with all its problems (printed and kept in ``last_errors``) and the old zones
stay in force.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from citywatch.detectors.geofence_rules import check_rules
from citywatch.flows.config import Config, ConfigError
from citywatch.flows.pipeline import ReferenceHolder
from citywatch.geo.errors import ZoneFileError
from citywatch.geo.reference import Reference
from citywatch.geo.zones import Bounds, Zone, ZoneIndex, read_geojson, zones_from_geojson
from citywatch.geo.zones_check import raw_rules


def config_bounds(cfg: Config) -> Bounds | None:
    """``[zones] bounds = [min_lon, min_lat, max_lon, max_lat]``: the city's extent, if set."""
    raw = cfg.raw.get("zones", {}).get("bounds") if isinstance(cfg.raw, Mapping) else None
    if raw is None:
        return None
    if not (
        isinstance(raw, list)
        and len(raw) == 4
        and all(isinstance(v, int | float) for v in raw)
        and raw[0] < raw[2]
        and raw[1] < raw[3]
    ):
        msg = f"[zones] bounds: expected [min_lon, min_lat, max_lon, max_lat], got {raw!r}"
        raise ConfigError(msg)
    return (float(raw[0]), float(raw[1]), float(raw[2]), float(raw[3]))


def load_checked_zones(cfg: Config, path: Path) -> list[Zone]:
    """Zones of ``path`` validated as the flow would use them: geometry, kinds, city
    bounds and rule overrides; raises ZoneFileError listing every problem."""
    doc = read_geojson(path)
    problems: list[str] = []
    zones: list[Zone] = []
    try:
        zones = zones_from_geojson(doc, str(path), cfg.zone_kinds or None, config_bounds(cfg))
    except ZoneFileError as exc:
        problems.extend(exc.problems)
    rules = {"enter": cfg.geofence_enter, **cfg.geofence_rules}
    problems.extend(check_rules(raw_rules(doc), rules))
    if problems:
        msg = f"{path}: {len(problems)} problem(s): {problems[0]}"
        raise ZoneFileError(msg, problems)
    return zones


def reload_reference(holder: ReferenceHolder, cfg: Config, path: Path) -> Reference:
    """The current reference with the zones of ``path``; raises ZoneFileError if bad."""
    zones = load_checked_zones(cfg, path)
    old = holder.ref
    return Reference(ZoneIndex(zones), old.jurisdictions, old.sensors, old.cameras)


class ZoneReloader:
    """Reloads the zones file into ``holder`` on change or SIGHUP (see the module doc)."""

    def __init__(
        self,
        holder: ReferenceHolder,
        cfg: Config,
        path: Path | None = None,
        *,
        poll_s: float = 1.0,
        log: IO[str] | None = None,
        on_reload: Callable[[bool], None] | None = None,
    ) -> None:
        self.holder = holder
        self.cfg = cfg
        self.path = Path(path if path is not None else cfg.data.zones)
        self.poll_s = poll_s
        self.log = log if log is not None else sys.stderr
        self.on_reload = on_reload
        self.reloads = 0
        self.rejected = 0
        self.last_errors: list[str] = []
        self._seen = self._stamp()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._old_handler: Any = None

    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def reload_now(self) -> bool:
        """Validate and apply the file now; True if the new zones are in force."""
        self._seen = self._stamp()
        try:
            ref = reload_reference(self.holder, self.cfg, self.path)
        except ZoneFileError as exc:
            self.rejected += 1
            self.last_errors = list(exc.problems)
            self.log.write(
                f"zones reload rejected, the previous zones stay in force: {exc}\n"
                + "".join(f"  {p}\n" for p in exc.problems)
            )
            self.log.flush()
            ok = False
        else:
            self.holder.replace(ref)
            self.reloads += 1
            self.last_errors = []
            self.log.write(f"zones reloaded from {self.path}: {len(ref.zones)} zones\n")
            self.log.flush()
            ok = True
        if self.on_reload is not None:
            self.on_reload(ok)
        return ok

    def _loop(self) -> None:
        while not self._stop.is_set():
            woke = self._wake.wait(self.poll_s)
            if self._stop.is_set():
                break
            self._wake.clear()
            if woke or self._stamp() != self._seen:
                self.reload_now()

    def _on_sighup(self, signum: int, frame: Any) -> None:
        self._wake.set()

    def start(self) -> ZoneReloader:
        """Start watching; installs a SIGHUP handler when called from the main thread."""
        if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGHUP"):
            self._old_handler = signal.signal(signal.SIGHUP, self._on_sighup)
        self._thread = threading.Thread(target=self._loop, name="zone-reloader", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        if self._old_handler is not None:
            signal.signal(signal.SIGHUP, self._old_handler)
            self._old_handler = None


@contextlib.contextmanager
def watching_zones(holder: ReferenceHolder, cfg: Config) -> Iterator[ZoneReloader]:
    """Hot-reload the configured zones file for the duration of a run."""
    reloader = ZoneReloader(holder, cfg).start()
    try:
        yield reloader
    finally:
        reloader.stop()
