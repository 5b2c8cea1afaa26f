"""``citywatch officer``: a duty officer's queue: list, sign, resolve, return, close, live."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from citywatch.flows.commands.dispatch_common import add_redis, open_orders
from citywatch.flows.printable import echo
from citywatch.sinks.dispatch import GROUP
from citywatch.sinks.lifecycle import UNSIGNED, WorkOrderError, WorkOrders


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "officer",
        help="a duty officer's queue: list, sign, resolve, return, live",
        description=(
            "Works one receiving queue (centre x department). Without an action it lists "
            "the open work orders of the queue. Actions take a work order id. --live follows "
            "the queue through its consumer group and prints each new order; with --sign it "
            "signs each one as it arrives (signing acknowledges the entry)."
        ),
    )
    add_redis(p)
    p.add_argument("--centre", required=True, help="centre id, e.g. town:haimen-changle")
    p.add_argument("--dept", required=True, help="department, e.g. water_resources")
    p.add_argument("--name", default="officer", help="who acts (recorded in the audit trail)")
    act = p.add_mutually_exclusive_group()
    act.add_argument("--sign", nargs="?", const="", metavar="WO", help="sign off WO")
    act.add_argument("--start", metavar="WO", help="start handling WO")
    act.add_argument("--resolve", metavar="WO", help="resolve WO (needs --feedback)")
    act.add_argument("--return", dest="return_", metavar="WO", help="return WO (needs --reason)")
    act.add_argument("--close", metavar="WO", help="verify and close WO (centre)")
    act.add_argument("--show", metavar="WO", help="print WO, its alerts and its audit trail")
    p.add_argument("--feedback", default="", help="what was found and done (--resolve)")
    p.add_argument("--reason", default="", help="why it is returned (--return)")
    p.add_argument("--to-dept", default=None, help="re-route a returned order to this department")
    p.add_argument("--live", action="store_true", help="follow the queue (Ctrl-C to stop)")
    p.set_defaults(func=run)


def _line(wo: dict[str, str]) -> str:
    return (
        f"{wo['id']}  {wo['state']:<10} {wo['severity']:<6} {wo['kind']:<18} "
        f"{wo['subject']:<20} zone={wo.get('zone') or '-':<24} alerts={wo.get('alert_count', '1')}"
        + ("  OVERDUE" if wo.get("overdue") == "1" else "")
    )


def run(args: argparse.Namespace) -> int:
    _, client, orders = open_orders(args)
    queue = f"{args.centre}|{args.dept}"
    try:
        if args.live:
            return _live(orders, queue, args.name, sign=args.sign is not None)
        if args.sign:
            echo(_line(orders.sign(args.sign, args.name)))
        elif args.start:
            echo(_line(orders.start(args.start, args.name)))
        elif args.resolve:
            echo(_line(orders.resolve(args.resolve, args.name, args.feedback)))
        elif args.return_:
            echo(
                _line(
                    orders.return_(args.return_, args.name, args.reason, to_department=args.to_dept)
                )
            )
        elif args.close:
            echo(_line(orders.close(args.close, args.name)))
        elif args.show:
            _show(orders, args.show)
        else:
            items = orders.queue(queue)
            echo(f"{queue}: {len(items)} open work order(s)")
            for wo in items:
                echo("  " + _line(wo))
    except WorkOrderError as exc:
        echo(f"citywatch officer: {exc}", file=sys.stderr)
        return 2
    return 0


def _show(orders: WorkOrders, wo_id: str) -> None:
    wo = orders.get(wo_id)
    for k in sorted(wo):
        echo(f"{k:>22}: {wo[k]}")
    echo("alerts:")
    for a in orders.alerts(wo_id):
        echo(f"  {a['ts']} {a['kind']} {a['severity']} {a['subject']} zone={a['zone']}")
    echo("audit:")
    for e in orders.audit(wo_id):
        extra = {k: v for k, v in e.items() if k not in ("id", "action", "state", "by", "at")}
        echo(f"  {e['at']} {e['action']:<16} -> {e['state']:<10} by {e['by']}  {extra or ''}")


def _live(orders: WorkOrders, queue: str, name: str, *, sign: bool) -> int:
    """Read new entries through the consumer group; entries no longer actionable are acked."""
    client, key = orders.client, orders.keys.queue(queue)
    orders.ensure_group(queue)
    echo(f"following {queue} as {name} (consumer group {GROUP}); Ctrl-C to stop", flush=True)
    pending_first = True
    while True:
        start = "0" if pending_first else ">"
        got: Any = client.xreadgroup(GROUP, name, {key: start}, count=50, block=1000)
        entries = got[0][1] if got else []
        if pending_first and not entries:
            pending_first = False  # our own unacknowledged entries are done
            continue
        for entry_id, fields in entries:
            wo_id = fields["wo"]
            try:
                wo = orders.get(wo_id)
            except WorkOrderError:
                client.xack(key, GROUP, entry_id)
                continue
            if wo["queue"] != queue or wo["state"] not in UNSIGNED:
                client.xack(key, GROUP, entry_id)  # moved or already taken
                continue
            echo("NEW  " + _line(wo), flush=True)
            if sign:
                try:
                    echo("SIGNED " + _line(orders.sign(wo_id, name)), flush=True)
                except WorkOrderError as exc:
                    echo(f"  {exc}", flush=True)
                    client.xack(key, GROUP, entry_id)
