"""An embedded, real Redis Cluster for tests and benchmarks.

Starts ``masters × (1 + replicas)`` redis-server nodes (Debian's, with
``--cluster-enabled yes``) on free loopback ports, each in its own temporary
directory, joins them with ``redis-cli --cluster create ... --cluster-yes``, and
waits until every node reports ``cluster_state:ok`` and every replica is in sync.

>>> with EmbeddedRedisCluster(masters=3) as cluster:    # doctest: +SKIP
...     print(cluster.url)
redis+cluster://127.0.0.1:40123
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import redis

from citywatch.sinks.embedded_redis import (
    EmbeddedRedis,
    EmbeddedRedisError,
    find_redis_server,
    free_ports,
)


def find_redis_cli() -> str:
    """``redis-cli`` on PATH, else next to ``redis-server`` (Debian ships both)."""
    found = shutil.which("redis-cli")
    if found:
        return found
    beside = Path(find_redis_server()).with_name("redis-cli")
    if beside.exists():
        return str(beside)
    msg = "no redis-cli found: install Debian's redis-server (it brings redis-cli)"
    raise EmbeddedRedisError(msg)


class EmbeddedRedisCluster:
    """A Redis Cluster of child processes on 127.0.0.1; use as a context manager."""

    def __init__(
        self,
        *,
        masters: int = 3,
        replicas: int = 0,
        node_timeout_ms: int = 2000,
        appendonly: bool = False,
    ) -> None:
        if masters < 3:
            msg = f"a Redis Cluster needs at least 3 masters, got {masters}"
            raise EmbeddedRedisError(msg)
        self.masters = masters
        self.replicas = replicas
        self.workdir = Path(tempfile.mkdtemp(prefix="citywatch-cluster-"))
        args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(node_timeout_ms)]  # fmt: skip
        # The cluster bus port defaults to port + 10000 (too high for ephemeral ports).
        # Every node's client and bus ports are picked together, so that no two of them
        # are the same port (one node then failed to bind and the cluster never formed).
        count = masters * (1 + replicas)
        ports = free_ports(2 * count)
        self.nodes = [
            EmbeddedRedis(
                port=ports[2 * i],
                workdir=self.workdir / f"node-{i}",
                appendonly=appendonly,
                extra_args=[*args, "--cluster-port", str(ports[2 * i + 1])],
            )
            for i in range(count)
        ]

    @property
    def url(self) -> str:
        """The cluster URL citywatch takes (any live node is a seed; the first here)."""
        return f"redis+cluster://127.0.0.1:{self.live_nodes()[0].port}"

    def live_nodes(self) -> list[EmbeddedRedis]:
        return [n for n in self.nodes if n._proc is not None]

    def start(self, timeout_s: float = 60.0) -> EmbeddedRedisCluster:
        for node in self.nodes:
            node.workdir.mkdir(parents=True, exist_ok=True)
            node.start()
        addrs = [f"127.0.0.1:{n.port}" for n in self.nodes]
        cmd = [find_redis_cli(), "--cluster", "create", *addrs,
               "--cluster-replicas", str(self.replicas), "--cluster-yes"]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)  # noqa: S603
        if done.returncode != 0:
            self.cleanup()
            msg = f"redis-cli --cluster create failed: {done.stdout[-2000:]}{done.stderr}"
            raise EmbeddedRedisError(msg)
        self.wait_ready(timeout_s)
        return self

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Until every live node says ``cluster_state:ok``, knows every live node, and
        every live replica's link to its master is up."""
        deadline = time.monotonic() + timeout_s
        live = self.live_nodes()
        while True:
            if all(self._ready(n, len(live)) for n in live):
                return
            if time.monotonic() > deadline:
                msg = f"the cluster in {self.workdir} was not ready within {timeout_s:g} s"
                raise EmbeddedRedisError(msg)
            time.sleep(0.1)

    @staticmethod
    def _ready(node: EmbeddedRedis, n_live: int) -> bool:
        client = redis.Redis(host="127.0.0.1", port=node.port, decode_responses=True)
        try:
            info = client.cluster("info")
            if info.get("cluster_state") != "ok":
                return False
            nodes = client.cluster("nodes")
            healthy = [v for v in nodes.values() if "fail" not in v["flags"]]
            if len(healthy) < n_live:
                return False
            repl = client.info("replication")
            return repl["role"] == "master" or repl.get("master_link_status") == "up"
        except redis.RedisError:
            return False
        finally:
            client.close()

    def master_of(self, key: str) -> EmbeddedRedis:
        """The live node that serves ``key``'s hash slot now (as the live nodes see it)."""
        for node in self.live_nodes():
            client = redis.Redis(host="127.0.0.1", port=node.port)
            try:
                slot = int(client.cluster("keyslot", key))
                ranges: list[list[Any]] = client.cluster("slots")
                for start, end, primary, *_ in ranges:
                    if int(start) <= slot <= int(end):
                        port = int(primary[1])
                        return next(n for n in self.live_nodes() if n.port == port)
            except (redis.RedisError, StopIteration):
                continue
            finally:
                client.close()
        msg = f"no live master serves {key!r}"
        raise EmbeddedRedisError(msg)

    def flush(self) -> None:
        """Delete every key on every live master (the replicas follow)."""
        for node in self.live_nodes():
            client = redis.Redis(host="127.0.0.1", port=node.port)
            try:
                if client.info("replication")["role"] == "master":
                    client.flushall()
            finally:
                client.close()

    def cleanup(self) -> None:
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> EmbeddedRedisCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()
