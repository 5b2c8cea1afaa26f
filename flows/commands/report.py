"""``citywatch report``: accountability per department and per centre."""

from __future__ import annotations

import argparse
from typing import Any

import orjson

from citywatch.flows.commands.dispatch_common import add_redis, open_orders
from citywatch.flows.config import ConfigError
from citywatch.flows.human_time import HELP_FORMS, parse_human_time
from citywatch.flows.printable import echo

COLUMNS = (
    "orders",
    "signed",
    "resolved",
    "closed",
    "sign_p50_s",
    "sign_p90_s",
    "handle_p50_s",
    "handle_p90_s",
    "overdue",
    "returns",
    "escalations",
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "report",
        help="accountability: sign-off and handling times, overdue, returns",
        description=(
            "Per department and per centre: work orders, signed, resolved, closed, sign-off "
            "and handling time percentiles (seconds, p50/p90), overdue (unsigned past the "
            "deadline or flagged by the escalator), returns and escalations. --since and "
            f"--until keep the work orders created in that range; they take {HELP_FORMS} "
            "(a bare length counts back from now), in [flow] timezone."
        ),
    )
    add_redis(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--since", default=None, help="orders created from, e.g. 1d, today, RFC 3339")
    p.add_argument("--until", default=None, help="orders created before, e.g. 'today 08:00'")
    p.set_defaults(func=run)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.0f}" if isinstance(v, float) else str(v)


def run(args: argparse.Namespace) -> int:
    from citywatch.sinks.escalation import accountability, all_orders

    cfg, _, orders = open_orders(args)
    try:
        since = (
            parse_human_time(args.since, tz=cfg.flow.timezone, past=True) if args.since else None
        )
        until = (
            parse_human_time(args.until, tz=cfg.flow.timezone, past=True) if args.until else None
        )
    except ValueError as exc:
        msg = f"report: {exc}"
        raise ConfigError(msg) from None
    chosen = [
        wo
        for wo in all_orders(orders)
        if (since is None or int(wo.get("created_ms") or 0) >= since)
        and (until is None or int(wo.get("created_ms") or 0) < until)
    ]
    rep = accountability(chosen)
    if args.json:
        print(orjson.dumps(rep, option=orjson.OPT_INDENT_2).decode())
        return 0
    for dim in ("department", "centre"):
        rows = rep[dim]
        width = max([len(dim)] + [len(k) for k in rows])
        echo(f"{dim:<{width}}  " + "  ".join(f"{c:>12}" for c in COLUMNS))
        for name, row in rows.items():
            echo(f"{name:<{width}}  " + "  ".join(f"{_fmt(row[c]):>12}" for c in COLUMNS))
        echo()
    return 0
