"""``citywatch escalate``: escalate unsigned work orders past their deadline; flag overdue ones."""

from __future__ import annotations

import argparse
import time

from citywatch.flows.commands.dispatch_common import add_redis, open_orders
from citywatch.flows.printable import echo


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "escalate",
        help="escalate unsigned work orders to the parent centre, flag overdue ones",
        description=(
            "One pass (or, with --watch, a pass every --every seconds): every work order "
            "still unsigned after its sign-off deadline moves to its centre's parent "
            "(town -> county -> city) with a new deadline; every order past its resolution "
            "deadline is flagged overdue. Safe to run several at once."
        ),
    )
    add_redis(p)
    p.add_argument("--watch", action="store_true", help="keep running")
    p.add_argument("--every", type=float, default=10.0, help="seconds between passes (--watch)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from citywatch.flows.runner import load_reference
    from citywatch.sinks.escalation import escalate_due

    cfg, client, orders = open_orders(args)
    juris = load_reference(cfg).jurisdictions

    def parent_of(centre: str) -> tuple[str, str] | None:
        item = juris.items.get(centre)
        if item is None or item.parent is None or item.parent not in juris.items:
            return None
        return item.parent, juris.items[item.parent].level

    while True:
        res = escalate_due(orders, parent_of)
        stamp = time.strftime("%H:%M:%S")
        echo(
            f"{stamp} escalated {len(res.escalated)}, overdue flagged {len(res.overdue)}, "
            f"unsigned at the top level {len(res.at_top)}",
            flush=True,
        )
        for wo_id in res.escalated:
            wo = orders.get(wo_id)
            echo(f"  {wo_id} -> {wo['queue']} (sign off by {wo['sign_due_ms']})", flush=True)
        if not args.watch:
            return 0
        time.sleep(args.every)
