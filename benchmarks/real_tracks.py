"""False alerts of the track detectors on real public tracks moved onto Nantong.

Each dataset is imported as ``citywatch import`` does (moved onto Nantong with
its metric geometry, GPX track by track as ``--each`` does, classes spread as
``hazmat_truck:2,tanker:1`` so every track detector, the tanker rendezvous
included, applies), replayed through the whole flow (shipped config, every
detector on, batch size 5000; each fix arrives at its own time, as from a live
feed: the recording keeps ``arrival_ms``, ``--plain`` leaves it out) and every
``track.*`` alert is judged by a hindsight oracle over the same fixes (an alert
that comes out again when its incident's id moves is judged once):

- ``track.stop`` is false when it *repeats* a stay (an earlier stop alert of
  the vehicle within 200 m, the vehicle seen in between, never more than
  300 m (five stop radii) away and never silent for more than 6 hours, after
  which nobody can tell whether it left) or when the fixes of
  ``[first_ts, ts]`` do not stay (their 90th percentile distance from the
  alert's place is over 2 x ``radius_m``);
- ``track.gap`` is false when the silence (to the next fix in the data) was
  an ordinary dropout: under max(240 s, 2.5 x the vehicle's median interval);
- ``track.speeding`` is false when the speed over ``[first_ts, ts]`` (path
  length over time, or the mean reported speed) is not over ``limit_kmh``;
- ``track.rendezvous`` is false when the two vehicles' median places over the
  shared time are more than 2 x ``radius_m`` apart or either moved.

Vehicle-hours are the time between consecutive fixes of a vehicle, counting
intervals up to 30 minutes; each rate comes with its one-sided 95 % Poisson
upper bound (a rate shown by few vehicle-hours is not shown). Alerts of the
other families (geofences) are counted, not judged: they follow from where the
moved tracks happen to lie.

    python -m citywatch.benchmarks.real_tracks            # data/real, the 1-5 s set too
    python -m citywatch.benchmarks.real_tracks --tracktable PATH.traj --gpx A.gpx ...
    python -m citywatch.benchmarks.real_tracks --tracktable P.traj --verdicts-out new.jsonl
    python -m citywatch.benchmarks.real_tracks --compare old.jsonl new.jsonl   # alert by alert
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from bytewax.testing import TestingSink, TestingSource, run_main

from citywatch.detectors.alerts import Alert
from citywatch.detectors.events import DeadLetter
from citywatch.flows.config import Config, load_config
from citywatch.flows.pipeline import FlowOutputs, ReferenceHolder, build_flow
from citywatch.flows.records import RawBatch
from citywatch.flows.runner import load_reference
from citywatch.geo.distance import haversine_m
from citywatch.replay.real_tracks import class_picker, read_all, relocate, to_events
from citywatch.sinks.dispatch import Dispatch

REAL = Path(__file__).resolve().parent.parent / "data" / "real"
MAX_OBSERVED_MS = 30 * 60_000
# The extracts of people and vehicles with fixes every 1-5 s: activities recorded by
# sport watches, bicycle computers and phones (FIT and TCX test files of
# python-fitparse, tormoder/fit and runpandas), two 1 s tracks of npm stoplight,
# gpxo's 2 s walk and gpxpy's 5 s car
FAST = [
    *sorted((REAL / "fit").glob("*.gpx.gz")),
    *sorted((REAL / "runpandas").glob("*.gpx.gz")),
    *(
        REAL / "gpx" / name
        for name in (
            "gpxo-ExampleTrack.gpx",
            "around-visnjan-with-car.gpx",
            "stoplight-sample.gpx",
            "stoplight-sample-ride.gpx",
        )
    ),
]


@dataclass
class Verdict:
    """What one dataset gave: vehicle-hours, alerts and false alerts by kind."""

    name: str
    vehicles: int
    fixes: int
    vehicle_hours: float
    median_interval_s: float
    alerts: Counter[str] = field(default_factory=Counter)
    false: Counter[str] = field(default_factory=Counter)
    reasons: list[str] = field(default_factory=list)
    dead: Counter[str] = field(default_factory=Counter)
    judged: list[dict[str, Any]] = field(default_factory=list)  # every track alert, judged

    def per_kh(self, n: float) -> float:
        return n / self.vehicle_hours * 1000 if self.vehicle_hours else float("nan")


def poisson_upper(k: int, confidence: float = 0.95) -> float:
    """The one-sided upper confidence bound on a Poisson mean after ``k`` events: the
    mean under which seeing ``k`` or fewer has probability ``1 - confidence`` (3.00
    for none seen, 4.74 for one).

    >>> [round(poisson_upper(k), 2) for k in (0, 1, 5)]
    [3.0, 4.74, 10.51]
    """

    def at_most_k(mean: float) -> float:
        term = total = math.exp(-mean)
        for i in range(1, k + 1):
            term *= mean / i
            total += term
        return total

    lo, hi = float(k), k + 10.0 * (k + 1) ** 0.5 + 10
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if at_most_k(mid) > 1 - confidence else (lo, mid)
    return hi


Track = list[tuple[int, float, float, float | None]]  # ts_ms, lon, lat, speed


def _tracks(events: list[dict[str, Any]]) -> dict[str, Track]:
    out: dict[str, Track] = defaultdict(list)
    for ev in events:
        out[ev["entity"]].append((ev["_ms"], ev["lon"], ev["lat"], ev.get("speed")))
    for tr in out.values():
        tr.sort()
    return out


def _span(tr: Track, t0: int, t1: int) -> Track:
    return [p for p in tr if t0 <= p[0] <= t1]


def _p90(values: list[float]) -> float:
    return sorted(values)[int(0.9 * (len(values) - 1))] if values else 0.0


def judge(alert: Alert, tracks: dict[str, Track], earlier: list[Alert]) -> str | None:
    """Why an alert is false (None: it is right), by hindsight over the fixes."""
    tr = tracks[alert.subject]
    ev = alert.evidence
    if alert.kind == "track.stop":
        lon, lat = float(alert.lon or 0), float(alert.lat or 0)
        for prev in earlier:
            if prev.kind != "track.stop" or prev.subject != alert.subject:
                continue
            plon, plat = float(prev.lon or 0), float(prev.lat or 0)
            if haversine_m(plon, plat, lon, lat) <= 200:
                between = _span(tr, prev.ts_ms, alert.first_ts_ms)
                seen = [prev.ts_ms] + [p[0] for p in between] + [alert.first_ts_ms]
                watched = all(b - a <= 6 * 3_600_000 for a, b in zip(seen, seen[1:], strict=False))
                if watched and all(haversine_m(plon, plat, p[1], p[2]) <= 300 for p in between):
                    return "repeated alert for one stay"
        stay = _span(tr, alert.first_ts_ms, alert.ts_ms)
        if _p90([haversine_m(lon, lat, p[1], p[2]) for p in stay]) > 2 * float(ev["radius_m"]):
            return "the vehicle did not stay"
        return None
    if alert.kind == "track.gap":
        after = [p[0] for p in tr if p[0] > alert.first_ts_ms]
        silence_s = (after[0] - alert.first_ts_ms) / 1000 if after else float("inf")
        iv = [(b[0] - a[0]) / 1000 for a, b in zip(tr, tr[1:], strict=False)]
        ordinary = max(240.0, 2.5 * statistics.median(iv)) if iv else 240.0
        return f"a dropout of {silence_s:.0f} s" if silence_s < ordinary else None
    if alert.kind == "track.speeding":
        span = _span(tr, alert.first_ts_ms, alert.ts_ms)
        reported = [p[3] for p in span if p[3] is not None]
        if reported:
            kmh = statistics.fmean(reported)
        else:
            path = sum(
                haversine_m(a[1], a[2], b[1], b[2]) for a, b in zip(span, span[1:], strict=False)
            )
            dt = (span[-1][0] - span[0][0]) / 1000 if len(span) > 1 else 0
            kmh = path / dt * 3.6 if dt else 0.0
        limit = float(ev["limit_kmh"])
        return None if kmh > limit else f"{kmh:.0f} km/h over the episode <= {limit:g}"
    if alert.kind == "track.rendezvous":
        other = tracks[str(ev["partner"])]
        a, b = (
            _span(tr, alert.first_ts_ms, alert.ts_ms),
            _span(other, alert.first_ts_ms, alert.ts_ms),
        )
        if not a or not b:
            return "no fixes of both over the meeting"
        ma = (statistics.median(p[1] for p in a), statistics.median(p[2] for p in a))
        mb = (statistics.median(p[1] for p in b), statistics.median(p[2] for p in b))
        moved = max(
            _p90([haversine_m(ma[0], ma[1], p[1], p[2]) for p in a]),
            _p90([haversine_m(mb[0], mb[1], p[1], p[2]) for p in b]),
        )
        if haversine_m(*ma, *mb) > 60 or moved > 60:
            return "not stopped together"
        return None
    return None


def _replay(
    cfg: Config, lines: list[bytes], arrivals: list[int] | None
) -> tuple[list[Alert], Counter[str]]:
    """The flow's alerts, and its dead letters by reason."""
    ref = load_reference(cfg)
    size = cfg.flow.batch_size
    batches = [
        RawBatch(
            "recording",
            lines[i : i + size],
            0,
            arrival_ms=arrivals[i : i + size] if arrivals is not None else None,
        )
        for i in range(0, len(lines), size)
    ]
    alerts: list[Alert] = []
    sink: list[Dispatch] = []
    dead: list[DeadLetter] = []
    flow = build_flow(
        TestingSource(batches),
        FlowOutputs(dispatch=TestingSink(sink), alerts=TestingSink(alerts), dead=TestingSink(dead)),
        cfg,
        ReferenceHolder(ref),
    )
    run_main(flow)
    return alerts, Counter(d.reason.partition(":")[0] for d in dead)


