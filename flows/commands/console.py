"""``citywatch console``: the duty officers' web console, and its users."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TYPE_CHECKING

from citywatch.flows.commands.common import add_config, stop_on_interrupt
from citywatch.flows.console_site import api_site_for, settings_for, site_for
from citywatch.flows.printable import echo

if TYPE_CHECKING:
    pass


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "console",
        help="serve the duty officers' web console (live map, work orders, overview)",
        description=(
            "Serves the duty officers' console over the work orders in Redis: a live map "
            "of incidents with sign-off and handling, and a leadership overview. Officers "
            "see and act on their own centre and department only; leaders see all. "
            "Manage accounts with 'citywatch console users'."
        ),
    )
    add_config(p)
    p.add_argument(
        "--redis-url",
        default=None,
        help="Redis URL (default: config / env; none: a throw-away embedded server)",
    )
    p.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port to listen on (default 8765)")
    p.set_defaults(func=run_serve)
    users = p.add_subparsers(dest="console_cmd", metavar="users")
    u = users.add_parser("users", help="add, list or remove console users, reset passwords")
    uu = u.add_subparsers(dest="users_cmd", required=True, metavar="{add,passwd,list,remove}")

    add = uu.add_parser(
        "add",
        help="add an officer or a leader",
        description=(
            "Adds a user. An officer needs a centre and/or a department (e.g. --centre "
            "county:qidong --department water_resources; '*' means any); a leader sees "
            "everything. The password is read from the terminal, or from one line of stdin."
        ),
    )
    add.add_argument("name")
    add.add_argument("--role", choices=("officer", "leader"), default="officer")
    add.add_argument("--centre", default="*", help="centre id, e.g. county:qidong ('*': any)")
    add.add_argument("--department", default="*", help="department, e.g. water_resources")
    add.add_argument("--display", default="", help="display name")
    add.add_argument(
        "--replace", action="store_true", help="overwrite an existing user (their sessions end)"
    )
    add.set_defaults(func=run_users_add)
    pw = uu.add_parser(
        "passwd",
        help="reset a user's password (their sessions end)",
        description=(
            "Sets a new password for a user and ends all their sessions. The password is "
            "read from the terminal, or from one line of stdin."
        ),
    )
    pw.add_argument("name")
    pw.set_defaults(func=run_users_passwd)
    ls = uu.add_parser("list", help="list users")
    ls.set_defaults(func=run_users_list)
    rm = uu.add_parser("remove", help="remove a user (their sessions end)")
    rm.add_argument("name")
    rm.set_defaults(func=run_users_remove)


def _url(args: argparse.Namespace) -> str:
    from citywatch.flows.config import load_config

    cfg = load_config(args.config)
    url = args.redis_url or cfg.redis.url
    if not url:
        sys.stderr.write(
            "citywatch console: no Redis to read; set CITYWATCH_REDIS_URL or pass --redis-url "
            "(or run 'citywatch demo --keep', which starts a console on its embedded Redis)\n"
        )
        raise SystemExit(2)
    return url


def _store(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from citywatch.console.auth import UserStore
    from citywatch.flows.config import load_config
    from citywatch.sinks.client import open_client

    cfg = load_config(args.config)
    return UserStore(open_client(cfg.redis.options(_url(args))), cfg.redis.prefix)


def run_serve(args: argparse.Namespace) -> int:
    from citywatch.console.server import serve
    from citywatch.flows.config import load_config
    from citywatch.flows.runner import announce_embedded, redis_for

    stop_on_interrupt()

    cfg = load_config(args.config)
    settings = settings_for(cfg, host=args.host, port=args.port)
    with redis_for(cfg, args.redis_url) as (url, embedded):
        if embedded is not None:
            announce_embedded("console", embedded)
        echo(f"citywatch console: http://{settings.host}:{settings.port} (Ctrl-C to stop)")
        from citywatch.console.api import api_routes

        opts = cfg.redis.options(url)
        api_site = api_site_for(cfg)
        # The token API for department systems is served beside the console.
        serve(site_for(cfg), opts, settings, extra_routes=lambda _con: api_routes(api_site, opts))
    return 0


def _read_password(name: str) -> str | None:
    """A password from the terminal (asked twice), or one line of stdin; None if they differ."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    password = getpass.getpass(f"password for {name}: ")
    if getpass.getpass("again: ") != password:
        sys.stderr.write("passwords differ; nothing changed\n")
        return None
    return password


def run_users_passwd(args: argparse.Namespace) -> int:
    from citywatch.console.auth import AuthError

    password = _read_password(args.name)
    if password is None:
        return 1
    try:
        _store(args).set_password(args.name, password)
    except AuthError as exc:
        sys.stderr.write(f"citywatch console users passwd: {exc}\n")
        return 1
    echo(f"new password for {args.name}; their sessions have ended")
    return 0


def run_users_add(args: argparse.Namespace) -> int:
    from citywatch.console.auth import AuthError, User

    try:
        user = User(
            name=args.name,
            role=args.role,
            centre=args.centre,
            department=args.department,
            display=args.display,
        )
        password = _read_password(args.name)
        if password is None:
            return 1
        _store(args).add(user, password, replace=args.replace)
    except AuthError as exc:
        sys.stderr.write(f"citywatch console users add: {exc}\n")
        return 1
    echo(f"added {user.role} {user.name} ({user.centre} / {user.department})")
    return 0


def run_users_list(args: argparse.Namespace) -> int:
    for u in _store(args).list():
        echo(f"{u.name:<20} {u.role:<8} {u.centre:<28} {u.department:<24} {u.display}")
    return 0


def run_users_remove(args: argparse.Namespace) -> int:
    if not _store(args).remove(args.name):
        sys.stderr.write(f"no user {args.name!r}; 'citywatch console users list' shows them\n")
        return 1
    echo(f"removed {args.name}")
    return 0
