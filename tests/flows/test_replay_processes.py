"""``replay -p 2``: two processes, one Bytewax cluster on loopback, the alerts and work
orders of one process.

Small batches (``CITYWATCH_FLOW__BATCH_SIZE``) so that each process parses many
batches and the watermark step gets them out of order; a plain recording (one
source) and the same lines in Kafka envelopes over three recorded partitions
(several sources, their end-of-input marks numbered after their last batch). A
key's events stay in one partition, as Kafka producers keyed by entity keep them:
with a key spread over partitions, which of its events comes first depends on how
the workers interleave the partitions, for ``-w 2`` as for ``-p 2``.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import zlib
from pathlib import Path

import orjson
import pytest
import redis

from citywatch.detectors.events import DeadLetter, parse_event
from citywatch.flows.config import Config
from citywatch.flows.runner import run_recordings
from citywatch.geo.reference import Reference
from citywatch.replay.generator import GenParams, generate
from citywatch.replay.recording import iter_lines
from citywatch.sinks.embedded_redis import EmbeddedRedis
from citywatch.sinks.keys import Keys
from citywatch.sinks.queues import comparable_orders

pytestmark = [pytest.mark.redis, pytest.mark.slow]

BATCH = 400


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory, reference: Reference) -> Path:
    path = tmp_path_factory.mktemp("replay-p") / "plain.jsonl"
    generate(reference, GenParams(minutes=60, scale="small", seed=3), path)
    return path


@pytest.fixture(scope="module")
def enveloped(plain: Path) -> Path:
    """The same lines as recorded off Kafka: three partitions keyed by entity, sensor or
    camera (as the producers key them, so a key's events keep their order), each line
    arriving half a second after its time."""
    path = plain.with_name("enveloped.jsonl")
    with path.open("wb") as out:
        for n, line in enumerate(iter_lines(plain)):
            ev = parse_event(line, None, "rec")
            key, ts_ms = (line, 0) if isinstance(ev, DeadLetter) else (ev.key.encode(), ev.ts_ms)
            kind = "gps" if isinstance(ev, DeadLetter) else ev.type
            env = {"topic": f"citywatch.{kind}", "partition": zlib.crc32(key) % 3,
                   "offset": n, "key": None, "arrival_ms": ts_ms + 500}  # fmt: skip
            out.write(orjson.dumps({"kafka": env, "value": line.decode()}) + b"\n")
    return path


def _db(server: EmbeddedRedis, n: int) -> str:
    url = server.url.rsplit("/", 1)[0] + f"/{n}"
    redis.Redis.from_url(url).flushdb()
    return url


def _orders(url: str) -> dict[str, dict[str, object]]:
    """The work orders, each one's alerts and audit actions as sorted lists: alerts of one
    incident raised on different workers reach its order in either order, with ``-w 2``
    as with ``-p 2``; which alerts, and every other field, must agree."""
    client = redis.Redis.from_url(url)
    try:
        orders = comparable_orders(client, Keys("cw"))
    finally:
        client.close()
    return {wo: {**doc, "alerts": sorted(doc["alerts"]), "audit": sorted(doc["audit"])}
            for wo, doc in orders.items()}  # fmt: skip


@pytest.mark.parametrize("name", ["plain", "enveloped"])
def test_two_processes_give_the_alerts_and_work_orders_of_one(
    name: str,
    request: pytest.FixtureRequest,
    config: Config,
    redis_server: EmbeddedRedis,
    tmp_path: Path,
) -> None:
    recording: Path = request.getfixturevalue(name)
    one, two = _db(redis_server, 9), _db(redis_server, 10)
    cfg = dataclasses.replace(config, flow=dataclasses.replace(config.flow, batch_size=BATCH))
    run_recordings([recording], cfg, one, alerts_out=tmp_path / "one.jsonl", progress=False)
    env = {**os.environ, "CITYWATCH_REDIS_URL": two, "CITYWATCH_FLOW__BATCH_SIZE": str(BATCH)}
    done = subprocess.run(
        [sys.executable, "-m", "citywatch.flows.cli", "replay", str(recording), "-p", "2",
         "--quiet", "--alerts-out", str(tmp_path / "two.jsonl")],
        env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    expected = sorted((tmp_path / "one.jsonl").read_bytes().splitlines())
    assert len(expected) >= 10, "too few alerts to compare"
    assert sorted((tmp_path / "two.jsonl").read_bytes().splitlines()) == expected
    got, want = _orders(two), _orders(one)
    assert got.keys() == want.keys()
    differ = {wo: {k: (v, want[wo].get(k)) for k, v in doc.items() if v != want[wo].get(k)}
              for wo, doc in got.items() if doc != want[wo]}  # fmt: skip
    assert differ == {}
    events = int(done.stdout.split("events: ", 1)[1].split(" ", 1)[0].replace(",", ""))
    assert events == sum(1 for _ in iter_lines(recording))  # both processes' counts summed