def measure(
    name: str, fmt: str, paths: Sequence[str | Path], cfg: Config, *, plain: bool = False
) -> Verdict:
    """Replay one dataset and judge its alerts. Each fix arrives at its own time, as
    from a live feed (the recording keeps ``arrival_ms``); ``plain`` replays it as a
    plain recording instead, where the future-timestamp guard measures each fix
    against its source's recent median event time."""
    # GPX and FIT tracks come from many countries: each is moved onto Nantong on its own
    fixes = relocate(read_all(fmt, paths), each=fmt == "gpx")
    events = list(to_events(fixes, fmt, class_picker("hazmat_truck:2,tanker:1")))
    for ev, f in zip(events, fixes, strict=True):
        ev["_ms"] = f.ts_ms
    lines = [orjson.dumps({k: v for k, v in ev.items() if k != "_ms"}) for ev in events]
    tracks = _tracks(events)
    intervals = [b[0] - a[0] for tr in tracks.values() for a, b in zip(tr, tr[1:], strict=False)]
    hours = sum(i for i in intervals if i <= MAX_OBSERVED_MS) / 3_600_000
    med = statistics.median(intervals) / 1000 if intervals else 0.0
    v = Verdict(name, len(tracks), len(events), hours, med)
    # An alert comes out again when its incident's id moves (the merger re-emits it
    # with the new incident): judge each alert once.
    arrivals = None if plain else [ev["_ms"] for ev in events]
    replayed, v.dead = _replay(cfg, lines, arrivals)
    unique = {a.id: a for a in replayed}
    alerts = sorted(unique.values(), key=lambda a: (a.ts_ms, a.id))
    seen: list[Alert] = []
    for a in alerts:
        v.alerts[a.kind] += 1
        if a.kind.startswith("track."):
            why = judge(a, tracks, seen)
            v.judged.append(
                {
                    "set": name,
                    "kind": a.kind,
                    "subject": a.subject,
                    "first_ts": a.first_ts_ms,
                    "ts": a.ts_ms,
                    "follow_up": "reappeared" in a.evidence,
                    "evidence": a.evidence,
                    "false": why,
                }
            )
            if why is not None:
                v.false[a.kind] += 1
                v.reasons.append(f"{a.kind} {a.subject} {a.evidence}: {why}")
        seen.append(a)
    return v


