"""Operator-facing telemetry of ``citywatch run``: a Prometheus endpoint and JSON logs.

Metrics (one registry per process; with ``-p N`` each process serves its own
port, ``metrics_port + process id``):

=====================================================  =========  ==================
name                                                   type       labels
=====================================================  =========  ==================
``citywatch_events_in_total``                          counter    ``topic``
``citywatch_dead_letters_total``                       counter    ``reason``
``citywatch_late_events_total``                        counter
``citywatch_alerts_total``                             counter    ``kind``
``citywatch_incidents_total``                          counter    ``kind``
``citywatch_work_orders_total``                        counter    ``outcome``
``citywatch_consumer_lag_messages``                    gauge      ``topic``, ``partition``
``citywatch_ingest_to_dispatch_seconds``               histogram
=====================================================  =========  ==================

``citywatch_incidents_total`` counts incidents opened here, i.e. work orders
created (one per incident), by the kind of their first alert;
``citywatch_work_orders_total`` counts dispatch writes by outcome (``created``,
``merged`` into an open incident, ``rerouted``, ``silenced``, and ``repeat``:
a delivery the Redis sink ignored because it was already applied, e.g. after
a restart).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from citywatch.flows.stats import RunStats
from citywatch.sinks.dispatch import Dispatch, Written


class Metrics:
    """The Prometheus metrics of one process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events_in = Counter(
            "citywatch_events_in", "Messages read from Kafka", ["topic"], registry=r
        )
        self.dead = Counter(
            "citywatch_dead_letters", "Rejected inputs by reason", ["reason"], registry=r
        )
        self.late = Counter(
            "citywatch_late_events", "Events behind their partition's watermark", registry=r
        )
        self.alerts = Counter("citywatch_alerts", "Alerts raised", ["kind"], registry=r)
        self.incidents = Counter(
            "citywatch_incidents", "Incidents opened (work orders created)", ["kind"], registry=r
        )
        self.work_orders = Counter(
            "citywatch_work_orders", "Work order writes", ["outcome"], registry=r
        )
        self.lag = Gauge(
            "citywatch_consumer_lag_messages",
            "Messages on the broker not yet read",
            ["topic", "partition"],
            registry=r,
        )
        self.redis_retries = Counter(
            "citywatch_redis_retries",
            "Batches retried while Redis was unreachable, full or read-only",
            ["sink"],
            registry=r,
        )
        self.latency = Histogram(
            "citywatch_ingest_to_dispatch_seconds",
            "From reading a batch off Kafka to its work orders written in Redis",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:  # noqa: S104 - scraped remotely
        start_http_server(port, addr=addr, registry=self.registry)

    def on_messages(self, topic: str, n: int) -> None:
        self.events_in.labels(topic).inc(n)

    def on_lag(self, topic: str, partition: int, lag: int) -> None:
        self.lag.labels(topic, str(partition)).set(lag)

    def on_redis_retry(self, sink: str) -> None:
        self.redis_retries.labels(sink).inc()

    def on_written(self, items: Sequence[Dispatch], results: Sequence[Written]) -> None:
        now = time.time_ns()
        for d, w in zip(items, results, strict=True):
            if w.created:
                self.incidents.labels(d.alert.kind).inc()
            self.work_orders.labels(w.outcome).inc()
            if d.ingest_ns:
                self.latency.observe((now - d.ingest_ns) / 1e9)


class MetricsStats(RunStats):
    """Run counters that also feed the Prometheus metrics."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__()
        self.metrics = metrics

    def add_parsed(self, lines: int, ok: dict[str, int], dead: list[str]) -> None:
        super().add_parsed(lines, ok, dead)
        for reason in dead:
            self.metrics.dead.labels(reason).inc()

    def add_late(self, n: int) -> None:
        super().add_late(n)
        self.metrics.late.inc(n)

    def add_alerts(self, kinds: list[str]) -> None:
        super().add_alerts(kinds)
        for kind in kinds:
            self.metrics.alerts.labels(kind).inc()
