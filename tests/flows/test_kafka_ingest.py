"""``citywatch run`` against librdkafka's mock cluster (3 brokers), into a real Redis.

Each test starts its own mock cluster (fixture ``kafka_bootstrap``); topics
auto-create with 4 partitions on first produce, so the 12 input partitions
and the DLQ topic appear as the recording is produced. The flow runs as a
subprocess, as in production.

Timeline of the crash test (k = kill -9 at a random moment, r = restart that
resumes from the last snapshot, each row one process)::

    run 1  |==== snapshots ====k
    run 2          r=====k                 (re-does the work after its snapshot)
    ...
    run 6                      r====k
    final                            r=========| end of every partition
    Redis work orders == those of one uninterrupted run
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import pytest
import redis
from confluent_kafka import Consumer, KafkaError, TopicPartition

from citywatch.flows.config import Config
from citywatch.flows.kafka_io import list_partitions, produce_recording
from citywatch.flows.metrics import Metrics, MetricsStats
from citywatch.flows.runner import run_recordings
from citywatch.replay.generator import GenParams, generate
from citywatch.replay.recording import iter_lines, unwrap
from citywatch.sinks.dispatch import Dispatch, Route, Written
from citywatch.sinks.keys import Keys

pytestmark = [pytest.mark.kafka, pytest.mark.redis]

TIMEOUT_S = 120


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory, reference: object) -> Path:
    """30 minutes of small-scale traffic with injected incidents (~8 k events)."""
    out = tmp_path_factory.mktemp("kafka") / "r.jsonl"
    generate(reference, GenParams(minutes=30, seed=11), out, None)  # type: ignore[arg-type]
    return out


@pytest.fixture(scope="module")
def long_recording(tmp_path_factory: pytest.TempPathFactory, reference: object) -> Path:
    """60 minutes (~17 k events): long enough to be killed five times mid-stream."""
    out = tmp_path_factory.mktemp("kafka-long") / "r.jsonl"
    generate(reference, GenParams(minutes=60, seed=12), out, None)  # type: ignore[arg-type]
    return out


def _last_commit(rec_dir: Path) -> int:
    """The epoch a restart would resume from: the oldest of the newest epochs each
    recovery partition has committed (-1 while any has none)."""
    newest: list[int] = []
    for part in rec_dir.glob("part-*.sqlite3"):
        try:
            with sqlite3.connect(f"file:{part}?mode=ro", uri=True, timeout=0.2) as db:
                row = db.execute("SELECT max(commit_epoch) FROM commits").fetchone()
        except sqlite3.Error:
            return -1
        if not row or row[0] is None:
            return -1
        newest.append(int(row[0]))
    return min(newest, default=-1)


@pytest.fixture(scope="module")
def direct(
    recording: Path, config: Config, redis_server: object, tmp_path_factory: pytest.TempPathFactory
) -> tuple[list[str], dict[str, tuple[str, ...]]]:
    """Alert ids and work orders of a direct replay of ``recording`` (no Kafka)."""
    alerts = tmp_path_factory.mktemp("direct") / "alerts.jsonl"
    url = _db(redis_server.url, 9)  # type: ignore[attr-defined]
    redis.Redis.from_url(url).flushdb()
    run_recordings([recording], config, url, alerts_out=alerts, progress=False)
    ids = _alert_ids(alerts)
    assert ids, "the recording must raise alerts for the comparison to mean something"
    return ids, _work_orders(url)


@pytest.fixture(scope="module")
def replay_ids(direct: tuple[list[str], dict[str, tuple[str, ...]]]) -> list[str]:
    return direct[0]


def _db(url: str, n: int) -> str:
    return url.rsplit("/", 1)[0] + f"/{n}" if url.count("/") > 2 else f"{url}/{n}"


def _alert_ids(path: Path) -> list[str]:
    return sorted({orjson.loads(line)["id"] for line in path.read_bytes().splitlines() if line})


def _run_cmd(bootstrap: str, redis_url: str, rec_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "citywatch.flows.cli",
        "run",
        "--bootstrap",
        bootstrap,
        "--redis-url",
        redis_url,
        "--recovery-dir",
        str(rec_dir),
        "--metrics-port",
        "0",
        "--timers",
        "event",
        "--stop-at-end",
        *extra,
    ]


def _run(bootstrap: str, redis_url: str, rec_dir: Path, *extra: str) -> str:
    proc = subprocess.run(
        _run_cmd(bootstrap, redis_url, rec_dir, *extra),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    # Every error line, then the tail: with -p 2 the first failure is often far above
    # the other process's follow-up panic at the end.
    errors = [ln for ln in proc.stderr.splitlines() if '"level":"info"' not in ln]
    assert proc.returncode == 0, "\n".join(errors)[:4000] + "\n...\n" + proc.stderr[-2000:]
    return proc.stderr


def _work_orders(url: str) -> dict[str, tuple[str, ...]]:
    """Work orders in Redis: id -> the fields that do not depend on wall-clock time."""
    client = redis.Redis.from_url(url, decode_responses=True)
    out: dict[str, tuple[str, ...]] = {}
    for key in client.scan_iter("{cw}:wo:*"):
        if not key.endswith("}") or client.type(key) != "hash":
            continue  # the audit stream and other per-order keys
        h = client.hgetall(key)
        out[key] = tuple(
            h.get(f, "") for f in ("kind", "subject", "zone", "first_ts", "centre", "department")
        )
    return out


def _queue_entries(url: str) -> list[tuple[str, ...]]:
    """Every queue entry (work order, kind, subject, alert time), sorted: repeats would show."""
    client = redis.Redis.from_url(url, decode_responses=True)
    out = []
    for key in client.scan_iter("{cw}:queue:*"):
        if client.type(key) != "stream":
            continue
        for _id, f in client.xrange(key):
            out.append(
                (key, f.get("wo", ""), f.get("kind", ""), f.get("subject", ""), f.get("ts", ""))
            )
    return sorted(out)


def _watch_for(proc: subprocess.Popen[bytes], needle: bytes, times: int) -> threading.Event:
    """Drains the process's stderr; the event is set once ``times`` lines contain ``needle``."""
    seen = threading.Event()

    def drain() -> None:
        assert proc.stderr is not None
        n = 0
        for line in proc.stderr:
            n += needle in line
            if n >= times:
                seen.set()

    threading.Thread(target=drain, daemon=True).start()
    return seen


