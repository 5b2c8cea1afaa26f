"""Redis faults without a crash: waiting at start, an outage mid-run, `run -p N` children
that die with their parent and never carry the password on their command line.

Outage timeline (event time paced at x150, one worker)::

    replay  |=====|xxxxxxxxxx|=========|     x: the sink holds its batch and retries,
    redis   up    killed     restarted       the reader waits (backpressure)
            0 s   ~1.5 s     ~5 s      ~10 s
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from citywatch.detectors.alerts import Alert
from citywatch.flows.config import Config
from citywatch.flows.kafka_io import produce_recording
from citywatch.flows.runner import check_redis, run_recordings
from citywatch.geo.reference import Reference
from citywatch.replay.generator import GenParams, generate
from citywatch.sinks.client import DispatchError, RedisOptions, wait_for_redis
from citywatch.sinks.embedded_redis import EmbeddedRedis, free_port
from citywatch.sinks.keys import Keys
from citywatch.sinks.queues import comparable_orders
from citywatch.sinks.redis_sinks import RedisDispatchSink
from citywatch.sinks.workorder import Dispatch, Route

pytestmark = pytest.mark.redis


def work_orders(url: str) -> dict[str, dict[str, object]]:
    client = redis.Redis.from_url(url)
    try:
        return comparable_orders(client, Keys("cw"))
    finally:
        client.close()


def test_start_waits_with_backoff_then_connects_when_redis_comes() -> None:
    port = free_port()
    opts = RedisOptions(url=f"redis://127.0.0.1:{port}/0")
    said: list[str] = []
    with pytest.raises(DispatchError, match=r"--redis-wait 1\)"):
        wait_for_redis(opts, 1.0, on_wait=said.append)
    assert said and all("not reachable" in s and "up to 1 s" in s for s in said)
    server = EmbeddedRedis(port=port)
    later = threading.Timer(1.5, server.start)
    later.start()
    try:
        said.clear()
        client = wait_for_redis(opts, None, on_wait=said.append)
        assert client.ping() and said and "waiting for ever" in said[0]
        client.close()
    finally:
        later.join()
        server.cleanup()
    with pytest.raises(DispatchError, match="cannot reach Redis"):
        wait_for_redis(opts, 0)  # tests and scripts: fail at once


def test_run_fails_fast_with_redis_wait_zero(tmp_path: Path) -> None:
    url = f"redis://:pw@127.0.0.1:{free_port()}/0"
    proc = subprocess.run(
        [sys.executable, "-m", "citywatch.flows.cli", "run", "--redis-url", url,
         "--redis-wait", "0", "--recovery-dir", str(tmp_path / "rec"), "--metrics-port", "0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "cannot reach Redis at redis://:***@127.0.0.1" in last and ":pw@" not in proc.stderr


def test_a_redis_without_persistence_is_warned_about_once(
    config: Config, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="citywatch.run"):
        check_redis(config, redis_url, 0)
    warned = [r.getMessage() for r in caplog.records if "no persistence" in r.getMessage()]
    assert len(warned) == 1 and "appendonly yes" in warned[0]
    caplog.clear()
    with EmbeddedRedis(appendonly=True) as durable, caplog.at_level(logging.WARNING):
        check_redis(config, durable.url, 0)
    assert not [r for r in caplog.records if "no persistence" in r.getMessage()]


def test_console_without_a_url_says_it_runs_a_throw_away_redis(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYWATCH_REDIS")}
    # Started as a shell starts a background job (SIGINT ignored), and stopped with
    # SIGINT while it is still starting: a web server that takes SIGINT only once it
    # serves would lose it and run on.
    proc = subprocess.Popen(
        [sys.executable, "-m", "citywatch.flows.cli", "console", "--port", str(free_port())],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),  # noqa: PLW1509
    )  # fmt: skip
    rest: list[str] = []  # the rest of stderr, drained: a full pipe would block the console
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        threading.Thread(target=lambda: rest.extend(proc.stderr or ()), daemon=True).start()
        assert "started a throw-away embedded redis-server" in line, line
        workdir = Path(line.split("with its data in ", 1)[1].split(" (deleted on exit)")[0])
        assert workdir.is_dir()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGUSR2)  # every thread's stack, to its stderr
            time.sleep(2)
            proc.kill()
            proc.wait()
            pytest.fail(
                "the console did not stop on SIGINT; its stderr (with its threads' stacks):\n"
                + "".join(rest[-200:])
            )
    assert not workdir.exists()


@pytest.fixture()
def outage_recording(tmp_path: Path, reference: Reference) -> Path:
    path = tmp_path / "rec.jsonl"
    generate(reference, GenParams(minutes=25, scale="small", seed=3), path)
    return path


@pytest.mark.slow
def test_redis_outage_mid_run_loses_and_duplicates_nothing(
    config: Config,
    redis_server: EmbeddedRedis,
    outage_recording: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clean_url = redis_server.url.rsplit("/", 1)[0] + "/7"
    redis.Redis.from_url(clean_url).flushdb()
    run_recordings([outage_recording], config, clean_url, progress=False)
    clean = work_orders(clean_url)
    assert clean, "the recording must create work orders"

    server = EmbeddedRedis(appendonly=True).start()
    cfg = dataclasses.replace(
        config, redis=dataclasses.replace(config.redis, retry_backoff_max_s=0.5)
    )
    try:
        outage = threading.Event()

        def cut() -> None:
            time.sleep(1.5)
            server.kill()  # connections refused from now on
            outage.set()
            time.sleep(3.5)
            server.start()  # same port, same append-only file

        cutter = threading.Thread(target=cut)
        cutter.start()
        result = run_recordings([outage_recording], cfg, server.url, speed=150, progress=False)
        cutter.join()
        assert outage.is_set() and result.stats.events_in > 0
        assert work_orders(server.url) == clean
    finally:
        server.cleanup()


@pytest.fixture()
def protected_redis() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(password="top-secret-pw") as server:
        yield server


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
def test_run_children_die_with_their_parent_and_hide_the_password(
    kafka_bootstrap: str,
    protected_redis: EmbeddedRedis,
    outage_recording: Path,
    config: Config,
    tmp_path: Path,
) -> None:
    produce_recording(
        [outage_recording], dataclasses.replace(config.kafka, bootstrap=kafka_bootstrap)
    )
    env = {**os.environ, "CITYWATCH_REDIS_URL": protected_redis.url}
    parent = subprocess.Popen(
        [sys.executable, "-m", "citywatch.flows.cli", "run", "-p", "2", "--bootstrap",
         kafka_bootstrap, "--recovery-dir", str(tmp_path / "rec"), "--metrics-port", "0"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        kids: list[int] = []
        while len(kids) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
            kids = [k for k in _children(parent.pid) if _alive(k)]
        assert len(kids) == 2, "the run did not start two children"
        time.sleep(2)  # the children are running the flow now
        assert all(_alive(k) for k in kids)
        for kid in kids:
            cmdline = Path(f"/proc/{kid}/cmdline").read_bytes()
            assert b"top-secret-pw" not in cmdline and b"--redis-url" not in cmdline
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 5
        while any(_alive(k) for k in kids) and time.monotonic() < deadline:
            time.sleep(0.1)
        survivors = [k for k in kids if _alive(k)]
        assert survivors == [], f"children outlived their parent by 5 s: {survivors}"
    finally:
        if parent.poll() is None:
            parent.kill()
        for kid in _children(parent.pid):
            os.kill(kid, signal.SIGKILL)


def test_a_full_redis_is_waited_out_like_an_absent_one() -> None:
    """``OOM command not allowed`` (maxmemory with noeviction) holds the batch; once
    memory is raised, the held batch is written and nothing is lost."""
    alerts = [
        Alert.make(
            "video.intrusion", "yellow", f"cam-{i}", "video", f"site-{i}", 121.0, 32.0,
            ts_ms=1_781_528_400_000 + i, first_ts_ms=1_781_528_400_000 + i, evidence={},
        )
        for i in range(5)
    ]  # fmt: skip
    for a in alerts:
        a.incident = "in-" + a.id.split("-", 1)[1]
    route = Route("town:a", "public_security", "town", "town:a")
    with EmbeddedRedis() as server:
        admin = redis.Redis.from_url(server.url)
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", "1")  # every write is refused with OOM from now on
        retried: list[str] = []
        sink = RedisDispatchSink(server.url, Keys("t"), on_retry=retried.append)
        sink.setup()
        writer = threading.Thread(
            target=sink.write_batch, args=([Dispatch(a, route, 60, 3600) for a in alerts],)
        )
        writer.start()
        while len(retried) < 2:  # the sink holds the batch and retries
            writer.join(0.05)
            assert writer.is_alive(), "the sink gave up or dropped the batch"
        admin.config_set("maxmemory", "0")
        writer.join()
        sink.close()
        assert admin.zcard("{t}:index:{wo}") == len(alerts)
        admin.close()