def report(verdicts: list[Verdict]) -> str:
    rows = [
        "| dataset | vehicles | fixes | vehicle-h | median fix interval | kind | alerts "
        "| false | false / 1,000 vehicle-h | 95 % upper bound |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for v in verdicts:
        kinds = sorted(set(v.alerts) | {"track.stop", "track.gap", "track.speeding"})
        for k in kinds:
            judged = k.startswith("track.")
            false = str(v.false[k]) if judged else "not judged"
            rate = f"{v.per_kh(v.false[k]):.2f}" if judged else ""
            upper = f"{v.per_kh(poisson_upper(v.false[k])):.1f}" if judged else ""
            rows.append(
                f"| {v.name} | {v.vehicles} | {v.fixes} | {v.vehicle_hours:.1f} | "
                f"{v.median_interval_s:.0f} s | {k} | {v.alerts[k]} | {false} | {rate} "
                f"| {upper} |"
            )
    for v in verdicts:
        if v.dead:
            parts = ", ".join(f"{r} {n}" for r, n in sorted(v.dead.items()))
            rows.append(f"\n{v.name}: dead letters {parts}")
    return "\n".join(rows)


def _key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["set"], row["kind"], row["subject"], row["first_ts"], row["follow_up"])


def compare(before: Path, after: Path) -> str:
    """Which judged alerts of ``--verdicts-out`` file ``before`` are gone in ``after``,
    and which are new, by kind: how many of each the judge calls false and right."""
    rows = [
        {_key(r): r for r in map(orjson.loads, p.read_bytes().splitlines())}
        for p in (before, after)
    ]
    lines = []
    for label, a, b in (("gone", rows[0], rows[1]), ("new", rows[1], rows[0])):
        for kind in sorted({k[1] for k in a}):
            diff = [r for k, r in a.items() if k[1] == kind and k not in b]
            false = [r for r in diff if r["false"] is not None]
            follow = sum(r["follow_up"] for r in diff if r["false"] is None)
            lines.append(
                f"{label} {kind}: {len(diff)} ({len(false)} false, {len(diff) - len(false)} "
                f"right, {follow} of them follow-ups)"
            )
            lines += [f"  false: {r['subject']} {r['evidence']}: {r['false']}" for r in false]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tracktable", nargs="*", default=None, help=".traj files (AIS)")
    ap.add_argument("--marinecadastre", nargs="*", default=None, help="AIS CSV files")
    ap.add_argument("--gpx", nargs="*", default=None, help="GPX files")
    ap.add_argument("--config", default=None, help="citywatch.toml (default: the shipped one)")
    ap.add_argument("--why", action="store_true", help="print each false alert and why")
    ap.add_argument(
        "--plain",
        action="store_true",
        help="replay as a plain recording (no arrival times: the future guard uses medians)",
    )
    ap.add_argument(
        "--verdicts-out",
        default=None,
        help="write every judged track alert (kind, subject, first_ts, verdict) as JSON lines",
    )
    ap.add_argument(
        "--compare",
        nargs=2,
        metavar=("BEFORE", "AFTER"),
        default=None,
        help="compare two --verdicts-out files alert by alert (no replay)",
    )
    args = ap.parse_args(argv)
    if args.compare:
        print(compare(Path(args.compare[0]), Path(args.compare[1])))
        return 0
    sets: list[tuple[str, str, list[str]]] = []
    for fmt in ("tracktable", "marinecadastre", "gpx"):
        paths = getattr(args, fmt)
        if paths:
            sets.append((f"{fmt} ({len(paths)} files)", fmt, paths))
    if not sets:
        if not (REAL / "tracktable").is_dir():
            print(
                f"no extracts at {REAL} (they ship in the repository, not the wheel): "
                "pass --tracktable/--marinecadastre/--gpx FILE..."
            )
            return 2
        sets = [
            (
                "AIS New York harbour 2020-12-08",
                "tracktable",
                [str(p) for p in sorted((REAL / "tracktable").glob("*.traj"))],
            ),
            (
                "GPX tracks (gpxpy and gpxo test files)",
                "gpx",
                [str(p) for p in sorted((REAL / "gpx").glob("*.gpx"))],
            ),
            ("Real tracks at 1-5 s (data/real/README.md)", "gpx", [str(p) for p in FAST]),
        ]
    cfg = load_config(args.config)
    verdicts = [measure(name, fmt, paths, cfg, plain=args.plain) for name, fmt, paths in sets]
    print(report(verdicts))
    if args.verdicts_out:
        with open(args.verdicts_out, "wb") as fh:
            fh.writelines(orjson.dumps(r) + b"\n" for v in verdicts for r in v.judged)
    if args.why:
        for v in verdicts:
            for r in v.reasons:
                print(f"{v.name}: {r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
