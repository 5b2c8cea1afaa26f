"""Geofence benchmark: the vectorised zone index and the flow's geofence step.

Measures, in one run so the ratios are fair on a noisy machine:

1. ``ZoneIndex.locate`` in points/s for 100, 1,000 and 10,000 synthetic zones
   (star-shaped polygons, some with holes, scattered over Nantong) against
   1 M points, beside a per-point loop over prepared geometries (an STRtree
   query and a prepared ``intersects`` per point, the usual non-batched way),
   measured on a sample and checked to give the same answer.
2. The flow's geofence step (``Reference.annotate``: zones and town of every
   event, 1,000 events a batch) in events/s on the bundled Nantong reference
   and with 1,000 zones, beside the same per-event loop.
3. The geofence detectors (``GeofenceDetector.on_event``) in events/s.

Each figure is the median of ``--repeat`` runs. The script checks its own
output (batched == per-point answers) and exits non-zero if they differ.

    python -m citywatch.benchmarks.geofence [--points 1000000] [--repeat 3] [--results PATH]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import shapely

from citywatch.detectors.events import GpsEvent
from citywatch.detectors.geofence import DwellRule, EnterRule, ExitRule, GeofenceDetector, ZoneRule
from citywatch.flows.config import load_config
from citywatch.flows.runner import load_reference
from citywatch.geo.reference import Reference
from citywatch.geo.zones import Zone, ZoneIndex

CITY = (120.3, 31.7, 121.9, 32.7)
ZONE_COUNTS = (100, 1_000, 10_000)
LOOP_SAMPLE = 20_000


def synthetic_zones(n: int, seed: int = 1) -> list[Zone]:
    """``n`` star-shaped polygons 200 m to 1 km across; every fifth has a hole."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        cx, cy = rng.uniform(CITY[0], CITY[2]), rng.uniform(CITY[1], CITY[3])
        r = rng.uniform(0.002, 0.01)
        k = int(rng.integers(5, 12))
        a = np.sort(rng.uniform(0, 2 * np.pi, k))
        rr = r * rng.uniform(0.6, 1.0, k)
        shell = np.c_[cx + rr * np.cos(a), cy + rr * np.sin(a)]
        holes = [shapely.box(cx - r / 8, cy - r / 8, cx + r / 8, cy + r / 8).exterior.coords]
        poly = shapely.Polygon(shell, holes if i % 5 == 0 else None)
        if not poly.is_valid:
            poly = shapely.Polygon(shell)
        out.append(Zone(f"z{i}", f"zone {i}", "residential", {}, poly))
    return out


