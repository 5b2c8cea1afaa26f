"""What detectors know of a zone: its id, kind, name, rule overrides and shape.

Defined in ``geo`` (the lower layer) so that loading zones never reaches up into
the detectors; :mod:`citywatch.detectors.base` re-exports both names.

>>> ZoneMeta("ap", "airport_site").rules
{}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ZoneMeta:
    """What detectors need to know of a zone: its kind and rule overrides.

    ``geometry`` (a shapely geometry, optional) is only read by detectors that
    test track segments against the zone (``geofence.cross``).
    """

    id: str
    kind: str
    name: str = ""
    rules: Mapping[str, Any] = field(default_factory=dict)
    geometry: Any = field(default=None, repr=False, compare=False)


ZoneCatalog = Mapping[str, ZoneMeta]
