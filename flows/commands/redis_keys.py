"""``citywatch redis migrate-keys``: rename an earlier version's keys to the hash-tagged layout."""

from __future__ import annotations

import argparse

from citywatch.flows.commands.dispatch_common import add_redis
from citywatch.flows.config import load_config
from citywatch.flows.printable import echo


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("redis", help="maintenance of citywatch's keys in Redis")
    actions = p.add_subparsers(dest="redis_command", required=True, metavar="ACTION")
    m = actions.add_parser(
        "migrate-keys",
        help="rename keys written by versions before the {prefix} hash tag",
        description=(
            "Every key now starts with the prefix in braces ({cw}:wo:{WO} instead of "
            "cw:wo:{WO}), so that all of a deployment's keys share one Redis Cluster hash "
            "slot. This renames every key matching 'PREFIX:*' to '{PREFIX}:...' (values, "
            "TTLs and consumer groups kept); a key whose new name exists is left alone and "
            "listed. Stop citywatch first (flow, console, officers, escalator, webhooks); "
            "running it again moves nothing."
        ),
    )
    add_redis(m)
    m.add_argument("--dry-run", action="store_true", help="list what would move; change nothing")
    m.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from citywatch.sinks.client import open_client
    from citywatch.sinks.migrate import migrate_keys

    cfg = load_config(args.config)
    client = open_client(cfg.redis.options(args.redis_url))
    prefix = cfg.redis.prefix
    res = migrate_keys(client, prefix, dry_run=args.dry_run)
    verb = "would move" if args.dry_run else "moved"
    echo(f"{verb} {len(res.moved)} keys from {prefix}:* to {{{prefix}}}:*")
    for key in res.conflicts:
        echo(f"  left alone (its new name exists already): {key}")
    return 1 if res.conflicts else 0
