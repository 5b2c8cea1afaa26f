"""Running the console: in the foreground (``citywatch console``) or in a background thread
(the demo and the browser tests), served by uvicorn."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Sequence

import uvicorn
from starlette.routing import BaseRoute

from citywatch.console.app import create_app
from citywatch.console.core import ConsoleApp, Site
from citywatch.console.settings import ConsoleSettings
from citywatch.sinks.client import RedisOptions

# On stop, open requests get this long to finish; then the live event streams (which
# never end by themselves) are cut, and the browsers reconnect to the next server.
SHUTDOWN_S = 1


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


ExtraRoutes = Callable[[ConsoleApp], Sequence[BaseRoute]]


def _server(
    site: Site,
    redis_url: RedisOptions | str,
    settings: ConsoleSettings,
    extra_routes: ExtraRoutes | None = None,
) -> uvicorn.Server:
    app = create_app(site, redis_url, settings, extra_routes=extra_routes)
    return uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            timeout_graceful_shutdown=SHUTDOWN_S,
        )
    )


def serve(
    site: Site,
    redis_url: RedisOptions | str,
    settings: ConsoleSettings,
    extra_routes: ExtraRoutes | None = None,
) -> None:
    """Serve until interrupted; ``extra_routes(app)`` adds routes (the token API)."""
    _server(site, redis_url, settings, extra_routes).run()


class ConsoleThread:
    """The console served from a daemon thread; ``url`` once ``start()`` returns."""

    def __init__(
        self,
        site: Site,
        redis_url: RedisOptions | str,
        settings: ConsoleSettings,
        extra_routes: ExtraRoutes | None = None,
    ) -> None:
        self.settings = settings
        self.server = _server(site, redis_url, settings, extra_routes)
        self._thread = threading.Thread(target=self.server.run, daemon=True, name="console")

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}"

    def start(self, timeout_s: float = 15.0) -> ConsoleThread:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                msg = (
                    f"the console did not start on {self.url} within {timeout_s:g} s; "
                    "is the port taken? pick another with --port"
                )
                raise RuntimeError(msg)
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)