def _settings(config: Config, bootstrap: str) -> object:
    return dataclasses.replace(config.kafka, bootstrap=bootstrap)


def test_recording_through_kafka_gives_the_replay_alert_ids(
    kafka_bootstrap: str,
    recording: Path,
    direct: tuple[list[str], dict[str, tuple[str, ...]]],
    config: Config,
    redis_url: str,
    tmp_path: Path,
) -> None:
    replay_ids = direct[0]
    sent = produce_recording([recording], _settings(config, kafka_bootstrap))  # type: ignore[arg-type]
    assert sent.failed == 0 and len(sent.by_topic) == 3
    alerts = tmp_path / "alerts.jsonl"
    log = _run(kafka_bootstrap, redis_url, tmp_path / "rec", "--alerts-out", str(alerts))

    assert _alert_ids(alerts) == replay_ids
    # Work orders exist; their grouping into incidents depends on the incident stage's
    # hold (alert arrival order differs between one stream and 12 partitions).
    assert _work_orders(redis_url)
    finished = [orjson.loads(x) for x in log.splitlines() if '"message":"finished"' in x]
    assert finished and finished[0]["events_in"] == sent.messages

    # Dead letters reached the DLQ topic with their reason in a header.
    parts = list_partitions(
        {"bootstrap.servers": kafka_bootstrap, "group.id": "t"}, [config.kafka.dlq_topic]
    )
    consumer = Consumer(
        {"bootstrap.servers": kafka_bootstrap, "group.id": "t", "enable.partition.eof": True}
    )
    consumer.assign([TopicPartition(t, p, 0) for t, p in parts])
    reasons: list[str] = []
    ends = 0
    while ends < len(parts):
        for msg in consumer.consume(100, 1.0):
            if msg.error() is not None:
                ends += msg.error().code() == KafkaError._PARTITION_EOF
                continue
            reasons.append(dict(msg.headers() or [])["reason"].decode())
    consumer.close()
    assert len(reasons) == finished[0]["dead_letters"] > 0
    assert all(":" in r for r in reasons), reasons[:3]


