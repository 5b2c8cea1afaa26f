"""One Redis client factory for every part: secrets masked, password from env or file,
TLS with CA and client certificate, one-line ACL denials, a loud dead-letter sink."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import redirect_stderr
from pathlib import Path

import pytest
import redis

from citywatch.console.core import ConsoleApp
from citywatch.console.settings import ConsoleSettings
from citywatch.detectors.events import DeadLetter
from citywatch.flows import cli
from citywatch.flows.config import DEFAULT_CONFIG, Config, ConfigError, load_config
from citywatch.flows.console_site import site_for
from citywatch.sinks.client import (
    DispatchError,
    RedisOptions,
    RetryPolicy,
    open_async_client,
    open_client,
    safe_url,
)
from citywatch.sinks.embedded_redis import EmbeddedRedis, find_redis_server, free_port
from citywatch.sinks.keys import Keys
from citywatch.sinks.redis_sinks import RedisDeadLetterSink

pytestmark = pytest.mark.redis


def write_config(tmp_path: Path, redis_lines: str) -> Path:
    """The bundled config with absolute data paths and extra ``[redis]`` lines."""
    text = DEFAULT_CONFIG.read_text(encoding="utf-8")
    for name in ("zones.geojson", "jurisdictions.geojson", "sensors.csv", "cameras.csv"):
        text = text.replace(f'"{name}"', f'"{DEFAULT_CONFIG.parent / name}"')
    text = text.replace("[redis]\n", f"[redis]\n{redis_lines}\n", 1)
    path = tmp_path / "citywatch.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("redis://user:secret@host:6379/0", "secret"),
        ("redis://:p@ss@host:6379/0", "p@ss"),
        ("redis://ops:pa:ss@word@host:6379/0", "pa:ss@word"),
        ("rediss://ops:a/b@c@host:6380/1", "a/b@c"),
        ("redis://tokenonly@host", "tokenonly"),
    ],
    ids=["plain", "at-sign", "colon-and-at", "slash", "no-user"],
)
def test_printed_urls_mask_the_whole_password(url: str, secret: str) -> None:
    shown = safe_url(url)
    assert secret not in shown and "***@host" in shown
    opts = RedisOptions(url=url, password="other-secret")
    assert secret not in repr(opts) and "other-secret" not in repr(opts)


def test_password_comes_from_env_or_file_never_from_the_config_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "redis.pass"
    secret_file.write_text("from-file\n", encoding="utf-8")
    path = write_config(tmp_path, f'password_file = "{secret_file}"\nusername = "cw"')
    cfg = load_config(path, env={})
    assert cfg.redis.options("redis://h:6379/0").password == "from-file"
    env = {"CITYWATCH_REDIS_PASSWORD": "from-env"}
    opts = load_config(path, env=env).redis.options("redis://h:6379/0")
    assert (opts.password, opts.username) == ("from-env", "cw")
    assert "from-env" not in repr(load_config(path, env=env))
    with pytest.raises(ConfigError, match="keep the secret out of the file"):
        load_config(write_config(tmp_path, 'password = "plain"'), env={})


def test_env_password_reaches_a_protected_server(config: Config) -> None:
    with EmbeddedRedis(password="s3cr:t@pw") as server:
        bare = f"redis://127.0.0.1:{server.port}/0"
        with pytest.raises(DispatchError, match="refused the credentials"):
            open_client(RedisOptions(url=bare))
        settings = dataclasses.replace(config.redis, password="s3cr:t@pw")
        assert open_client(settings.options(bare)).ping()


def _acl_server(server: EmbeddedRedis, user: str, rules: list[str]) -> str:
    admin = redis.Redis(host="127.0.0.1", port=server.port)
    admin.acl_setuser(user, enabled=True, passwords=["+u-pw"], keys=["{cw}:*"], commands=rules)
    admin.close()
    return f"redis://{user}:u-pw@127.0.0.1:{server.port}/0"


def test_an_acl_denial_is_one_line_naming_the_permission(redis_server: EmbeddedRedis) -> None:
    url = _acl_server(redis_server, "reader", ["+@read", "+ping", "+@connection"])
    err = io.StringIO()
    with redirect_stderr(err):
        code = cli.main(["silence", "add", "--redis-url", url, "--zone", "z-1", "--for", "1h"])
    lines = err.getvalue().strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert "denied ACL user 'reader'" in lines[0] and "ACL SETUSER reader +hset" in lines[0]
    assert "u-pw" not in lines[0]


@pytest.fixture(scope="module")
def small_recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rec = tmp_path_factory.mktemp("acl") / "rec.jsonl"
    assert cli.main(["generate", "--minutes", "20", "--scale", "small", "--out", str(rec)]) == 0
    return rec


@pytest.mark.parametrize(
    ("user", "rules", "grant"),
    [
        ("noscript", ["+@all", "-evalsha", "-eval"], "ACL SETUSER noscript +evalsha"),
        ("noxadd", ["+@all", "-xadd"], "ACL SETUSER noxadd +xadd"),
        ("noxdel", ["+@all", "-xdel", "-xack"], "ACL SETUSER noxdel +xack +xdel"),
    ],
    ids=["script-call", "inside-script", "two-inside-script"],
)
def test_an_acl_denial_of_the_flow_is_one_line_before_it_starts(
    redis_server: EmbeddedRedis, small_recording: Path, user: str, rules: list[str], grant: str
) -> None:
    """Redis names no command when a script is denied one; the check at start does."""
    url = _acl_server(redis_server, user, rules)
    err = io.StringIO()
    with redirect_stderr(err):
        code = cli.main(["replay", str(small_recording), "--redis-url", url, "--quiet"])
    lines = err.getvalue().strip().splitlines()
    assert code == 2 and len(lines) == 1, err.getvalue()
    assert f"denied ACL user '{user}'" in lines[0] and lines[0].endswith(grant)


def test_the_documented_acl_user_runs_everything(
    redis_server: EmbeddedRedis, small_recording: Path
) -> None:
    """The ACL line in the README's "Redis in production" is enough for a whole run."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    line = next(x for x in readme.splitlines() if x.startswith("ACL SETUSER citywatch"))
    admin = redis.Redis(host="127.0.0.1", port=redis_server.port)
    admin.execute_command(*line.replace(">PASSWORD", ">doc-pw").split())
    admin.close()
    url = f"redis://citywatch:doc-pw@127.0.0.1:{redis_server.port}/0"
    out = io.StringIO()
    with redirect_stderr(out):
        assert cli.main(["replay", str(small_recording), "--redis-url", url, "--quiet"]) == 0
        assert cli.main(["escalate", "--redis-url", url]) == 0
        assert cli.main(["report", "--redis-url", url]) == 0
    client = redis.Redis.from_url(url, decode_responses=True)
    assert client.zcard("{cw}:index:{wo}") > 0
    client.close()


