"""``citywatch route``: dry run of routing — where would this alert's work order go, and why."""

from __future__ import annotations

import argparse
import sys

import orjson

from citywatch.detectors.alerts import Alert
from citywatch.flows.commands.common import add_config
from citywatch.flows.config import ConfigError, load_config
from citywatch.flows.printable import echo


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "route",
        help="show where an alert would be routed (dry run)",
        description=(
            "Reads one alert as JSON (the alert contract: kind, severity, subject, zone, "
            "lon, lat, evidence) from stdin, or builds it from the options, and prints the "
            "centre, department and level its work order would go to, with the rules that "
            "decided. Nothing is written anywhere."
        ),
    )
    add_config(p)
    p.add_argument("--kind", help="alert kind, e.g. sensor.threshold")
    p.add_argument("--severity", default="yellow", choices=["blue", "yellow", "orange", "red"])
    p.add_argument("--lon", type=float)
    p.add_argument("--lat", type=float)
    p.add_argument("--zone", default=None, help="zone id (its kind selects the department)")
    p.add_argument("--subject", default="dry-run")
    p.add_argument("--sensor-kind", default=None, help="sensor kind, e.g. water_level")
    p.add_argument("--json", action="store_true", help="print the decision as JSON")
    p.set_defaults(func=run)


def _alert(args: argparse.Namespace) -> Alert:
    if args.kind is None:
        text = sys.stdin.read()
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            msg = f"stdin: not a JSON alert ({exc}); or pass --kind --lon --lat"
            raise ConfigError(msg) from None
        return Alert.make(
            str(doc.get("kind", "")),
            str(doc.get("severity", "yellow")),
            str(doc.get("subject", "dry-run")),
            str(doc.get("subject_type", "")),
            doc.get("zone"),
            doc.get("lon"),
            doc.get("lat"),
            ts_ms=0,
            first_ts_ms=0,
            evidence=dict(doc.get("evidence") or {}),
        )
    if args.lon is None or args.lat is None:
        msg = "route: --lon and --lat are required with --kind (WGS84 degrees)"
        raise ConfigError(msg)
    evidence = {"sensor_kind": args.sensor_kind} if args.sensor_kind else {}
    return Alert.make(
        args.kind,
        args.severity,
        args.subject,
        "",
        args.zone,
        args.lon,
        args.lat,
        ts_ms=0,
        first_ts_ms=0,
        evidence=evidence,
    )


def run(args: argparse.Namespace) -> int:
    from citywatch.flows.routing import decide, locate_towns
    from citywatch.flows.runner import load_reference

    cfg = load_config(args.config)
    ref = load_reference(cfg)
    alert = _alert(args)
    if alert.kind.count(".") != 1:
        msg = f"alert kind must be family.name like sensor.threshold, got {alert.kind!r}"
        raise ConfigError(msg)
    town = locate_towns([alert], ref.jurisdictions)[0]
    route, why = decide(alert, town, ref.jurisdictions, cfg.routing, ref.zone_catalog())
    sla = (
        cfg.routing.sign_sla_s.get(alert.severity),
        cfg.routing.resolve_sla_s.get(alert.severity),
    )
    if args.json:
        doc = {
            "centre": route.centre,
            "department": route.department,
            "level": route.level,
            "jurisdiction": route.jurisdiction,
            "queue": route.queue,
            "sign_sla_s": sla[0],
            "resolve_sla_s": sla[1],
            "reasons": why,
        }
        print(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
        return 0
    echo(f"queue:      {route.queue}")
    echo(f"centre:     {route.centre} ({route.level})")
    echo(f"department: {route.department}")
    echo(f"SLA:        sign off within {sla[0]} s, resolve within {sla[1]} s")
    echo("because:")
    for line in why:
        echo(f"  - {line}")
    return 0