@pytest.mark.skipif(shutil.which("kcat") is None, reason="Debian's kcat is not installed")
def test_kcat_as_the_producer(
    kafka_bootstrap: str,
    recording: Path,
    replay_ids: list[str],
    config: Config,
    redis_url: str,
    tmp_path: Path,
) -> None:
    """A producer that is not citywatch: kcat writes ``key<TAB>value`` lines per topic."""
    files: dict[str, list[bytes]] = {}
    from citywatch.flows.kafka_io import route_line

    by_type = {v: k for k, v in config.kafka.topics().items()}
    for line in iter_lines(recording):
        raw, implied, _ = unwrap(line)
        topic, key = route_line(raw, implied, by_type)
        files.setdefault(topic, []).append((key or b"") + b"\t" + raw)
    for topic, lines in files.items():
        path = tmp_path / f"{topic}.tsv"
        path.write_bytes(b"\n".join(lines) + b"\n")
        subprocess.run(
            ["kcat", "-P", "-b", kafka_bootstrap, "-t", topic, "-K", "\t", "-l", str(path)],
            check=True,
            timeout=60,
            capture_output=True,
        )
    alerts = tmp_path / "alerts.jsonl"
    _run(kafka_bootstrap, redis_url, tmp_path / "rec", "--alerts-out", str(alerts))
    assert _alert_ids(alerts) == replay_ids


def test_record_keeps_envelopes_and_replays_to_the_same_alerts(
    kafka_bootstrap: str,
    recording: Path,
    replay_ids: list[str],
    config: Config,
    redis_url: str,
    tmp_path: Path,
) -> None:
    produce_recording([recording], _settings(config, kafka_bootstrap))  # type: ignore[arg-type]
    recorded = tmp_path / "recorded.jsonl.zst"
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "citywatch", "record", "--bootstrap", kafka_bootstrap),
            *("--out", str(recorded), "--until-end", "--quiet"),
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    envs = [unwrap(line)[2] for line in iter_lines(recorded)]
    assert all(e is not None for e in envs)
    assert {tuple(sorted(e)) for e in envs if e} == {
        ("arrival_ms", "key", "offset", "partition", "topic")
    }
    # One key, one partition: the order per key survives the trip.
    placement: dict[str, set[tuple[str, int]]] = {}
    for e in envs:
        if e and e["key"]:
            placement.setdefault(e["key"], set()).add((e["topic"], e["partition"]))
    assert placement and all(len(v) == 1 for v in placement.values())

    alerts = tmp_path / "alerts.jsonl"
    run_recordings([recorded], config, redis_url, alerts_out=alerts, progress=False)
    assert _alert_ids(alerts) == replay_ids


def test_two_workers_and_two_processes_give_the_same_work_orders(
    kafka_bootstrap: str,
    recording: Path,
    config: Config,
    redis_server: object,
    tmp_path: Path,
) -> None:
    produce_recording([recording], _settings(config, kafka_bootstrap))  # type: ignore[arg-type]
    base = redis_server.url  # type: ignore[attr-defined]
    results = {}
    for n, (name, args) in enumerate(
        [("w1", ["-w", "1"]), ("w2", ["-w", "2"]), ("p2", ["-p", "2"])], start=3
    ):
        url = _db(base, n)
        redis.Redis.from_url(url).flushdb()
        _run(kafka_bootstrap, url, tmp_path / f"rec-{name}", *args)
        results[name] = (_work_orders(url), _queue_entries(url))
    assert results["w1"][0], "the run must create work orders"
    assert results["w2"] == results["w1"]
    assert results["p2"] == results["w1"]


