"""``citywatch webhooks``: subscriptions of department systems, and the delivery service."""

from __future__ import annotations

import argparse
import time
from typing import Any

import orjson

from citywatch.flows.commands.dispatch_common import add_redis, open_orders
from citywatch.flows.commands.outputs import add_serve_args
from citywatch.flows.config import Config, ConfigError
from citywatch.flows.printable import echo
from citywatch.sinks.integrations.delivery import Sender
from citywatch.sinks.integrations.events import EVENT_TYPES, iso_ms
from citywatch.sinks.integrations.service import dead_letters, subscription_status
from citywatch.sinks.integrations.settings import WebhookSpec, new_secret
from citywatch.sinks.integrations.webhooks import HookKeys, SubscriptionStore

DESCRIPTION = """\
Outbound webhooks: every work-order change (events workorder.created, .updated,
.signed, .escalated, .closed, .returned) is POSTed as JSON, signed per Standard
Webhooks, to each subscription whose filters it passes. Subscriptions come from
[[webhooks]] tables of the configuration (read-only here) and from `webhooks add`
(kept in Redis). `webhooks serve` runs the delivery: at least once, retried with
backoff for [outputs.webhooks] retry_for_s, then dead-lettered.
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "webhooks",
        help="outbound webhooks: add, list, remove, test subscriptions; serve deliveries",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    acts = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    a = acts.add_parser("add", help="add a subscription (kept in Redis); prints its secret")
    add_redis(a)
    a.add_argument("id", help="subscription id, e.g. water-bureau")
    a.add_argument("url", help="the receiver's http(s) URL")
    a.add_argument("--secret", help="whsec_... (default: a fresh random one, printed once)")
    a.add_argument(
        "--event",
        dest="events",
        action="append",
        choices=EVENT_TYPES,
        default=[],
        help="only these events (repeat; default: all)",
    )
    a.add_argument("--department", dest="departments", action="append", default=[])
    a.add_argument("--centre", dest="centres", action="append", default=[])
    a.add_argument(
        "--severity",
        dest="severities",
        action="append",
        choices=("blue", "yellow", "orange", "red"),
        default=[],
    )
    a.add_argument("--replace", action="store_true", help="overwrite an existing one")
    a.set_defaults(func=run_add)

    ls = acts.add_parser("list", help="subscriptions with their delivery status")
    add_redis(ls)
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(func=run_list)

    rm = acts.add_parser("remove", help="remove a subscription added with `webhooks add`")
    add_redis(rm)
    rm.add_argument("id")
    rm.set_defaults(func=run_remove)

    t = acts.add_parser("test", help="send a signed webhook.test event now and show the answer")
    add_redis(t)
    t.add_argument("id")
    t.set_defaults(func=run_test)

    d = acts.add_parser("dead", help="show a subscription's dead letters (newest first)")
    add_redis(d)
    d.add_argument("id")
    d.add_argument("--count", type=int, default=20)
    d.set_defaults(func=run_dead)

    s = acts.add_parser("serve", help="run the relay and the delivery workers until stopped")
    add_serve_args(s)
    s.set_defaults(func=run_serve)


def _open(args: argparse.Namespace) -> tuple[Config, Any, HookKeys, SubscriptionStore]:
    cfg, client, _ = open_orders(args)
    keys = HookKeys(cfg.redis.prefix)
    return cfg, client, keys, SubscriptionStore(client, keys, cfg.integrations.webhooks)


def _spec(store: SubscriptionStore, sub_id: str) -> WebhookSpec:
    spec = store.get(sub_id)
    if spec is None:
        known = ", ".join(s.id for s in store.all()) or "none"
        msg = f"no webhook subscription {sub_id!r} (known: {known})"
        raise ConfigError(msg)
    return spec


def run_add(args: argparse.Namespace) -> int:
    _, _, _, store = _open(args)
    secret = args.secret or new_secret()
    spec = WebhookSpec(
        id=args.id,
        url=args.url,
        secret=secret,
        events=tuple(args.events),
        departments=tuple(args.departments),
        centres=tuple(args.centres),
        severities=tuple(args.severities),
        source="redis",
    )
    store.add(spec, replace=args.replace)
    echo(f"webhook {spec.id} -> {spec.public()['url']} added")
    if not args.secret:
        echo(f"secret (shown once; give it to the receiver): {secret}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    cfg, client, keys, store = _open(args)
    rows = [subscription_status(client, keys, s, cfg.integrations.delivery) for s in store.all()]
    if args.json:
        print(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return 0
    if not rows:
        echo("no webhook subscriptions (add one with `citywatch webhooks add ID URL`)")
    for r in rows:
        filters = [
            f"{k}={','.join(r[k])}"
            for k in ("events", "departments", "centres", "severities")
            if r[k]
        ]
        health = "FAILING" if r["failing"] else ("retrying" if r["failing_since_ms"] else "ok")
        echo(f"{r['id']}  {r['url']}  [{r['source']}]  {' '.join(filters) or 'all events'}")
        echo(
            f"    {health}  delivered {r['delivered']}  backlog {r['backlog']}  "
            f"failures {r['failures']}  retries {r['retries']}  dead {r['dead_letters']}"
        )
        if r["last_error"]:
            echo(f"    last error: {r['last_error']}")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    _, _, _, store = _open(args)
    gone = store.remove(args.id)
    echo(f"webhook {args.id}: {'removed' if gone else 'not found'}")
    return 0 if gone else 1


def run_test(args: argparse.Namespace) -> int:
    cfg, _, _, store = _open(args)
    spec = _spec(store, args.id)
    now_ms = int(time.time() * 1000)
    body = orjson.dumps(
        {"type": "webhook.test", "timestamp": iso_ms(now_ms), "data": {"subscription": spec.id}}
    )
    sender = Sender(spec, cfg.integrations.delivery)
    try:
        res = sender.post(f"msg_test_{now_ms}", body, {"citywatch-event": "webhook.test"})
    finally:
        sender.close()
    if res.ok:
        echo(f"webhook {spec.id}: HTTP {res.status} in {res.seconds * 1000:.0f} ms")
        return 0
    echo(f"webhook {spec.id}: failed: {res.error}")
    return 1


def run_dead(args: argparse.Namespace) -> int:
    _, client, keys, store = _open(args)
    spec = _spec(store, args.id)
    for d in dead_letters(client, keys, spec.id, args.count):
        echo(f"{d['entry']}  {d['type']}  {d['wo']} #{d['seq']}  {d['attempts']} attempts: "
              f"{d['error']}")  # fmt: skip
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from citywatch.flows.commands.outputs import serve

    return serve(args, webhooks=True, kafka=False)
