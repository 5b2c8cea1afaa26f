"""Scoring alerts against a generator's ground truth.

An alert matches an injected incident when kind, subject and zone agree and
its event time falls in the incident's window. Recall counts incidents with at
least one matching alert; precision counts alerts that match some incident.

>>> truth = {"incidents": [{"id": "i1", "kind": "track.stop", "subject": "hz-1",
...          "zone": None, "start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:01:00Z"}]}
>>> alerts = [{"kind": "track.stop", "subject": "hz-1", "zone": None,
...            "ts": "2026-01-01T00:00:30.000Z"}]
>>> score(alerts, truth).per_kind["track.stop"].recall
1.0
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from citywatch.detectors.events import parse_ts


@dataclass
class KindScore:
    incidents: int = 0
    found: int = 0
    alerts: int = 0
    true_alerts: int = 0

    @property
    def recall(self) -> float:
        return self.found / self.incidents if self.incidents else 1.0

    @property
    def precision(self) -> float:
        return self.true_alerts / self.alerts if self.alerts else 1.0


# An alert on an incident's kind, subject and zone up to this long after its window
# is the same incident raised again: it counts in ``alerts_per_incident``.
REPEAT_GRACE_MS = 3_600_000


@dataclass
class Score:
    per_kind: dict[str, KindScore] = field(default_factory=dict)
    missed: list[dict[str, Any]] = field(default_factory=list)
    false_alerts: list[Mapping[str, Any]] = field(default_factory=list)
    # Alerts on a found incident's kind, subject and zone, from its start to
    # REPEAT_GRACE_MS after its end (the first alert and any repeats).
    incident_alerts: int = 0

    def summary(self) -> dict[str, float]:
        """Recall and precision over all kinds, and alerts per found incident."""
        incidents = sum(s.incidents for s in self.per_kind.values())
        found = sum(s.found for s in self.per_kind.values())
        alerts = sum(s.alerts for s in self.per_kind.values())
        true = sum(s.true_alerts for s in self.per_kind.values())
        return {
            "recall": round(found / incidents, 4) if incidents else 1.0,
            "precision": round(true / alerts, 4) if alerts else 1.0,
            "alerts_per_incident": round(self.incident_alerts / found, 3) if found else 0.0,
        }

    @property
    def all_found(self) -> bool:
        return not self.missed

    def to_json(self) -> dict[str, Any]:
        return {
            kind: {
                "incidents": s.incidents,
                "found": s.found,
                "alerts": s.alerts,
                "true_alerts": s.true_alerts,
                "precision": round(s.precision, 4),
                "recall": round(s.recall, 4),
            }
            for kind, s in sorted(self.per_kind.items())
        }


def load_truth(path: str | Path) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(Path(path).read_bytes())
    return doc


def _matches(alert: Mapping[str, Any], inc: Mapping[str, Any], ts: int) -> bool:
    return (
        alert["kind"] == inc["kind"]
        and alert["subject"] == inc["subject"]
        and alert.get("zone") == inc.get("zone")
        and parse_ts(inc["start"]) <= ts <= parse_ts(inc["end"])
    )


def score(
    alerts: Iterable[Mapping[str, Any]],
    truth: Mapping[str, Any],
    kinds: Iterable[str] | None = None,
) -> Score:
    """Precision and recall per alert kind (only ``kinds`` if given)."""
    wanted = set(kinds) if kinds is not None else None
    incidents = [i for i in truth["incidents"] if wanted is None or i["kind"] in wanted]
    result = Score()
    found: set[str] = set()
    for inc in incidents:
        result.per_kind.setdefault(inc["kind"], KindScore()).incidents += 1
    alerts_seen: list[Mapping[str, Any]] = []
    for alert in alerts:
        if wanted is not None and alert["kind"] not in wanted:
            continue
        alerts_seen.append(alert)
        ks = result.per_kind.setdefault(alert["kind"], KindScore())
        ks.alerts += 1
        ts = parse_ts(alert["ts"])
        hit = [inc for inc in incidents if _matches(alert, inc, ts)]
        if hit:
            ks.true_alerts += 1
            found.update(inc["id"] for inc in hit)
        else:
            result.false_alerts.append(alert)
    for inc in incidents:
        if inc["id"] in found:
            result.per_kind[inc["kind"]].found += 1
        else:
            result.missed.append(inc)
    result.incident_alerts = _incident_alerts(
        alerts_seen, [i for i in incidents if i["id"] in found]
    )
    return result


def _incident_alerts(alerts: list[Mapping[str, Any]], found: list[dict[str, Any]]) -> int:
    """Alerts that belong to a found incident: its key, from its start to an hour after
    its end (each alert counted once, however many incidents it belongs to)."""
    spans: dict[tuple[str, str, Any], list[tuple[int, int]]] = {}
    for inc in found:
        key = (inc["kind"], inc["subject"], inc.get("zone"))
        end = parse_ts(inc["end"]) + REPEAT_GRACE_MS
        spans.setdefault(key, []).append((parse_ts(inc["start"]), end))
    n = 0
    for a in alerts:
        ts = parse_ts(a["ts"])
        n += any(
            t0 <= ts <= t1 for t0, t1 in spans.get((a["kind"], a["subject"], a.get("zone")), ())
        )
    return n
