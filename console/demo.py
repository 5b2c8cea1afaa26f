"""The console for ``citywatch demo``: started on the demo's Redis with two demo accounts."""

from __future__ import annotations

import dataclasses
import secrets
from collections import Counter
from typing import Any

import redis

from citywatch.console.auth import User, UserStore
from citywatch.console.core import Site, redis_clients
from citywatch.console.server import ConsoleThread, free_port
from citywatch.console.settings import ConsoleSettings
from citywatch.sinks.client import RedisOptions
from citywatch.sinks.dispatch import Keys


def busiest_department(client: redis.Redis, keys: Keys) -> str:
    """The department with the most work orders (the demo officer's, so they see some)."""
    counts: Counter[str] = Counter()
    for key in client.scan_iter(match=keys.wo("")[:-1] + "*}", count=1000):
        dept: Any = client.hget(key, "department")
        if dept:
            counts[dept.decode()] += 1
    return counts.most_common(1)[0][0] if counts else "command_centre"


def offer_console(
    site: Site, redis_url: RedisOptions | str, settings: ConsoleSettings
) -> ConsoleThread:
    """Start the console in a thread, create a demo officer and leader, print how to sign in."""
    client = redis_clients(redis_url)[0]
    store = UserStore(client, site.prefix)
    dept = busiest_department(client, Keys(site.prefix))
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
    client.close()
    try:
        console = ConsoleThread(site, redis_url, settings).start()
    except RuntimeError:  # the configured port is taken: any free one will do for a demo
        any_port = dataclasses.replace(settings, port=free_port(settings.host))
        console = ConsoleThread(site, redis_url, any_port).start()
    print(f"\nduty officers' console: {console.url}  (sign in with)")
    print("\n".join(lines))
    return console
