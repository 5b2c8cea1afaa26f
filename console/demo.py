"""The console for ``citywatch demo``: started on the demo's Redis with two demo accounts."""

from __future__ import annotations

import secrets
from collections import Counter
from typing import Any

import redis

from citywatch.console.auth import User, UserStore
from citywatch.console.server import ConsoleThread, free_port, settings_for
from citywatch.flows.config import Config
from citywatch.sinks.client import open_client
from citywatch.sinks.redis_dispatch import Keys


def busiest_department(client: redis.Redis, keys: Keys) -> str:
    """The department with the most work orders (the demo officer's, so they see some)."""
    counts: Counter[str] = Counter()
    for key in client.scan_iter(match=keys.wo("")[:-1] + "*}", count=1000):
        dept: Any = client.hget(key, "department")
        if dept:
            counts[dept.decode()] += 1
    return counts.most_common(1)[0][0] if counts else "command_centre"


def offer_console(cfg: Config, redis_url: str) -> ConsoleThread:
    """Start the console in a thread, create a demo officer and leader, print how to sign in."""
    client = open_client(cfg.redis.options(redis_url), check=False)
    store = UserStore(client, cfg.redis.prefix)
    dept = busiest_department(client, Keys(cfg.redis.prefix))
    accounts = [
        User(name="officer", role="officer", department=dept, display="Demo officer"),
        User(name="leader", role="leader", display="Demo leader"),
    ]
    lines = []
    for user in accounts:
        password = secrets.token_urlsafe(9)
        store.add(user, password, replace=True)
        scope = "sees everything" if user.is_leader else f"department {dept}, any centre"
        lines.append(f"  {user.name:<8} password {password}  ({scope})")
    settings = settings_for(cfg)
    try:
        console = ConsoleThread(cfg, redis_url, settings).start()
    except RuntimeError:  # the configured port is taken: any free one will do for a demo
        console = ConsoleThread(
            cfg, redis_url, settings_for(cfg, port=free_port(settings.host))
        ).start()
    print(f"\nduty officers' console: {console.url}  (sign in with)")
    print("\n".join(lines))
    return console
