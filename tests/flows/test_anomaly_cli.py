"""``citywatch anomaly score IN.csv --out OUT.csv``: one sensor's history, scored offline."""

from __future__ import annotations

import csv
import random
from pathlib import Path

from citywatch.flows.cli import main


def _write(path: Path, rows: list[tuple[str, str]]) -> None:
    path.write_text("timestamp,value\n" + "".join(f"{t},{v}\n" for t, v in rows))


def test_scores_every_row_and_flags_the_spike(tmp_path: Path) -> None:
    rng = random.Random(1)
    rows = [
        (
            str(1_781_528_400_000 + i * 60_000),
            f"{50 + rng.gauss(0, 1) + (20 if i == 150 else 0):.3f}",
        )
        for i in range(200)
    ]
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    _write(src, rows)
    assert main(["anomaly", "score", str(src), "--out", str(dst), "--kind", "noise"]) == 0
    out = list(csv.DictReader(dst.open()))
    assert [(r["timestamp"], r["value"]) for r in out] == rows
    assert [i for i, r in enumerate(out) if r["alert"] == "1"] == [150]
    assert all(float(r["score"]) == 0.0 for r in out[:30])  # warm-up
    assert all(0.0 <= float(r["score"]) < 1.0 for r in out)


def test_rfc3339_timestamps_and_a_bad_row(tmp_path: Path, capsys) -> None:
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    _write(src, [("2026-06-15T21:00:00+08:00", "1.0"), ("2026-06-15T21:01:00+08:00", "abc")])
    assert main(["anomaly", "score", str(src), "--out", str(dst)]) == 2
    err = capsys.readouterr().err
    assert "line 3" in err and "expected timestamp" in err


def test_missing_columns_are_named(tmp_path: Path, capsys) -> None:
    src = tmp_path / "in.csv"
    src.write_text("time,reading\n1,2\n")
    assert main(["anomaly", "score", str(src), "--out", str(tmp_path / "o.csv")]) == 2
    assert "timestamp,value" in capsys.readouterr().err
