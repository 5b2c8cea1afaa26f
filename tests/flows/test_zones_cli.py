"""``citywatch zones check`` and ``citywatch zones locate``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from citywatch.flows.cli import main
from citywatch.flows.config import Config


def test_check_summarises_a_valid_file(config: Config, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["zones", "check", str(config.data.zones)]) == 0
    summary = orjson.loads(capsys.readouterr().out)
    assert summary["valid"] is True and summary["zones"] == 21
    assert summary["by_kind"]["levee"]["zones"] == 4
    assert summary["by_kind"]["airport_site"]["area_km2"] == pytest.approx(6.0, rel=0.01)
    minx, miny, maxx, maxy = summary["bounds"]
    assert 120.2 < minx < maxx < 122.0 and 31.6 < miny < maxy < 32.72


def _broken(config: Config, tmp_path: Path, **props: Any) -> Path:
    doc = orjson.loads(config.data.zones.read_bytes())
    doc["features"][0]["properties"].update(props)
    doc["features"][3]["geometry"]["coordinates"][0].pop()  # unclosed ring
    path = tmp_path / "broken.geojson"
    path.write_bytes(orjson.dumps(doc))
    return path


def test_check_lists_every_problem_and_fails(
    config: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _broken(config, tmp_path, rules={"dwell": {"classes": ["muck_truck"]}})
    assert main(["zones", "check", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}: INVALID, 2 problem(s):" in err
    assert "feature 3 ('levee-haimen-linjiang'): polygon 0 ring 0 is not closed" in err
    assert "zone 'airport-site' rules.dwell: \"dwell_s\" must be > 0, got 0" in err


def test_locate_one_point_prints_zones_and_jurisdiction_chain(
    config: Config, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["zones", "locate", str(config.data.zones), "121.245", "32.04"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    rec = orjson.loads(line)
    assert rec["zones"] == ["airport-site"]
    assert rec["jurisdiction"][-2:] == ["county:haimen", "city"]
    assert rec["jurisdiction"][0].startswith("town:")


def test_locate_points_from_csv_keeps_other_columns_and_near(
    config: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv_path = tmp_path / "pts.csv"
    csv_path.write_text("id,lon,lat\np1,121.245,32.04\np2,0.5,0.5\np3,121.245,32.0305\n")
    args = ["zones", "locate", str(config.data.zones), "--points", str(csv_path), "--near-m", "100"]
    assert main(args) == 0
    recs = [orjson.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["id"] for r in recs] == ["p1", "p2", "p3"]
    assert recs[1]["zones"] == [] and recs[1]["jurisdiction"] == []
    assert recs[2]["zones"] == ["airport-protection"]
    assert recs[2]["near_m"]["airport-protection"] == 0.0
    assert 40 < recs[2]["near_m"]["airport-site"] < 70  # 0.0005° of latitude south of it


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["121.0"], "give LON LAT (two numbers) or --points CSV"),
        (["121.0", "32.0", "--points", "x.csv"], "either LON LAT or --points CSV, not both"),
    ],
    ids=["one-number", "both"],
)
def test_locate_argument_errors(
    config: Config, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["zones", "locate", str(config.data.zones), *extra]) == 2
    assert message in capsys.readouterr().err
