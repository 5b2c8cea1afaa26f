"""``citywatch api``: tokens of department systems, and the token API on its own."""

from __future__ import annotations

import argparse
import time

from citywatch.flows.commands.common import stop_on_interrupt
from citywatch.flows.commands.dispatch_common import add_redis, open_orders
from citywatch.flows.config import ConfigError
from citywatch.flows.printable import echo

DESCRIPTION = """\
The token API lets a department's own system read and act on the work orders of
its centre and department over JSON (see /api/openapi.json). `citywatch console`
serves it too; `api serve` runs it alone. A token is shown once at `tokens add`;
Redis keeps only its SHA-256.
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "api",
        help="token API for department systems: manage tokens, serve the API",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    acts = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    tokens = acts.add_parser("tokens", help="add, list or revoke API tokens")
    tacts = tokens.add_subparsers(dest="op", required=True, metavar="ACTION")

    a = tacts.add_parser("add", help="create a token (printed once)")
    add_redis(a)
    a.add_argument("id", help="token id, e.g. water-bureau-system (named in the audit trail)")
    a.add_argument("--department", default="*", help="the department it acts for")
    a.add_argument("--centre", default="*", help="its centre (default: every centre)")
    a.add_argument("--days", type=int, default=None, help="lifetime (default: [api] token_days)")
    a.add_argument("--rate", type=int, default=0, help="requests per minute ([api] default)")
    a.add_argument("--note", default="", help="what it is for")
    a.set_defaults(func=run_tokens)

    ls = tacts.add_parser("list", help="tokens with their scope and expiry")
    add_redis(ls)
    ls.set_defaults(func=run_tokens)

    rv = tacts.add_parser("revoke", help="revoke a token (at once)")
    add_redis(rv)
    rv.add_argument("id")
    rv.set_defaults(func=run_tokens)

    s = acts.add_parser("serve", help="serve the token API alone (uvicorn)")
    add_redis(s)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8766)
    s.set_defaults(func=run_serve)


def run_tokens(args: argparse.Namespace) -> int:
    from citywatch.console.api.tokens import ApiToken, TokenStore

    cfg, client, _ = open_orders(args)
    store = TokenStore(client, cfg.redis.prefix)
    now_ms = int(time.time() * 1000)
    if args.op == "add":
        days = cfg.integrations.api.token_days if args.days is None else args.days
        if days <= 0:
            msg = f"--days must be > 0, got {days}"
            raise ConfigError(msg)
        token = ApiToken(
            id=args.id,
            centre=args.centre,
            department=args.department,
            expires_ms=now_ms + days * 86_400_000,
            created_ms=now_ms,
            rate_per_min=args.rate,
            note=args.note,
        )
        bearer = store.add(token)
        echo(f"token {token.id}: {token.centre} / {token.department}, {days} days")
        echo(f"bearer (shown once): {bearer}")
        return 0
    if args.op == "revoke":
        gone = store.revoke(args.id)
        echo(f"token {args.id}: {'revoked' if gone else 'not found'}")
        return 0 if gone else 1
    tokens = store.list()
    if not tokens:
        echo("no API tokens (add one with `citywatch api tokens add ID --department D`)")
    for t in tokens:
        state = (
            "expired"
            if t.expires_ms <= now_ms
            else f"{(t.expires_ms - now_ms) // 86_400_000}d left"
        )
        rate = f"{t.rate_per_min}/min" if t.rate_per_min else "default rate"
        echo(f"{t.id}  {t.centre} / {t.department}  {state}  {rate}  {t.note}")  # fmt: skip
    return 0


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from citywatch.console.api import create_api_app

    stop_on_interrupt()

    cfg, client, _ = open_orders(args)
    client.close()
    url = str(args.redis_url or cfg.redis.url)  # open_orders refused a missing one
    echo(f"token API on http://{args.host}:{args.port}/api/openapi.json; Ctrl-C stops")
    from citywatch.flows.console_site import api_site_for

    app = create_api_app(api_site_for(cfg), cfg.redis.options(url))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
