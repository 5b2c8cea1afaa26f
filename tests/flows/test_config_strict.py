"""One strict model for the whole configuration file: unknown keys, types, env, origins."""

from __future__ import annotations

from pathlib import Path

import pytest

from citywatch.flows.cli import main
from citywatch.flows.commands.config import effective
from citywatch.flows.config import DEFAULT_CONFIG, ConfigError, load_config

GOOD = DEFAULT_CONFIG.read_text(encoding="utf-8")


def _file(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "c.toml"
    d = DEFAULT_CONFIG.parent
    head = f'[data]\nzones = "{d}/zones.geojson"\njurisdictions = "{d}/jurisdictions.geojson"\n'
    path.write_text(head + extra, encoding="utf-8")
    return path


def _line_of(path: Path, needle: str) -> int:
    return next(
        i for i, line in enumerate(path.read_text().splitlines(), 1) if line.startswith(needle)
    )


def test_unknown_key_in_any_table_names_file_line_and_a_hint(tmp_path: Path) -> None:
    path = _file(tmp_path, "\n[track.speeding]\nmin_fixes = 3\nmin_fixs = 4\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    line = _line_of(path, "min_fixs")
    assert str(err.value) == (
        f"{path}:{line}: [track.speeding] min_fixs: unknown key; did you mean 'min_fixes'?"
    )


def test_wrong_type_names_the_expected_type_and_every_problem_is_listed(tmp_path: Path) -> None:
    path = _file(tmp_path, '\n[run]\nmetrics_port = "9108"\nsnapshot_interval = 5\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    port, snap = _line_of(path, "metrics_port"), _line_of(path, "snapshot_interval")
    assert err.value.problems == [
        f"{path}:{port}: [run] metrics_port: expected integer, got string '9108'",
        f"{path}:{snap}: [run] snapshot_interval: unknown key; did you mean 'snapshot_interval_s'?",
    ]


def test_unknown_table_is_rejected_with_a_hint(tmp_path: Path) -> None:
    path = _file(tmp_path, "\n[sensors.threshold.pm10]\nlimit = 3\n")
    with pytest.raises(ConfigError, match=r"sensors: unknown table; did you mean 'sensor'\?"):
        load_config(path)


def test_env_overrides_any_key_and_errors_name_the_variable() -> None:
    cfg = load_config(
        None, {"CITYWATCH_FLOW__SHARDS": "4", "CITYWATCH_TRACK__STOP__MIN_STOP_S": "600"}
    )
    assert cfg.flow.shards == 4
    assert cfg.track_stop.min_stop_s == 600
    with pytest.raises(
        ConfigError, match=r"^CITYWATCH_FLOW__SHARDS: \[flow\] shards: expected integer"
    ):
        load_config(None, {"CITYWATCH_FLOW__SHARDS": '"four"'})
    with pytest.raises(ConfigError, match=r"CITYWATCH_FLOW__SHARD: .*did you mean 'shards'"):
        load_config(None, {"CITYWATCH_FLOW__SHARD": "4"})
    assert load_config(None, {"CITYWATCH_REDIS_URL": "redis://h:1/2"}).redis.url == "redis://h:1/2"


def test_show_gives_origins_and_masks_secrets() -> None:
    env = {
        "CITYWATCH_REDIS_URL": "redis://ops:hunter2@redis:6379/0",
        "CITYWATCH_FLOW__SHARDS": "4",
        "CITYWATCH_KAFKA__CLIENT__SASL.PASSWORD": '"pw"',
    }
    rows = {(t, k): (v, o) for t, k, v, o in effective(None, env)}
    assert rows[("flow", "shards")] == (4, "env CITYWATCH_FLOW__SHARDS")
    assert rows[("flow", "batch_size")] == (5000, "file")
    assert rows[("flow", "timers")] == ("event", "default")
    assert rows[("redis", "url")] == ("redis://ops:***@redis:6379/0", "env CITYWATCH_REDIS_URL")
    assert "hunter2" not in repr(rows)


def test_config_check_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(DEFAULT_CONFIG)]) == 0
    bad = _file(tmp_path, "\n[incidents]\nhold = 5\n")
    assert main(["config", "check", str(bad)]) == 2
    assert "did you mean 'hold_s'?" in capsys.readouterr().err


def test_integration_tables_are_part_of_the_model(tmp_path: Path) -> None:
    hook = (
        '\n[[webhooks]]\nid = "water"\nurl = "https://water.example/hook"\n'
        'secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"\nevents = ["workorder.created"]\n'
        "\n[outputs.webhooks]\nconcurrency = 2\n"
        '\n[outputs.kafka]\nenabled = true\n[outputs.kafka.client]\n"linger.ms" = 5\n'
        "\n[api]\nrate_per_min = 60\n"
    )
    cfg = load_config(_file(tmp_path, hook))
    assert [h.id for h in cfg.integrations.webhooks] == ["water"]
    assert cfg.integrations.delivery.concurrency == 2 and cfg.integrations.api.rate_per_min == 60
    path = _file(tmp_path, "\n[api]\nrate_per_mn = 60\n")
    with pytest.raises(ConfigError, match="rate_per_mn: unknown key; did you mean 'rate_per_min'"):
        load_config(path)
    path = _file(tmp_path, '\n[[webhooks]]\nid = "w"\nurl = "https://w.example/"\nsecrte = "x"\n')
    with pytest.raises(ConfigError, match="did you mean 'secret'"):
        load_config(path)
