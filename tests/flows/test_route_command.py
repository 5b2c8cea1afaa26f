"""``citywatch route``: the dry run names the queue and the rules that decided it."""

from __future__ import annotations

import io

import orjson
import pytest

from citywatch.flows.cli import main


def test_route_dry_run_from_options(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "route",
            "--kind",
            "sensor.threshold",
            "--severity",
            "red",
            "--lon",
            "120.86",
            "--lat",
            "32.01",
            "--sensor-kind",
            "water_level",
            "--json",
        ]
    )
    doc = orjson.loads(capsys.readouterr().out)
    assert code == 0
    assert (doc["level"], doc["centre"], doc["department"]) == ("city", "city", "water_resources")
    assert doc["sign_sla_s"] == 300
    assert any("routing.level_by_severity" in r for r in doc["reasons"])


def test_route_dry_run_from_stdin_and_bad_input(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    alert = {
        "kind": "sensor.threshold",
        "severity": "yellow",
        "subject": "pm-1",
        "lon": 120.86,
        "lat": 32.01,
        "evidence": {"sensor_kind": "pm10"},
    }
    monkeypatch.setattr("sys.stdin", io.StringIO(orjson.dumps(alert).decode()))
    assert main(["route"]) == 0
    out = capsys.readouterr().out
    assert "department: ecology_environment" in out and "(town)" in out
    monkeypatch.setattr("sys.stdin", io.StringIO("{nope"))
    assert main(["route"]) == 2
    assert "not a JSON alert" in capsys.readouterr().err
