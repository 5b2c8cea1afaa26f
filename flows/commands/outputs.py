"""``citywatch outputs``: every configured output of the work orders, in one process.

Webhook delivery (the relay and a worker per subscription) and, with
``[outputs.kafka] enabled = true``, the Kafka output of alerts and work-order
changes. ``citywatch webhooks serve`` runs the webhook part alone.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import types
from typing import Any

import redis

from citywatch.flows.commands.dispatch_common import add_redis, open_orders
from citywatch.flows.config import Config, ConfigError
from citywatch.flows.logs import resolve_format, setup_logging
from citywatch.sinks.dispatch import Keys
from citywatch.sinks.integrations.delivery import WebhookMetrics
from citywatch.sinks.integrations.kafka_out import KafkaOutput, KafkaOutputError
from citywatch.sinks.integrations.service import WebhookService
from citywatch.sinks.integrations.webhooks import HookKeys, SubscriptionStore

log = logging.getLogger("citywatch.outputs")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "outputs",
        help="run the configured outputs: webhook delivery and [outputs.kafka]",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_serve_args(p)
    p.add_argument("--no-webhooks", action="store_true", help="run the Kafka output only")
    p.set_defaults(func=lambda a: serve(a, webhooks=not a.no_webhooks, kafka=True))


def add_serve_args(p: argparse.ArgumentParser) -> None:
    add_redis(p)
    p.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve Prometheus metrics here (default: [outputs.webhooks] metrics_port; 0: off)",
    )


def _kafka_loop(out: KafkaOutput, stop: threading.Event) -> None:
    backoff = 0.5
    while not stop.is_set():
        try:
            out.step(block_ms=500)
            backoff = 0.5
        except (KafkaOutputError, redis.ConnectionError, redis.TimeoutError) as exc:
            log.warning("kafka output: %s; retrying in %.1f s", exc, backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, 30.0)
    out.close()


def _kafka(cfg: Config, client: Any) -> KafkaOutput | None:
    s = cfg.integrations.kafka
    if not s.enabled:
        return None
    bootstrap = s.bootstrap or cfg.kafka_bootstrap
    if not bootstrap:
        msg = (
            "[outputs.kafka] is enabled but no bootstrap address is known: set "
            "[outputs.kafka] bootstrap, [kafka] bootstrap or CITYWATCH_KAFKA_BOOTSTRAP"
        )
        raise ConfigError(msg)
    out = KafkaOutput(client, Keys(cfg.redis.prefix), s, bootstrap)
    out.setup()
    return out


def serve(args: argparse.Namespace, *, webhooks: bool, kafka: bool) -> int:
    """Run the chosen outputs until Ctrl-C or SIGTERM."""
    cfg, client, _ = open_orders(args)
    setup_logging(resolve_format(None), logging.INFO)  # a service: say what it does
    stop = threading.Event()
    threads: list[threading.Thread] = []
    service: WebhookService | None = None
    names: list[str] = []
    out = _kafka(cfg, client) if kafka else None  # first: a config error starts nothing
    if webhooks:
        settings = cfg.integrations.delivery
        metrics = WebhookMetrics()
        port = settings.metrics_port if args.metrics_port is None else args.metrics_port
        if port:
            from prometheus_client import start_http_server

            start_http_server(port, registry=metrics.registry)
        keys = HookKeys(cfg.redis.prefix)
        store = SubscriptionStore(client, keys, cfg.integrations.webhooks)
        service = WebhookService(client, keys, store, settings, metrics=metrics).start()
        names.append(f"webhooks ({', '.join(s.id for s in store.all()) or 'no subscription yet'})")
    if out is not None:
        threads.append(threading.Thread(target=_kafka_loop, args=(out, stop), daemon=True))
        names.append(f"kafka ({out.settings.alerts_topic}, {out.settings.workorders_topic})")
    if not names:
        print("nothing to run: [outputs.kafka] is not enabled (and --no-webhooks was given)")
        return 1
    for t in threads:
        t.start()

    def on_term(signum: int, frame: types.FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    print(f"running outputs: {'; '.join(names)}; Ctrl-C stops", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        stop.set()
    if service is not None:
        service.stop()
    for t in threads:
        t.join(10)
    return 0
