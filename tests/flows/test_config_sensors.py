"""Configuration of the sensor, video and fusion detectors: defaults, validation, errors."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import pytest

from citywatch.detectors.fusion import FusionParams
from citywatch.flows.config import DEFAULT_CONFIG, ConfigError, config_from_dict, load_config

BUNDLED: dict[str, Any] = tomllib.loads(DEFAULT_CONFIG.read_text(encoding="utf-8"))


def test_bundled_sensor_video_and_fusion_settings() -> None:
    cfg = load_config(env={})
    assert cfg.sensor_rate["water_level"].rise_per_h == 0.6
    (pm10,) = cfg.sensor_window["pm10"]
    assert (pm10.size_s, pm10.slide, pm10.aggregate, pm10.limit) == (3600, 600, "mean", 115.0)
    # The hourly-mean limit sits under the instant threshold: a long moderate episode
    # raises sensor.window without sensor.threshold.
    assert pm10.limit < cfg.sensor_threshold["pm10"].limit
    assert cfg.sensor_offline["water_level"].silent_s == 600
    assert set(cfg.sensor_stuck) == {"water_level", "pm10", "pm25"}
    kinds = {r.kind for r in cfg.video_rules}
    assert kinds >= {"video.construction", "video.fishing", "video.dumping"}


def test_bundled_fusion_equals_the_defaults_the_generator_truth_assumes() -> None:
    # replay/incidents_sensors.corroborated_truth applies FusionParams() to the truth.
    assert load_config(env={}).fusion == FusionParams()


def _with(path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BUNDLED)
    cur = doc
    *parents, last = path.split(".")
    for part in parents:
        cur = cur.setdefault(part, {})
    cur[last] = value
    return doc


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            "sensor.rate.water_level",
            {"window_s": 600},
            r"\[sensor.rate.water_level\]: sensor.rate: set \"rise_per_h\"",
        ),
        (
            "sensor.window.pm10",
            [{"limit": 1.0, "slide_s": 7}],
            r"\[\[sensor.window.pm10\]\] #1: .*multiple of \"slide_s\"",
        ),
        (
            "sensor.window.pm10",
            "hourly",
            r"\[sensor.window\] pm10: expected a table or an array of tables, got string",
        ),  # noqa: E501
        ("sensor.offline.noise", {"silent_s": 0}, r"\[sensor.offline.noise\]: .*\"silent_s\" must"),
        (
            "sensor.stuck.pm10",
            {"min_reads": 3},
            r"\[sensor.stuck.pm10\] min_reads: unknown key; did you mean 'min_readings'\?",
        ),  # noqa: E501
        ("fusion", {"window_s": -5}, r"\[fusion\]: fusion: \"window_s\" must be > 0, got -5"),
    ],
    ids=[
        "rate-no-limit",
        "window-slide",
        "window-not-table",
        "offline-zero",
        "stuck-typo",
        "fusion-window",
    ],
)
def test_errors_name_the_setting(path: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_dict(_with(path, value), Path(DEFAULT_CONFIG), {})


def test_a_single_window_table_is_one_rule() -> None:
    cfg = config_from_dict(
        _with("sensor.window.noise", {"aggregate": "max", "limit": 85.0}), DEFAULT_CONFIG, {}
    )
    assert [w.aggregate for w in cfg.sensor_window["noise"]] == ["max"]