def test_two_processes_started_by_hand_on_loopback_give_the_single_process_alerts(
    kafka_bootstrap: str,
    recording: Path,
    replay_ids: list[str],
    config: Config,
    redis_server: object,
    tmp_path: Path,
) -> None:
    """The multi-host form (README, Scale-out): each process started on its own with
    ``-i ID -a "host:port;host:port"``, here two on loopback sharing one recovery
    directory that process 0 initialises; their alerts together are one process's."""
    from citywatch.flows.live import free_ports

    produce_recording([recording], _settings(config, kafka_bootstrap))  # type: ignore[arg-type]
    url = _db(redis_server.url, 6)  # type: ignore[attr-defined]
    redis.Redis.from_url(url).flushdb()
    addresses = ";".join(f"127.0.0.1:{p}" for p in free_ports(2))
    rec_dir = tmp_path / "rec"
    procs = [
        subprocess.Popen(
            _run_cmd(kafka_bootstrap, url, rec_dir, "-i", str(i), "-a", addresses)
            + ["--alerts-out", str(tmp_path / f"alerts-{i}.jsonl")],
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=TIMEOUT_S)
        assert proc.returncode == 0, err[-4000:]
    ids = sorted({i for n in range(2) for i in _alert_ids(tmp_path / f"alerts-{n}.jsonl")})
    assert ids == replay_ids


@pytest.mark.slow
def test_kill_9_at_random_points_loses_and_duplicates_no_work_order(
    kafka_bootstrap: str,
    long_recording: Path,
    config: Config,
    redis_server: object,
    tmp_path: Path,
) -> None:
    recording = long_recording
    produce_recording([recording], _settings(config, kafka_bootstrap))  # type: ignore[arg-type]
    base = redis_server.url  # type: ignore[attr-defined]
    ref_url, crash_url = _db(base, 5), _db(base, 6)
    for url in (ref_url, crash_url):
        redis.Redis.from_url(url).flushdb()
    # Small batches and frequent snapshots stretch the run over several seconds.
    slow = ("--batch-size", "5", "--snapshot-interval", "0.2")
    _run(kafka_bootstrap, ref_url, tmp_path / "rec-ref", *slow)
    reference = _work_orders(ref_url)
    assert reference

    rng = random.Random(int(os.environ.get("CITYWATCH_CRASH_SEED", "7")))
    rec_dir = tmp_path / "rec-crash"
    kills = 0
    while kills < 5:
        proc = subprocess.Popen(
            _run_cmd(kafka_bootstrap, crash_url, rec_dir, *slow),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        consuming = _watch_for(proc, b'"message":"partition assigned"', 12)
        assert consuming.wait(TIMEOUT_S), "the run never assigned its partitions"
        if rng.random() < 0.3:  # early: most likely before this run's first snapshot
            time.sleep(rng.uniform(0.0, 1.5))
        else:  # after this run stored a snapshot of its own, at a random moment
            start = _last_commit(rec_dir)
            while proc.poll() is None and _last_commit(rec_dir) <= start:
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 0.5))
        if proc.poll() is not None:  # it finished before the kill: too late to count
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        kills += 1
    assert kills >= 5, f"only {kills} kills landed before the run completed"
    partial = _work_orders(crash_url)
    assert len(partial) < len(reference) or partial == reference
    log = _run(kafka_bootstrap, crash_url, rec_dir, *slow)
    finished = [orjson.loads(x) for x in log.splitlines() if '"message":"finished"' in x]
    # The last run resumed from a snapshot: it read only what was left.
    assert 0 <= finished[0]["events_in"] < sum(1 for _ in iter_lines(recording))

    assert _work_orders(crash_url) == reference
    # Nothing queued twice: the receiving queues hold exactly the reference's entries.
    queued = _queue_entries(crash_url)
    assert queued == _queue_entries(ref_url)
    assert queued


def test_a_run_stops_within_seconds_when_its_brokers_have_vanished(
    recording: Path, config: Config, redis_server: object, tmp_path: Path
) -> None:
    """SIGTERM after every broker went away: the run stores its last snapshot and
    exits within seconds. Each consumer's close waits for its broker threads (about
    4 s with the brokers gone) and Bytewax closed the 12 partitions one after the
    other: 46 s; now they close side by side, waited for 5 s in all."""
    from confluent_kafka import Producer

    mock = Producer({"test.mock.num.brokers": 3, "log_level": 2})
    md = mock.list_topics(timeout=10)
    bootstrap = ",".join(f"{b.host}:{b.port}" for b in md.brokers.values())
    produce_recording([recording], _settings(config, bootstrap))  # type: ignore[arg-type]
    url = _db(redis_server.url, 4)  # type: ignore[attr-defined]
    redis.Redis.from_url(url).flushdb()
    cmd = [c for c in _run_cmd(bootstrap, url, tmp_path / "rec") if c != "--stop-at-end"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    lines: list[bytes] = []
    assigned = threading.Event()

    def drain() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if sum(b'"message":"partition assigned"' in x for x in lines) >= 12:
                assigned.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        assert assigned.wait(TIMEOUT_S), "the run never assigned its partitions"
        client, index = redis.Redis.from_url(url), Keys(config.redis.prefix).index()
        deadline = time.monotonic() + TIMEOUT_S
        while not client.zcard(index) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert client.zcard(index), "no work order was written before the brokers went"
        del mock  # the mock cluster goes with its producer: every broker is gone
        time.sleep(2)
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=25)
        except subprocess.TimeoutExpired:
            pytest.fail("the run did not exit within 25 s of SIGTERM with its brokers gone")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(5)
    log = b"".join(lines).decode()
    assert rc == 0, log[-3000:]
    assert '"message":"finished"' in log
    assert "kafka consumers still closing" in log  # the bounded wait was what ended it


