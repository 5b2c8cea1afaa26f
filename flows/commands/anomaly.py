"""``citywatch anomaly score``: score one sensor's history offline with the online model."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from citywatch.flows.commands.common import add_config
from citywatch.flows.config import ConfigError, load_config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    top = sub.add_parser(
        "anomaly",
        help="score a sensor's history with the per-sensor anomaly model",
        description="Offline tools for the online anomaly models (sensor.anomaly).",
    )
    inner = top.add_subparsers(dest="anomaly_command", required=True)
    score = inner.add_parser(
        "score",
        help="score a CSV of timestamp,value rows",
        description=(
            "Reads IN.csv with a header and columns timestamp,value (RFC 3339 or epoch "
            "milliseconds), in time order, and writes timestamp,value,score,alert: each "
            "row scored before the model learns it (score in [0, 1], 0 during warm-up), "
            "alert 1 where an alert episode starts. The score is a tail probability of "
            "the reading against the series' own recent errors (0.7 is about 2e-4), and "
            "the season (none, daily or weekly) is found from the series, so no period, "
            "scale or threshold needs giving; irregular intervals are fine. The model is "
            "[anomaly.sensor.KIND] of the config (defaults when the kind has no table)."
        ),
    )
    add_config(score)
    score.add_argument("input", type=Path, metavar="IN.csv")
    score.add_argument("--out", type=Path, required=True, metavar="OUT.csv")
    score.add_argument("--kind", default="value", help="sensor kind whose settings apply")
    score.set_defaults(func=run_score)


def run_score(args: argparse.Namespace) -> int:
    from citywatch.detectors.anomaly.sensor import AnomalyScorer
    from citywatch.detectors.events import format_ts, parse_ts

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"citywatch anomaly score: {exc}", file=sys.stderr)
        return 2
    scorer = AnomalyScorer.from_config(cfg, args.kind)
    try:
        src = args.input.open(newline="", encoding="utf-8")
    except OSError as exc:
        print(f"citywatch anomaly score: cannot read {args.input}: {exc.strerror}", file=sys.stderr)
        return 2
    rows = alerts = 0
    with src, args.out.open("w", newline="", encoding="utf-8") as dst:
        reader = csv.DictReader(src)
        if reader.fieldnames is None or not {"timestamp", "value"} <= set(reader.fieldnames):
            print(
                f"citywatch anomaly score: {args.input}: expected a header with columns "
                f"timestamp,value, got {reader.fieldnames}",
                file=sys.stderr,
            )
            return 2
        writer = csv.writer(dst, lineterminator="\n")
        writer.writerow(["timestamp", "value", "score", "alert"])
        for line_no, row in enumerate(reader, start=2):
            raw_ts, raw_value = row["timestamp"].strip(), row["value"].strip()
            try:
                ts = parse_ts(int(raw_ts) if raw_ts.isdigit() else raw_ts)
                value = float(raw_value)
            except Exception as exc:  # noqa: BLE001 - _Reject or ValueError: say where
                reason = getattr(exc, "reason", str(exc))
                print(
                    f"citywatch anomaly score: {args.input} line {line_no}: {reason}; "
                    f"expected timestamp (RFC 3339 or epoch ms) and a number",
                    file=sys.stderr,
                )
                return 2
            score = scorer.score_one(ts, value)
            scorer.learn_one(ts, value)
            rows += 1
            alerts += scorer.alerted
            writer.writerow(
                [
                    raw_ts if raw_ts else format_ts(ts),
                    raw_value,
                    f"{score:.6f}",
                    int(scorer.alerted),
                ]
            )
    print(f"scored {rows:,} rows, {alerts} alert(s); wrote {args.out}")
    return 0
