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


@dataclass
class Score:
    per_kind: dict[str, KindScore] = field(default_factory=dict)
    missed: list[dict[str, Any]] = field(default_factory=list)
    false_alerts: list[Mapping[str, Any]] = field(default_factory=list)

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
    for alert in alerts:
        if wanted is not None and alert["kind"] not in wanted:
            continue
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
    return result
