"""Helpers of the dispatch subcommands (officer, escalate, report, silence): Redis from config."""

from __future__ import annotations

import argparse

import redis

from citywatch.flows.commands.common import add_config
from citywatch.flows.config import Config, ConfigError, load_config
from citywatch.sinks.dispatch import Keys, connect
from citywatch.sinks.lifecycle import WorkOrders


def add_redis(p: argparse.ArgumentParser) -> None:
    add_config(p)
    p.add_argument(
        "--redis-url",
        default=None,
        help="Redis URL, e.g. redis://USER:PASSWORD@host:6379/0 or rediss:// for TLS "
        "(default: CITYWATCH_REDIS_URL or [redis] url)",
    )


def open_orders(args: argparse.Namespace) -> tuple[Config, redis.Redis, WorkOrders]:
    cfg = load_config(args.config)
    url = args.redis_url or cfg.redis.url
    if not url:
        msg = (
            "no Redis URL: pass --redis-url or set CITYWATCH_REDIS_URL to the server the "
            "flow dispatches to (run the flow with citywatch demo --keep to get one)"
        )
        raise ConfigError(msg)
    s = cfg.redis
    client = connect(
        url,
        socket_timeout_s=s.socket_timeout_s,
        connect_timeout_s=s.connect_timeout_s,
        tls_ca_file=s.tls_ca_file,
        decode_responses=True,
    )
    return cfg, client, WorkOrders(client, Keys(s.prefix))
