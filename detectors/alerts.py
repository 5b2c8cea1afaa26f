"""Alerts: the output contract of every detector, with deterministic ids.

>>> a = Alert.make("track.stop", "orange", "hz-001", "gps", None, 121.0, 32.0,
...                ts_ms=1767225600000, first_ts_ms=1767224700000, evidence={})
>>> a.id == Alert.make("track.stop", "orange", "hz-001", "gps", None, 121.0, 32.0,
...                    ts_ms=1767225600000, first_ts_ms=1767224700000, evidence={}).id
True
>>> a.to_json()["first_ts"]
'2025-12-31T23:45:00.000Z'
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from citywatch.detectors.events import format_ts
from citywatch.detectors.state import set_fields

SEVERITIES = ("blue", "yellow", "orange", "red")
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}


def check_severity(value: str, where: str) -> str:
    if value not in SEVERITY_RANK:
        msg = f"{where}: severity must be one of {', '.join(SEVERITIES)}, got {value!r}"
        raise ValueError(msg)
    return value


def alert_id(kind: str, subject: str, zone: str | None, first_ts_ms: int) -> str:
    """A stable id for one alert episode: same input, same id, on any run.

    >>> alert_id("sensor.threshold", "wl-01", None, 0)
    'al-e2598fcb5352fa3f8001'
    """
    key = f"{kind}|{subject}|{zone or ''}|{first_ts_ms}".encode()
    return "al-" + hashlib.blake2b(key, digest_size=10).hexdigest()


@dataclass(slots=True)
class Alert:
    """One warning: an episode of one kind on one subject (and zone)."""

    id: str
    kind: str
    severity: str
    subject: str
    subject_type: str
    zone: str | None
    lon: float | None
    lat: float | None
    ts_ms: int
    first_ts_ms: int
    evidence: dict[str, Any] = field(default_factory=dict)
    incident: str | None = None
    jurisdiction: str | None = None
    # Wall-clock ns when the triggering event entered the engine; not part of the
    # contract, used to measure ingest-to-work-order latency.
    ingest_ns: int = 0
    # The global event-time watermark (minimum over sources) of the step that raised
    # the alert; not part of the contract. Downstream stages that order alerts clock
    # themselves by it, never by the alert times, which run ahead on a fast partition.
    wm_ms: int | None = None
    # A copy re-sent under the incident that absorbed its own (so the survivor's work
    # order holds it); the alert itself was emitted before. Not part of the contract:
    # alert outputs and counts skip it.
    reissued: bool = False

    def __setstate__(self, state: Any) -> None:
        """Restore a pickled alert (``(None, slots)``, pickle's form for slotted
        objects), including one written before a field was added: the newer fields
        take their defaults."""
        set_fields(self, state[1] if isinstance(state, tuple) else state)

    @classmethod
    def make(
        cls,
        kind: str,
        severity: str,
        subject: str,
        subject_type: str,
        zone: str | None,
        lon: float | None,
        lat: float | None,
        *,
        ts_ms: int,
        first_ts_ms: int,
        evidence: dict[str, Any],
    ) -> Alert:
        return cls(
            alert_id(kind, subject, zone, first_ts_ms),
            kind,
            severity,
            subject,
            subject_type,
            zone,
            lon,
            lat,
            ts_ms,
            first_ts_ms,
            evidence,
        )

    @property
    def family(self) -> str:
        return self.kind.partition(".")[0]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "severity": self.severity,
            "subject": self.subject,
            "subject_type": self.subject_type,
            "zone": self.zone,
            "lon": self.lon,
            "lat": self.lat,
            "ts": format_ts(self.ts_ms),
            "first_ts": format_ts(self.first_ts_ms),
            "evidence": self.evidence,
            "incident": self.incident,
            "jurisdiction": self.jurisdiction,
        }