def test_metrics_count_what_the_run_stats_count() -> None:
    from prometheus_client import generate_latest

    from citywatch.detectors.alerts import Alert

    m = Metrics()
    stats = MetricsStats(m)
    stats.add_parsed(3, {"gps": 2}, ["gps.lat"])
    stats.add_late(2)
    stats.add_alerts(["track.stop", "track.stop"])
    m.on_messages("citywatch.gps", 3)
    m.on_lag("citywatch.gps", 1, 42)
    alert = Alert("al-1", "track.stop", "orange", "truck-1", "gps", None, 120.9, 32.0, 0, 0)
    d = Dispatch(alert, Route("c", "d", "town", None), 60, 600, ingest_ns=time.time_ns())
    m.on_written([d, d], [Written("wo-1", "created"), Written("wo-1", "repeat")])
    text = generate_latest(m.registry).decode()
    for line in (
        'citywatch_events_in_total{topic="citywatch.gps"} 3.0',
        'citywatch_dead_letters_total{reason="gps.lat"} 1.0',
        "citywatch_late_events_total 2.0",
        'citywatch_alerts_total{kind="track.stop"} 2.0',
        'citywatch_incidents_total{kind="track.stop"} 1.0',
        'citywatch_work_orders_total{outcome="created"} 1.0',
        'citywatch_work_orders_total{outcome="repeat"} 1.0',
        'citywatch_consumer_lag_messages{partition="1",topic="citywatch.gps"} 42.0',
        "citywatch_ingest_to_dispatch_seconds_count 2.0",
    ):
        assert line in text, line


def _child_pids(pid: int) -> list[int]:
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


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.mark.slow
def test_kill_9_of_a_two_process_run_resumes_without_loss_or_repeat(
    kafka_bootstrap: str,
    recording: Path,
    config: Config,
    redis_server: object,
    tmp_path: Path,
) -> None:
    """``run -p 2`` killed twice (SIGKILL to the parent; its children die with it) after
    a snapshot of its own, then run to the end on the same recovery directory: the work
    orders and queue entries of an undisturbed single-process run."""
    produce_recording([recording], _settings(config, kafka_bootstrap))  # type: ignore[arg-type]
    base = redis_server.url  # type: ignore[attr-defined]
    ref_url, crash_url = _db(base, 11), _db(base, 12)
    for url in (ref_url, crash_url):
        redis.Redis.from_url(url).flushdb()
    slow = ("--batch-size", "5", "--snapshot-interval", "0.2")
    _run(kafka_bootstrap, ref_url, tmp_path / "rec-ref", *slow)
    assert _work_orders(ref_url)
    rec_dir = tmp_path / "rec-p2"
    for _ in range(2):
        proc = subprocess.Popen(
            _run_cmd(kafka_bootstrap, crash_url, rec_dir, "-p", "2", *slow),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        consuming = _watch_for(proc, b'"message":"partition assigned"', 12)
        assert consuming.wait(TIMEOUT_S), "the run never assigned its partitions"
        while proc.poll() is None and not _work_orders(crash_url):
            time.sleep(0.05)  # input read: the next snapshot holds offsets past the start
        start = _last_commit(rec_dir)
        while proc.poll() is None and _last_commit(rec_dir) <= start:
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed"
        kids = _child_pids(proc.pid)
        assert len(kids) == 2
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while not all(_gone(k) for k in kids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(_gone(k) for k in kids), "a child outlived its parent"
    log = _run(kafka_bootstrap, crash_url, rec_dir, "-p", "2", *slow)
    finished = [orjson.loads(x) for x in log.splitlines() if '"message":"finished"' in x]
    assert len(finished) == 2  # one per process; together they read only what was left
    assert 0 <= sum(f["events_in"] for f in finished) < sum(1 for _ in iter_lines(recording))
    assert _work_orders(crash_url) == _work_orders(ref_url)
    assert _queue_entries(crash_url) == _queue_entries(ref_url)
