"""The reference data a flow runs with, and the batched annotation of events.

``Reference.annotate`` takes a batch of parsed events, fills sensor and camera
positions from the registries, and sets each event's zones and town in one
vectorised pass. Events with no position at all become dead letters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from citywatch.geo.catalog import ZoneMeta
from citywatch.geo.jurisdictions import Jurisdictions, load_jurisdictions
from citywatch.geo.registry import Device, load_registry
from citywatch.geo.zones import Zone, ZoneIndex, load_zones


class Placed(Protocol):
    """An event as the annotation reads it: a position, and zones and town to set."""

    zones: tuple[str, ...]
    town: str | None

    @property
    def lon(self) -> float | None: ...
    @property
    def lat(self) -> float | None: ...


class Placeable(Placed, Protocol):
    """An event from a device that may come without a position (sensor, camera)."""

    @property
    def type(self) -> str: ...
    @property
    def key(self) -> str: ...
    def place(self, lon: float, lat: float) -> None: ...


@dataclass(slots=True)
class Reference:
    zones: ZoneIndex
    jurisdictions: Jurisdictions
    sensors: dict[str, Device]
    cameras: dict[str, Device]

    @classmethod
    def load(
        cls,
        zones: Path,
        jurisdictions: Path,
        sensors: Path | None = None,
        cameras: Path | None = None,
        known_kinds: Sequence[str] | None = None,
    ) -> Reference:
        return cls(
            ZoneIndex(load_zones(zones, known_kinds or None)),
            load_jurisdictions(jurisdictions),
            load_registry(sensors),
            load_registry(cameras),
        )

    def zone_catalog(self) -> dict[str, ZoneMeta]:
        return {z.id: _meta(z) for z in self.zones.zones}

    def fill_position(self, ev: Placeable) -> str | None:
        """Give a sensor or camera event its registered position; the reason if it has none."""
        if ev.lon is not None and ev.lat is not None:
            return None
        registry, name = (
            (self.sensors, "sensor") if ev.type == "sensor" else (self.cameras, "camera")
        )
        dev = registry.get(ev.key)
        if dev is None:
            return (
                f"{ev.type}.lon: missing, and {name} {ev.key!r} is not in the {name} registry; "
                f"send lon/lat or register the {name}"
            )
        ev.place(dev.lon, dev.lat)
        return None

    def annotate(self, events: Sequence[Placed]) -> None:
        """Set each event's zones and town in place, in one vectorised pass per batch."""
        if not events:
            return
        n = len(events)
        lon = np.fromiter((ev.lon for ev in events), dtype=float, count=n)
        lat = np.fromiter((ev.lat for ev in events), dtype=float, count=n)
        for ev, zs, town in zip(
            events, self.zones.zones_of(lon, lat), self.jurisdictions.locate(lon, lat), strict=True
        ):
            ev.zones = zs
            ev.town = town


def _meta(z: Zone) -> ZoneMeta:
    return ZoneMeta(z.id, z.kind, z.name, dict(z.rules), z.geometry)
