"""``citywatch silence``: maintenance windows that keep a sensor, camera or zone from dispatch."""

from __future__ import annotations

import argparse
import time

from citywatch.detectors.events import format_ts
from citywatch.flows.commands.dispatch_common import add_redis, open_orders
from citywatch.flows.config import ConfigError
from citywatch.flows.human_time import HELP_FORMS, parse_duration, parse_human_time
from citywatch.flows.printable import echo
from citywatch.sinks.silences import SilenceStore, make_silence


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "silence",
        help="add, list or remove silences (maintenance windows)",
        description=(
            "A silence keeps the alerts of one sensor, camera, subject or zone whose event "
            "time falls in a window from creating or growing work orders; they are logged "
            "to the silenced stream instead. The dispatch sink sees changes within "
            "[redis] silence_cache_s seconds. Times (--from, --until) take "
            f"{HELP_FORMS}, in [flow] timezone; a length (--for) takes 90s, 30m, 2h or 1d."
        ),
    )
    add_redis(p)
    p.add_argument("action", choices=["add", "list", "rm"])
    p.add_argument("silence_id", nargs="?", help="the silence to remove (rm)")
    target = p.add_mutually_exclusive_group()
    for name in ("sensor", "camera", "subject", "zone"):
        target.add_argument(f"--{name}", metavar="ID")
    p.add_argument(
        "--from", dest="start", default=None, help="start, e.g. 'today 22:00' (default now)"
    )
    p.add_argument("--for", dest="length", default=None, help="length, e.g. 2h, 30m or 1d")
    p.add_argument("--until", default=None, help="end, e.g. 'tomorrow 08:00', 2h or RFC 3339")
    p.add_argument("--by", default="officer", help="who sets it")
    p.add_argument("--reason", default="", help="why (kept with the silence)")
    p.add_argument("--all", action="store_true", help="list expired silences too")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg, client, _ = open_orders(args)
    from citywatch.sinks.dispatch import Keys

    store = SilenceStore(client, Keys(cfg.redis.prefix))
    if args.action == "list":
        for s in store.all(expired=args.all):
            echo(
                f"{s.id}  {s.target}={s.value}  {format_ts(s.start_ms)} .. "
                f"{format_ts(s.end_ms)}  by {s.by}  {s.reason}"
            )
        return 0
    if args.action == "rm":
        if not args.silence_id:
            msg = "silence rm: give the silence id (see citywatch silence list)"
            raise ConfigError(msg)
        gone = store.remove(args.silence_id)
        echo(f"{args.silence_id}: {'removed' if gone else 'not found'}")
        return 0 if gone else 1
    target = next(
        (
            (n, getattr(args, n))
            for n in ("sensor", "camera", "subject", "zone")
            if getattr(args, n)
        ),
        None,
    )
    if target is None:
        msg = "silence add: name what to silence with --sensor, --camera, --subject or --zone"
        raise ConfigError(msg)
    tz = cfg.flow.timezone
    try:
        now = int(time.time() * 1000)
        start = parse_human_time(args.start, now_ms=now, tz=tz) if args.start else now
        if args.until:
            end = parse_human_time(args.until, now_ms=now, tz=tz)
        elif args.length:
            end = start + parse_duration(args.length) * 1000
        else:
            msg = "silence add: give its end with --for 2h or --until 'tomorrow 08:00'"
            raise ConfigError(msg)
    except ValueError as exc:
        msg = f"silence add: {exc}"
        raise ConfigError(msg) from None
    s = store.add(make_silence(target[0], target[1], start, end, args.by, args.reason))
    echo(f"{s.id}  {s.target}={s.value}  {format_ts(s.start_ms)} .. {format_ts(s.end_ms)}")
    return 0
