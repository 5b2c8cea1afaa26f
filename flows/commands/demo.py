"""``citywatch demo``: the main job on embedded defaults."""

from __future__ import annotations

import argparse
from pathlib import Path

from citywatch.flows.commands.common import add_config, speed


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser(
        "demo",
        help="generate city traffic, run the whole flow into an embedded Redis, show alerts",
        description=(
            "The main job on embedded defaults: generates a recording of synthetic "
            "Nantong traffic with injected incidents (or uses --recording), replays it "
            "through the flow into Redis, prints each work order as it is dispatched, "
            "and ends with a summary and how to inspect the result in Redis."
        ),
    )
    add_config(demo)
    demo.add_argument(
        "--recording",
        type=Path,
        nargs="*",
        default=None,
        help="replay these recordings instead of generating one",
    )
    demo.add_argument("--minutes", type=int, default=40, help="minutes of traffic to generate")
    demo.add_argument("--seed", type=int, default=7, help="generator seed")
    demo.add_argument(
        "--speed",
        type=speed,
        default=speed("240"),
        help="replay speed: N times real time, or 'max' (default 240)",
    )
    demo.add_argument(
        "--out",
        type=Path,
        default=Path("out/demo"),
        help="folder for the recording, truth, alerts and dead letters",
    )
    demo.add_argument(
        "--keep",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="keep the embedded Redis running until Ctrl-C (default: when run from a terminal)",
    )

    demo.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from citywatch.flows.demo import run_demo

    return run_demo(args)