def points(n: int, seed: int = 2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(CITY[0], CITY[2], n), rng.uniform(CITY[1], CITY[3], n)


def per_point_loop(zones: list[Zone]) -> Callable[[np.ndarray, np.ndarray], list[tuple[str, ...]]]:
    """The non-batched baseline: per point, an STRtree query and prepared intersects."""
    geoms = [z.geometry for z in zones]
    for g in geoms:
        shapely.prepare(g)
    tree = shapely.STRtree(geoms)
    ids = [z.id for z in zones]

    def locate(lon: np.ndarray, lat: np.ndarray) -> list[tuple[str, ...]]:
        out = []
        for x, y in zip(lon.tolist(), lat.tolist(), strict=True):
            pt = shapely.Point(x, y)
            hits = sorted(int(i) for i in tree.query(pt))
            out.append(tuple(ids[i] for i in hits if geoms[i].intersects(pt)))
        return out

    return locate


def median_rate(n: int, fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return n / statistics.median(times)


def bench_locate(n_points: int, repeat: int) -> list[dict[str, float]]:
    lon, lat = points(n_points)
    rows = []
    for n in ZONE_COUNTS:
        zones = synthetic_zones(n)
        t0 = time.perf_counter()
        index = ZoneIndex(zones)
        build_s = time.perf_counter() - t0
        batched = median_rate(n_points, functools.partial(index.locate, lon, lat), repeat)
        loop = per_point_loop(zones)
        s_lon, s_lat = lon[:LOOP_SAMPLE], lat[:LOOP_SAMPLE]
        if loop(s_lon, s_lat) != index.zones_of(s_lon, s_lat):
            sys.exit(f"locate: batched answer differs from the per-point loop at {n} zones")
        looped = median_rate(LOOP_SAMPLE, functools.partial(loop, s_lon, s_lat), repeat)
        pi, _ = index.locate(lon, lat)
        rows.append(
            {
                "zones": n,
                "batched_pts_s": batched,
                "loop_pts_s": looped,
                "ns_per_pt": 1e9 / batched,
                "hits": int(pi.size),
                "build_s": build_s,
            }
        )
        print(
            f"locate {n:>6} zones: batched {batched:>12,.0f} pts/s ({1e9 / batched:.0f} ns/pt), "
            f"per-point loop {looped:>9,.0f} pts/s, x{batched / looped:.0f}; "
            f"{pi.size:,} hits in {n_points:,} points; index built in {build_s:.2f} s",
            flush=True,
        )
    return rows


def gps_events(n: int, seed: int = 3) -> list[GpsEvent]:
    lon, lat = points(n, seed)
    classes = ("hazmat_truck", "tanker", "muck_truck", "vessel", "patrol")
    return [
        GpsEvent(1_781_528_400_000 + i * 10, f"v{i % 5000}", x, y, classes[i % 5])
        for i, (x, y) in enumerate(zip(lon.tolist(), lat.tolist(), strict=True))
    ]


def bench_annotate(ref: Reference, label: str, n: int, repeat: int) -> dict[str, float]:
    events = gps_events(n)
    batches = [events[i : i + 1000] for i in range(0, n, 1000)]

    def batched() -> None:
        for b in batches:
            ref.annotate(b)

    loop = per_point_loop(ref.zones.zones)
    juris = ref.jurisdictions
    sample = events[:LOOP_SAMPLE]

    def per_event() -> None:
        for ev in sample:
            x, y = np.array([ev.lon]), np.array([ev.lat])
            ev.zones = loop(x, y)[0]
            ev.town = juris.locate(x, y)[0]

    rate = median_rate(n, batched, repeat)
    expect = [(ev.zones, ev.town) for ev in sample]
    loop_rate = median_rate(len(sample), per_event, repeat)
    if [(ev.zones, ev.town) for ev in sample] != expect:
        sys.exit(f"annotate: per-event answers differ from the batched step ({label})")
    print(
        f"geofence step, {label}: batched {rate:>10,.0f} ev/s, "
        f"per-event loop {loop_rate:>8,.0f} ev/s, x{rate / loop_rate:.0f}",
        flush=True,
    )
    return {"batched_ev_s": rate, "loop_ev_s": loop_rate}


def bench_detector(ref: Reference, n: int, repeat: int) -> float:
    muck = ("muck_truck",)
    rules: dict[str, dict[str, ZoneRule]] = {
        "enter": {"airport_site": EnterRule(classes=muck), "levee": EnterRule(classes=muck)},
        "exit": {"airport_site": ExitRule(classes=muck)},
        "dwell": {"airport_protection": DwellRule(classes=muck, dwell_s=600)},
    }
    events = gps_events(n, seed=4)
    ref.annotate(events)

    def run() -> None:
        det = GeofenceDetector(rules, ref.zone_catalog())
        out: list = []
        for ev in events:
            det.on_event(ev, out)

    rate = median_rate(n, run, repeat)
    print(f"geofence detectors (enter/exit/dwell rules): {rate:,.0f} ev/s", flush=True)
    return rate


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--results", type=Path, default=None, help="append a section to this file")
    args = ap.parse_args(argv)
    rows = bench_locate(args.points, args.repeat)
    cfg = load_config()
    ref = load_reference(cfg)
    sizes = f"{len(ref.zones.zones)} zones, {len(ref.jurisdictions.items)} jurisdictions"
    nantong = bench_annotate(ref, f"Nantong ({sizes})", args.events, args.repeat)
    big = dataclasses.replace(ref, zones=ZoneIndex(synthetic_zones(1_000)))
    many = bench_annotate(big, "1,000 zones", args.events, args.repeat)
    det = bench_detector(ref, args.events, args.repeat)
    flat = rows[-1]["ns_per_pt"] / rows[0]["ns_per_pt"]
    print(f"cost per point, 10,000 vs 100 zones: x{flat:.2f}")
    if args.results is not None:
        write_results(args, rows, nantong, many, det, flat, sizes)
    return 0


def write_results(
    args: argparse.Namespace,
    rows: list[dict[str, float]],
    nantong: dict[str, float],
    many: dict[str, float],
    det: float,
    flat: float,
    sizes: str,
) -> None:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    cmd = f"python -m citywatch.benchmarks.geofence --points {args.points} --repeat {args.repeat}"
    lines = [
        "",
        "## Geofence: zone index and geofence step",
        "",
        f"Date {datetime.now(UTC):%Y-%m-%d}, commit {commit} (plus uncommitted work), "
        f"machine: 2 cores, {platform.python_implementation()} {platform.python_version()}, "
        f"shapely {shapely.__version__}. Command: `{cmd}`. Medians of {args.repeat} runs; "
        f"the per-point loop (STRtree query + prepared intersects per point) runs on "
        f"{LOOP_SAMPLE:,} of the points in the same run and gives the same answers.",
        "",
        "| zones | batched `locate` (pts/s) | ns/pt | per-point loop (pts/s) | speed-up | hits |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['zones']:,} | {r['batched_pts_s']:,.0f} | {r['ns_per_pt']:.0f} | "
            f"{r['loop_pts_s']:,.0f} | x{r['batched_pts_s'] / r['loop_pts_s']:.0f} | "
            f"{r['hits']:,} |"
        )
    lines += [
        "",
        f"Cost per point at 10,000 zones vs 100 zones: x{flat:.2f}.",
        "",
        "| flow geofence step (`Reference.annotate`, zones + town, batches of 1,000) "
        "| batched (ev/s) | per-event loop (ev/s) | speed-up |",
        "|---|---:|---:|---:|",
        f"| Nantong reference ({sizes}) | {nantong['batched_ev_s']:,.0f} | "
        f"{nantong['loop_ev_s']:,.0f} | x{nantong['batched_ev_s'] / nantong['loop_ev_s']:.0f} |",
        f"| 1,000 synthetic zones | {many['batched_ev_s']:,.0f} | {many['loop_ev_s']:,.0f} | "
        f"x{many['batched_ev_s'] / many['loop_ev_s']:.0f} |",
        "",
        f"Geofence detectors (`GeofenceDetector.on_event`, enter/exit/dwell rules, "
        f"{args.events:,} annotated fixes of 5,000 vehicles): {det:,.0f} ev/s.",
        "",
    ]
    with args.results.open("a", encoding="utf-8") as fh:
        fh.write("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
