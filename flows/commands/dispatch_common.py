"""Helpers of the dispatch subcommands (officer, escalate, report, silence): Redis from config."""

from __future__ import annotations

import argparse

import redis

from citywatch.flows.commands.common import add_config
from citywatch.flows.config import Config, load_config
from citywatch.sinks.client import open_client
from citywatch.sinks.keys import Keys
from citywatch.sinks.lifecycle import WorkOrders


def add_redis(p: argparse.ArgumentParser) -> None:
    add_config(p)
    p.add_argument(
        "--redis-url",
        default=None,
        help="Redis URL, e.g. redis://USER:PASSWORD@host:6379/0, rediss:// for TLS, "
        "redis+cluster://host:7000 for a Redis Cluster (redis+cluster://h1:7000,h2:7000: "
        "several seed nodes) "
        "(default: CITYWATCH_REDIS_URL or [redis] url)",
    )


def open_orders(args: argparse.Namespace) -> tuple[Config, redis.Redis, WorkOrders]:
    cfg = load_config(args.config)
    client = open_client(cfg.redis.options(args.redis_url), decode_responses=True)
    return (
        cfg,
        client,
        WorkOrders(
            client,
            Keys(cfg.redis.prefix),
            feed_maxlen=cfg.redis.feed_maxlen,
            wait_replicas=cfg.redis.wait_replicas,
        ),
    )