def test_dead_letter_sink_logs_counts_and_gives_up_loudly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = EmbeddedRedis().start()
    retried: list[str] = []
    opts = RedisOptions(url=server.url, retry=RetryPolicy(first_s=0.05, max_s=0.1))
    sink = RedisDeadLetterSink(opts, Keys("t"), give_up_s=0.5, on_retry=retried.append)
    sink.setup()
    dead = [DeadLetter(b"{bad", "json", "gps")]
    sink.write_batch(dead)
    server.cleanup()
    with caplog.at_level(logging.WARNING), pytest.raises(DispatchError, match="gave up after"):
        sink.write_batch(dead)
    warnings = [r for r in caplog.records if "dead-letter sink" in r.getMessage()]
    assert len(retried) >= 2 and set(retried) == {"dead-letter"}
    assert len(warnings) == sink.retries + 1  # one line per retry, then the error
    assert warnings[-1].levelno == logging.ERROR


@pytest.fixture()
def tls_server(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """redis-server on TLS only, trusting a fresh CA and requiring client certificates."""

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=tmp_path)

    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
        "-keyout", "ca.key", "-out", "ca.crt")  # fmt: skip
    for name in ("server", "client"):
        ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", f"{name}.key", "-out", f"{name}.csr")  # fmt: skip
        (tmp_path / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n", encoding="utf-8")
        ssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.ext",
            "-out", f"{name}.crt")  # fmt: skip
    port = free_port()
    proc = subprocess.Popen(
        [find_redis_server(), "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", "server.crt", "--tls-key-file", "server.key",
         "--tls-ca-cert-file", "ca.crt", "--tls-auth-clients", "yes", "--save", "",
         "--dir", str(tmp_path)],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    files = {
        "tls_ca_file": str(tmp_path / "ca.crt"),
        "tls_cert_file": str(tmp_path / "client.crt"),
        "tls_key_file": str(tmp_path / "client.key"),
    }
    url = f"rediss://127.0.0.1:{port}/0"
    opts = RedisOptions(url=url, **files)
    for _ in range(200):  # up to ~10 s for the server to listen
        try:
            open_client(opts).close()
            break
        except DispatchError:
            assert proc.poll() is None, "redis-server with TLS exited at start"
            time.sleep(0.05)
    yield url, files
    proc.terminate()
    proc.wait()


def test_every_client_carries_the_tls_ca_and_client_certificate(
    tls_server: tuple[str, dict[str, str]], config: Config, tmp_path: Path
) -> None:
    url, files = tls_server
    with pytest.raises(DispatchError, match="cannot reach Redis"):
        open_client(RedisOptions(url=url))  # the system CAs do not know this server
    lines = "\n".join(f'{k} = "{v}"' for k, v in files.items())
    path = write_config(tmp_path, f'url = "{url}"\n{lines}')
    cfg = load_config(path, env={})
    # the dead-letter sink
    sink = RedisDeadLetterSink(cfg.redis.options(), Keys("cw"))
    sink.setup()
    sink.write_batch([DeadLetter(b"{bad", "json", "gps")])
    sink.close()
    # `console users add` and `report`, from the config file alone
    stdin, sys.stdin = sys.stdin, io.StringIO("pw-of-bob-123\n")
    try:
        add = ["console", "--config", str(path), "users", "add", "bob", "--role", "leader"]
        assert cli.main(add) == 0
    finally:
        sys.stdin = stdin
    assert cli.main(["report", "--config", str(path)]) == 0
    # the console server's two clients
    con = ConsoleApp.open(site_for(cfg), cfg.redis.options(url), ConsoleSettings.from_table({}))
    assert con.sync.ping()
    assert asyncio.run(con.aclient.ping())
    client = open_client(cfg.redis.options(), decode_responses=True)
    assert client.xlen(Keys("cw").dlq()) == 1 and client.hexists("{cw}:console:{users}", "bob")
    client.close()
    assert asyncio.run(open_async_client(cfg.redis.options()).ping())
