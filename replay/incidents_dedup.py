"""Duplicate-heavy alert traffic with incident-level truth, for the dedup benchmark.

Each true incident happens at one place and lasts a while; several reporters
see it and each raises alerts the way the detectors do: 1–5 cameras
(``video.intrusion``, repeated after a cooldown), 0–4 nearby sensors
(``sensor.threshold``), 0–3 vehicles (``track.stop`` / ``geofence.enter``),
at their own positions (up to ``spread_m`` from the scene), at times spread over
the incident, with severities that may rise. Half the incidents lie in a named
zone (a levee section, a site) drawn from a pool; the rest have none. Alerts
reach the merger in arrival order: event time plus a random pipeline delay
(shards and workers do not keep order).

Truth is the incident each alert was generated for, so the merge can be
scored at incident level with :func:`score_incidents`.

>>> alerts, truth = dedup_traffic(DedupParams(incidents=5, seed=1))
>>> len(set(truth.values())) == 5 and all(truth[a.id] for a in alerts)
True
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from citywatch.detectors.alerts import SEVERITIES, Alert
from citywatch.geo.distance import offset_deg

T0 = 1_781_528_400_000  # 2026-06-15T13:00:00Z


@dataclass(frozen=True, slots=True, kw_only=True)
class DedupParams:
    incidents: int = 1500
    hours: float = 24.0
    zones: int = 1000
    spread_m: float = 250.0
    max_delay_s: float = 20.0
    lon_range: tuple[float, float] = (120.3, 121.9)
    lat_range: tuple[float, float] = (31.7, 32.7)
    seed: int = 7


def _jitter(rng: random.Random, lon: float, lat: float, radius_m: float) -> tuple[float, float]:
    r, a = radius_m * math.sqrt(rng.random()), rng.random() * 2 * math.pi
    dlon, dlat = offset_deg(lat, r * math.cos(a), r * math.sin(a))
    return lon + dlon, lat + dlat


def dedup_traffic(p: DedupParams) -> tuple[list[Alert], dict[str, str]]:
    """Alerts in arrival order, and ``alert id -> true incident id``."""
    rng = random.Random(p.seed)
    zones = [
        (f"zone-{i:04d}", rng.uniform(*p.lon_range), rng.uniform(*p.lat_range))
        for i in range(p.zones)
    ]
    arrivals: list[tuple[float, Alert]] = []
    truth: dict[str, str] = {}
    span_ms = int(p.hours * 3_600_000)
    for n in range(p.incidents):
        tid = f"truth-{n:05d}"
        if rng.random() < 0.5:
            zone, lon, lat = rng.choice(zones)
            lon, lat = _jitter(rng, lon, lat, 100)
        else:
            zone, lon, lat = None, rng.uniform(*p.lon_range), rng.uniform(*p.lat_range)
        start = T0 + rng.randrange(span_ms)
        length_ms = rng.randint(5, 40) * 60_000
        base = rng.choice(SEVERITIES[:3])
        reporters = (
            [("video.intrusion", "video", f"cam-{n}-{i}") for i in range(rng.randint(1, 5))]
            + [("sensor.threshold", "sensor", f"gauge-{n}-{i}") for i in range(rng.randint(0, 4))]
            + [
                (rng.choice(("track.stop", "geofence.enter")), "gps", f"truck-{n}-{i}")
                for i in range(rng.randint(0, 3))
            ]
        )
        for kind, stype, subject in reporters:
            slon, slat = _jitter(rng, lon, lat, p.spread_m)
            episodes = rng.randint(1, 4) if stype == "video" else rng.randint(1, 2)
            for _ in range(episodes):
                first = start + rng.randrange(max(1, length_ms))
                ts = first + rng.randint(0, 120_000)
                sev = base if rng.random() < 0.8 else SEVERITIES[SEVERITIES.index(base) + 1]
                a = Alert.make(
                    kind,
                    sev,
                    subject,
                    stype,
                    zone,
                    slon,
                    slat,
                    ts_ms=ts,
                    first_ts_ms=first,
                    evidence={"truth": tid},
                )
                truth[a.id] = tid
                arrivals.append((ts + rng.random() * p.max_delay_s * 1000, a))
    arrivals.sort(key=lambda x: x[0])
    return [a for _, a in arrivals], truth


@dataclass(frozen=True, slots=True)
class DedupScore:
    alerts: int
    truth_incidents: int
    predicted_incidents: int
    true_positive: int
    found: int
    complete: int

    @property
    def precision(self) -> float:
        return self.true_positive / self.predicted_incidents if self.predicted_incidents else 0.0

    @property
    def recall(self) -> float:
        return self.found / self.truth_incidents if self.truth_incidents else 0.0


def score_incidents(pairs: Sequence[tuple[str, str]], truth: Mapping[str, str]) -> DedupScore:
    """Incident-level precision and recall of ``(alert id, predicted incident id)`` pairs.

    A predicted incident is a true positive when all its alerts belong to one true
    incident and it is the largest predicted incident of that truth (a second one is
    a duplicate work order). A true incident is found when it has a true positive;
    ``complete`` counts those whose alerts all landed in that one incident.

    >>> truth = {"a": "t1", "b": "t1", "c": "t1"}
    >>> s = score_incidents([("a", "p1"), ("b", "p1"), ("c", "p2")], truth)
    >>> (s.predicted_incidents, s.true_positive, s.found, s.complete)
    (2, 1, 1, 0)
    """
    members: dict[str, list[str]] = defaultdict(list)
    for alert_id, inc in pairs:
        members[inc].append(truth[alert_id])
    truth_size = Counter(truth[a] for a, _ in pairs)
    best: dict[str, tuple[int, str]] = {}
    for inc, ts in members.items():
        if len(set(ts)) == 1:
            t = ts[0]
            if t not in best or (len(ts), inc) > best[t]:
                best[t] = (len(ts), inc)
    complete = sum(1 for t, (n, _) in best.items() if n == truth_size[t])
    return DedupScore(
        alerts=len(pairs),
        truth_incidents=len(truth_size),
        predicted_incidents=len(members),
        true_positive=len(best),
        found=len(best),
        complete=complete,
    )
