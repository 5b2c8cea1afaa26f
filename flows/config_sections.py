"""The plain sections of the config file: ``[data]``, ``[flow]``, ``[redis]``,
``[kafka]``, ``[run]`` and ``[routing]``, each a frozen dataclass that checks itself.

They sit apart from :mod:`citywatch.flows.config` (which reads the file) so that
the schema (:mod:`citywatch.flows.config_schema`) can name them without an import
circle; ``citywatch.flows.config`` re-exports every name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from citywatch.detectors import params
from citywatch.detectors.watermark import SOURCE_KINDS, SOURCE_SLACK_MS
from citywatch.sinks.client import RedisOptions, RetryPolicy

SYSTEM_FAMILY = "source"  # system alerts about the inputs (source.clock_skew)
SYSTEM_DEPARTMENT = "operations"


class ConfigError(ValueError):
    """The configuration file is missing or wrong; the message names the setting to fix.
    ``problems`` lists every problem found (the message is the first)."""

    def __init__(self, msg: str, problems: list[str] | None = None) -> None:
        super().__init__(msg)
        self.problems = problems if problems is not None else [msg]


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowSettings:
    batch_size: int = 5000
    shards: int = 8
    max_out_of_order_s: int = 30
    timezone: str = "Asia/Shanghai"
    # What advances timeouts (track.gap): event time only (replay, reproducible), or
    # also the wall clock minus max_out_of_order_s (live runs, fires while input is quiet).
    timers: str = "event"
    # Watermarks are kept per source inside each input partition: "gateway" (the
    # event's src, else its type), "family" (the event type) or "partition".
    watermark_source: str = "gateway"
    # A source whose newest event is this far behind the others (or, live, that sent
    # nothing for this long) stops holding the watermark back.
    source_idle_s: int = 60
    # Events further ahead than this of the wall clock (live) or of their source's
    # recent median (replay) are dead-lettered as future-timestamp.
    max_future_s: int = 300
    # Absence and windowed kinds judge a key on its own source's clock: that source's
    # newest accepted event time less this (its own reordering; see "Live operation").
    source_slack_ms: int = SOURCE_SLACK_MS
    # Live runs (timers = "wall"): how often each detection shard wakes to advance its
    # timers to the wall clock while input is quiet (and each caught-up Kafka partition
    # runs its lanes on: one table a tick, which costs a shard nothing per source).
    tick_ms: int = 100

    def __post_init__(self) -> None:
        params.positive("flow", "batch_size", self.batch_size)
        params.positive("flow", "shards", self.shards)
        params.non_negative("flow", "max_out_of_order_s", self.max_out_of_order_s)
        params.positive("flow", "source_idle_s", self.source_idle_s)
        params.positive("flow", "max_future_s", self.max_future_s)
        params.non_negative("flow", "source_slack_ms", self.source_slack_ms)
        params.positive("flow", "tick_ms", self.tick_ms)
        if self.watermark_source not in SOURCE_KINDS:
            msg = (
                f'flow: "watermark_source" must be one of {", ".join(SOURCE_KINDS)}, '
                f"got {self.watermark_source!r}"
            )
            raise ConfigError(msg)
        if self.timers not in ("event", "wall"):
            msg = (
                f'flow: "timers" must be "event" (replay) or "wall" (live runs), '
                f"got {self.timers!r}"
            )
            raise ConfigError(msg)


@dataclass(frozen=True, slots=True, kw_only=True)
class RedisSettings:
    """``[redis]``: one connection for every part (flow sinks, console, officer tools).

    The password comes from ``CITYWATCH_REDIS_PASSWORD``, from ``password_file`` (its
    first line) or from the URL, in that order; it never appears in ``repr`` or in a
    printed URL. TLS applies to ``rediss://`` URLs. A ``redis+cluster://`` (or
    ``rediss+cluster://``) URL names a Redis Cluster through one of its nodes.
    """

    url: str | None = None
    prefix: str = "cw"
    feed_maxlen: int = 10_000
    dead_letter_maxlen: int = 100_000
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    password_file: str | None = None
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    # Connection: timeouts, retry with capped backoff while Redis is unreachable
    # (0 = retry for ever: the flow waits instead of dropping).
    socket_timeout_s: float = 10.0
    connect_timeout_s: float = 5.0
    retry_backoff_max_s: float = 5.0
    retry_give_up_s: float = 0.0
    # The dead-letter sink's budget: after it, the run stops with an error (not silent).
    dead_letter_give_up_s: float = 300.0
    silence_cache_s: float = 5.0
    # The dispatch sink's WAIT: a batch counts as written once this many replicas have
    # it (a Redis Cluster or a replicated primary; 0: the primary's reply is enough).
    wait_replicas: int = 0

    def __post_init__(self) -> None:
        for name in ("socket_timeout_s", "connect_timeout_s", "retry_backoff_max_s"):
            params.positive("[redis]", name, getattr(self, name))
        params.non_negative("[redis]", "retry_give_up_s", self.retry_give_up_s)
        params.positive("[redis]", "dead_letter_give_up_s", self.dead_letter_give_up_s)
        params.non_negative("[redis]", "silence_cache_s", self.silence_cache_s)
        params.non_negative("[redis]", "wait_replicas", self.wait_replicas)
        if not self.prefix or "{" in self.prefix or "}" in self.prefix:
            msg = f"redis: prefix must be non-empty and free of braces, got {self.prefix!r}"
            raise ConfigError(msg)
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            msg = "[redis] tls_cert_file and tls_key_file go together (client certificate)"
            raise ConfigError(msg)

    def options(self, url: str | None = None, *, give_up_s: float | None = None) -> RedisOptions:
        """The connection options for ``url`` (default: the configured one)."""
        chosen = url or self.url
        if not chosen:
            msg = (
                "no Redis URL: pass --redis-url, set CITYWATCH_REDIS_URL or [redis] url "
                "(run the flow with citywatch demo --keep to get one)"
            )
            raise ConfigError(msg)
        retry = RetryPolicy(
            max_s=self.retry_backoff_max_s,
            give_up_s=self.retry_give_up_s if give_up_s is None else give_up_s,
        )
        return RedisOptions(
            url=chosen,
            username=self.username,
            password=self.password,
            tls_ca_file=self.tls_ca_file,
            tls_cert_file=self.tls_cert_file,
            tls_key_file=self.tls_key_file,
            socket_timeout_s=self.socket_timeout_s,
            connect_timeout_s=self.connect_timeout_s,
            retry=retry,
            wait_replicas=self.wait_replicas,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class KafkaSettings:
    """``[kafka]``: topics, consumer group and client settings for ``citywatch run``.

    ``client`` is passed unchanged to confluent-kafka (librdkafka property names),
    which is where security goes: ``security.protocol``, ``sasl.mechanisms``,
    ``sasl.username``, ``sasl.password``, ``ssl.ca.location``, ...
    """

    bootstrap: str | None = None
    gps_topic: str = "citywatch.gps"
    sensor_topic: str = "citywatch.sensor"
    video_topic: str = "citywatch.video"
    dlq_topic: str = "citywatch.dlq"
    group_id: str = "citywatch"
    start: str = "earliest"
    idle_partition_s: float = 30.0
    client: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.start not in ("earliest", "latest"):
            msg = f"kafka: start must be 'earliest' or 'latest', got {self.start!r}"
            raise ConfigError(msg)
        params.positive("kafka", "idle_partition_s", self.idle_partition_s)
        for name in ("gps_topic", "sensor_topic", "video_topic", "dlq_topic", "group_id"):
            if not getattr(self, name):
                msg = f"kafka: {name} must be a non-empty string, got {getattr(self, name)!r}"
                raise ConfigError(msg)

    def topics(self) -> dict[str, str]:
        """Input topic name -> the event type it implies."""
        return {self.gps_topic: "gps", self.sensor_topic: "sensor", self.video_topic: "video"}


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggingSettings:
    """``[logging]``: the log format of every command (``citywatch --log-format`` and
    ``CITYWATCH_LOG_FORMAT`` win over it); ``auto``: text on a terminal, else JSON."""

    format: str = "auto"

    def __post_init__(self) -> None:
        if self.format not in ("auto", "json", "text"):
            msg = f'logging: "format" must be "auto", "json" or "text", got {self.format!r}'
            raise ConfigError(msg)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSettings:
    """``[run]``: the long-running ``citywatch run``: recovery, snapshots, metrics."""

    recovery_dir: str = "citywatch-recovery"
    recovery_partitions: int = 1
    # Each snapshot stops the flow while it is taken (0.35-0.9 s at city scale): a
    # shorter interval puts that into more alerts' delay, a longer one replays more
    # input after a crash.
    snapshot_interval_s: float = 60.0
    backup_interval_s: float = 0.0
    metrics_port: int = 9108

    def __post_init__(self) -> None:
        params.positive("run", "recovery_partitions", self.recovery_partitions)
        params.positive("run", "snapshot_interval_s", self.snapshot_interval_s)
        params.non_negative("run", "backup_interval_s", self.backup_interval_s)
        params.non_negative("run", "metrics_port", self.metrics_port)


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingSettings:
    """Where a work order goes: department by kind, level by severity, SLA by severity."""

    departments: Mapping[str, str] = field(default_factory=dict)
    level_by_severity: Mapping[str, str] = field(
        default_factory=lambda: {
            "blue": "town",
            "yellow": "town",
            "orange": "county",
            "red": "city",
        }
    )
    sign_sla_s: Mapping[str, int] = field(
        default_factory=lambda: {"blue": 3600, "yellow": 1800, "orange": 900, "red": 300}
    )
    resolve_sla_s: Mapping[str, int] = field(
        default_factory=lambda: {"blue": 604800, "yellow": 172800, "orange": 86400, "red": 14400}
    )
    # Level rules beyond severity (the highest level that applies wins); "" disables one.
    multi_department_level: str = "county"
    cross_town_level: str = "county"
    cross_county_level: str = "city"
    # The desk that coordinates an incident involving several departments.
    coordinating_department: str = "command_centre"

    def __post_init__(self) -> None:
        for sev, level in self.level_by_severity.items():
            params.severity("routing.level_by_severity", sev)
            if level not in ("town", "county", "city"):
                msg = (
                    f"routing.level_by_severity.{sev}: must be town, county or city, got {level!r}"
                )
                raise ConfigError(msg)
        for name in ("multi_department_level", "cross_town_level", "cross_county_level"):
            if getattr(self, name) not in ("", "town", "county", "city"):
                got = getattr(self, name)
                msg = f'routing.{name}: must be town, county, city or "", got {got!r}'
                raise ConfigError(msg)
        for table in ("sign_sla_s", "resolve_sla_s"):
            for sev, secs in getattr(self, table).items():
                params.severity(f"routing.{table}", sev)
                params.positive(f"routing.{table}", sev, secs)

    def department(self, kind: str, details: tuple[str | None, ...] = ()) -> str:
        """Most specific match first: ``kind:detail`` for each detail, ``kind``, family,
        ``default``; details are e.g. the sensor kind and the zone kind."""
        family = kind.partition(".")[0]
        keys = [f"{kind}:{d}" for d in details if d] + [kind, family]
        for key in keys:
            if key in self.departments:
                return self.departments[key]
        if family == SYSTEM_FAMILY:  # system alerts never fall to a field department
            return SYSTEM_DEPARTMENT
        return self.departments.get("default", "command_centre")


@dataclass(frozen=True, slots=True, kw_only=True)
class DataPaths:
    zones: Path
    jurisdictions: Path
    sensors: Path | None = None
    cameras: Path | None = None
