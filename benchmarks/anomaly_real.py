"""The univariate anomaly scorer on labelled real series, beside two baselines.

Series: :mod:`citywatch.benchmarks.anomaly_series` (UCR/KDD-2021 archive, river's
WaterFlow, real electricity demand with injected anomalies; sources and licences
in ``data/anomaly_series/README.md``). Models, each scoring every reading before
learning it, on the same readings in the same run:

- ``citywatch``: :class:`citywatch.detectors.anomaly.AnomalyScorer` with the
  shipped defaults (``BaselineParams()``: no period, scale or threshold given);
  alerts are its own episode starts;
- ``river GaussianScorer``: ``river.anomaly.GaussianScorer`` (window
  ``--window`` readings, grace period 100);
- ``rolling z``: ``|x - mean| / sd`` over the previous ``--window`` readings.

For the baselines an alert starts when the score reaches the threshold after
three readings below it; their one threshold for all series is the one that
maximises the event F1 (hit rate and alert precision) on the *tuning* series.

Per series: hit (an alert starts inside the label window or within ``--grace``
readings after it), false alerts per 1,000 readings (alerts starting elsewhere),
detection delay (readings and hours from the start of the window the first hit
falls in), and whether the series' highest score falls in a window
(threshold-free ranking).
Run: ``python -m citywatch.benchmarks.anomaly_real [--series]``. Checks its own
output: citywatch strictly ahead of both baselines on every evaluation summary
figure (a tie is not ahead: the check names the figures that tie or trail).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from citywatch.benchmarks.anomaly_series import (
    EVALUATION_SEEDS,
    TUNING_SEEDS,
    Series,
    evaluation_series,
    tuning_series,
)
from citywatch.detectors.alerts import Alert
from citywatch.detectors.anomaly.params import BaselineParams
from citywatch.detectors.anomaly.sensor import SensorAnomalyDetector
from citywatch.detectors.events import SensorEvent

CLEAR_READINGS = 3


@dataclass(slots=True)
class Run:
    scores: np.ndarray
    alerts: list[int]  # reading indices where an alert starts


@dataclass(slots=True)
class Outcome:
    hit: bool
    false_alerts: int
    readings: int
    delay_readings: int | None
    delay_h: float | None
    top_in_window: bool


def run_citywatch(series: Sequence[Series], params: BaselineParams | None = None) -> list[Run]:
    """All series at once, one sensor each, through the detector's batch path (reading
    ``i`` of every series in one batch): the scores are those of separate runs."""
    det = SensorAnomalyDetector({"value": params or BaselineParams()}, timezone="UTC")
    names = [f"s{j}" for j in range(len(series))]
    scores = [np.zeros(s.values.size) for s in series]
    alerts: list[list[int]] = [[] for _ in series]
    index = [{int(t): i for i, t in enumerate(s.ts_ms.tolist())} for s in series]
    longest = max(s.values.size for s in series)
    for i in range(longest):
        live = [j for j, s in enumerate(series) if i < s.values.size]
        events = [
            SensorEvent(int(series[j].ts_ms[i]), names[j], "value", float(series[j].values[i]))
            for j in live
        ]
        out: list[Alert] = []
        got = det.process("value", events, out)
        for j, sc in zip(live, got.tolist(), strict=True):
            scores[j][i] = sc
        for a in out:
            j = int(a.subject[1:])
            alerts[j].append(index[j][a.first_ts_ms])
    return [Run(sc, al) for sc, al in zip(scores, alerts, strict=True)]


def gaussian_scores(s: Series, window: int) -> np.ndarray:
    from river.anomaly import GaussianScorer

    model = GaussianScorer(window_size=window, grace_period=100)
    out = np.zeros(s.values.size)
    for i, v in enumerate(s.values.tolist()):
        out[i] = model.score_one(None, v)
        model.learn_one(None, v)
    return out


def rolling_z_scores(s: Series, window: int) -> np.ndarray:
    out = np.zeros(s.values.size)
    buf: deque[float] = deque(maxlen=window)
    for i, v in enumerate(s.values.tolist()):
        if len(buf) >= min(window, 30):
            arr = np.fromiter(buf, float)
            sd = float(arr.std())
            out[i] = abs(v - float(arr.mean())) / sd if sd > 0 else 0.0
        buf.append(v)
    return out


def episodes(scores: np.ndarray, thr: float) -> list[int]:
    alerts, on, below = [], False, 0
    for i, sc in enumerate(scores.tolist()):
        if sc >= thr:
            below = 0
            if not on:
                alerts.append(i)
                on = True
        elif on:
            below += 1
            if below >= CLEAR_READINGS:
                on = False
    return alerts


def outcome(s: Series, run: Run, grace: int) -> Outcome:
    """Hit, false alerts, delay and ranking of one model on one series. The delay is
    the first hit's, from the start of the window it falls in (a series with several
    windows: a hit in the third is not late by the first two).

    >>> s = Series("s", np.arange(40) * 1000, np.zeros(40), [(5, 8), (20, 22)], "t", "x")
    >>> o = outcome(s, Run(np.zeros(40), [2, 21, 30]), grace=2)
    >>> o.hit, o.false_alerts, o.delay_readings
    (True, 2, 1)
    """
    in_win = [any(a <= i <= b + grace for a, b in s.windows) for i in run.alerts]
    hits = [i for i, w in zip(run.alerts, in_win, strict=True) if w]
    first = next((a for a, b in s.windows if a <= hits[0] <= b + grace), 0) if hits else 0
    delay = hits[0] - first if hits else None
    delay_h = float(s.ts_ms[hits[0]] - s.ts_ms[first]) / 3_600_000 if hits else None
    top = int(np.argmax(run.scores))
    return Outcome(
        hit=bool(hits),
        false_alerts=sum(not w for w in in_win),
        readings=s.values.size,
        delay_readings=delay,
        delay_h=delay_h,
        top_in_window=any(a <= top <= b + grace for a, b in s.windows),
    )


def summary(outs: Sequence[Outcome]) -> dict[str, float]:
    delays = [o.delay_readings for o in outs if o.delay_readings is not None]
    n = len(outs)
    false = sum(o.false_alerts for o in outs)
    return {
        "hit_rate": sum(o.hit for o in outs) / n,
        "false_per_1000": 1000 * false / sum(o.readings for o in outs),
        "median_delay": statistics.median(delays) if delays else float("nan"),
        "top_in_window": sum(o.top_in_window for o in outs) / n,
        "f1": _f1(outs),
    }


def _f1(outs: Sequence[Outcome]) -> float:
    hits = sum(o.hit for o in outs)
    false = sum(o.false_alerts for o in outs)
    recall = hits / len(outs)
    precision = hits / (hits + false) if hits + false else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def tune_threshold(
    series: Sequence[Series], scores: Sequence[np.ndarray], grid: Sequence[float], grace: int
) -> float:
    best, best_f1 = grid[0], -1.0
    for thr in grid:
        outs = [
            outcome(s, Run(sc, episodes(sc, thr)), grace)
            for s, sc in zip(series, scores, strict=True)
        ]
        f1 = _f1(outs)
        if f1 > best_f1:
            best, best_f1 = thr, f1
    return best


def evaluate_all(
    series: Sequence[Series],
    models: dict[str, Callable[[Sequence[Series]], list[Run]]],
    grace: int,
) -> dict[str, list[Outcome]]:
    return {
        name: [outcome(s, r, grace) for s, r in zip(series, fn(series), strict=True)]
        for name, fn in models.items()
    }


def print_summary(title: str, results: dict[str, list[Outcome]]) -> dict[str, dict[str, float]]:
    """The summary table; ``common_delay`` is the median delay over the series that
    every model hits (the like-for-like delay)."""
    every = [all(outs[i].hit for outs in results.values()) for i in range(_count(results))]
    print(f"\n{title}")
    print(
        "| model | series | hit rate | false alerts / 1,000 readings | median delay, own hits"
        f" (readings) | median delay, the {sum(every)} series all hit | top score in window |"
    )
    print("|---|---|---|---|---|---|---|")
    sums = {}
    for name, outs in results.items():
        sm = summary(outs)
        common = [
            float(o.delay_readings)
            for o, e in zip(outs, every, strict=True)
            if e and o.delay_readings is not None
        ]
        sm["common_delay"] = statistics.median(common) if common else float("nan")
        sums[name] = sm
        print(
            f"| {name} | {len(outs)} | {sm['hit_rate']:.2f} | {sm['false_per_1000']:.3f} | "
            f"{sm['median_delay']:.1f} | {sm['common_delay']:.1f} | {sm['top_in_window']:.2f} |"
        )
    return sums


def _count(results: dict[str, list[Outcome]]) -> int:
    return len(next(iter(results.values())))


def print_series(series: Sequence[Series], results: dict[str, list[Outcome]]) -> None:
    names = list(results)
    print(
        "\n| series | type | readings | "
        + " | ".join(f"{n}: hit / false / delay" for n in names)
        + " |"
    )
    print("|---|---|---|" + "---|" * len(names))
    for i, s in enumerate(series):
        cells = []
        for n in names:
            o = results[n][i]
            d = "-" if o.delay_readings is None else str(o.delay_readings)
            cells.append(f"{'yes' if o.hit else 'no'} / {o.false_alerts} / {d}")
        print(f"| {s.name} | {s.kind} | {s.values.size:,} | " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--window", type=int, default=100, help="baselines' window, readings")
    ap.add_argument("--grace", type=int, default=6, help="readings after a window still a hit")
    ap.add_argument("--series", action="store_true", help="print every series' row")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    tune, ev = tuning_series(), evaluation_series()
    print(
        f"tuning: {len(tune)} series (taylor seeds {TUNING_SEEDS[0]}-{TUNING_SEEDS[-1]}); "
        f"evaluation: {len(ev)} series (ucr-135, water-flow, taylor seeds "
        f"{EVALUATION_SEEDS[0]}-{EVALUATION_SEEDS[-1]})"
    )
    w = args.window
    g_grid = [1 - 10.0**-k for k in (1, 1.5, 2, 2.5, 3, 3.5, 4, 5, 6, 7, 8, 9)]
    z_grid = [2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 12.0]
    g_thr = tune_threshold(tune, [gaussian_scores(s, w) for s in tune], g_grid, args.grace)
    z_thr = tune_threshold(tune, [rolling_z_scores(s, w) for s in tune], z_grid, args.grace)
    print(
        f"baseline thresholds tuned on the tuning series: GaussianScorer {g_thr:.10g}, "
        f"rolling z {z_thr:g}; citywatch: shipped default min_score "
        f"{BaselineParams().min_score}"
    )

    def gauss(series: Sequence[Series]) -> list[Run]:
        return [Run(sc, episodes(sc, g_thr)) for sc in (gaussian_scores(s, w) for s in series)]

    def roll(series: Sequence[Series]) -> list[Run]:
        return [Run(sc, episodes(sc, z_thr)) for sc in (rolling_z_scores(s, w) for s in series)]

    models: dict[str, Callable[[Sequence[Series]], list[Run]]] = {
        "citywatch": run_citywatch,
        f"river GaussianScorer (window {w})": gauss,
        f"rolling z (window {w})": roll,
    }
    res_tune = evaluate_all(tune, models, args.grace)
    print_summary("tuning series", res_tune)
    res_ev = evaluate_all(ev, models, args.grace)
    sums = print_summary("evaluation series", res_ev)
    if args.series:
        print_series(ev, res_ev)
    print(f"\n{time.perf_counter() - t0:.1f} s")
    ours = sums["citywatch"]
    not_ahead = {
        k: lag for k, v in sums.items() if k != "citywatch" and (lag := not_ahead_of(ours, v))
    }
    if not_ahead:
        print("check: FAILED, not ahead of", "; ".join(f"{k} on {v}" for k, v in not_ahead.items()))
    else:
        print("check: ok (ahead of both baselines on every summary figure)")
    return 1 if not_ahead else 0


HIGHER_IS_BETTER = {"hit_rate": True, "false_per_1000": False, "top_in_window": True}
HIGHER_IS_BETTER |= {"median_delay": False, "common_delay": False}


def not_ahead_of(ours: dict[str, float], other: dict[str, float]) -> str:
    """The summary figures on which ``ours`` is not strictly ahead of ``other``, with
    ``tie`` or ``behind`` (a figure the other model has no value for is skipped).

    >>> not_ahead_of({"hit_rate": 0.5, "median_delay": 3.0}, {"hit_rate": 0.2, "median_delay": 3.0})
    'median_delay (tie, 3 against 3)'
    """
    out = []
    for name, higher in HIGHER_IS_BETTER.items():
        if name not in ours or name not in other or np.isnan(other[name]):
            continue
        a, b = ours[name], other[name]
        if a == b or (a < b) == higher:
            out.append(f"{name} ({'tie' if a == b else 'behind'}, {a:g} against {b:g})")
    return ", ".join(out)


if __name__ == "__main__":
    sys.exit(main())
