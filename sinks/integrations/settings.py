"""Configuration of the integrations: ``[[webhooks]]``, ``[outputs.*]`` and ``[api]``.

>>> s = integration_settings({"webhooks": [{"id": "water", "url": "https://w.example/hook",
...     "secret": "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=", "events": ["workorder.closed"]}]}, {})
>>> s.webhooks[0].events, s.delivery.retry_for_s
(('workorder.closed',), 86400.0)
>>> integration_settings({"webhooks": [{"id": "x", "url": "ftp://x", "secret": "s"}]}, {})
Traceback (most recent call last):
...
citywatch.sinks.integrations.settings.IntegrationConfigError: [[webhooks]] 'x': url must be \
http:// or https://, got 'ftp://x'
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

from citywatch.sinks.integrations.events import EVENT_TYPES

SEVERITIES = ("blue", "yellow", "orange", "red")
_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class IntegrationConfigError(ValueError):
    """A webhook, output or API setting is wrong; fix the named entry (file or command)."""


def check_url(owner: str, url: str) -> str:
    """Only absolute http(s) URLs with a host and without credentials in them."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        msg = f"{owner}: url must be http:// or https://, got {url!r}"
        raise IntegrationConfigError(msg)
    if not parts.hostname:
        msg = f"{owner}: url needs a host name, got {url!r}"
        raise IntegrationConfigError(msg)
    if parts.username or parts.password:
        msg = (
            f"{owner}: put no credentials in the url (they would show in lists and logs); "
            "the receiver authenticates citywatch by the webhook signature"
        )
        raise IntegrationConfigError(msg)
    return url


def new_secret() -> str:
    """A fresh Standard Webhooks secret: ``whsec_`` + 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def check_secret(owner: str, secret: str) -> str:
    raw = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(raw + "==", validate=False)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) < 16:
        msg = (
            f"{owner}: secret must be whsec_ + base64 of at least 16 bytes "
            "(make one with `citywatch webhooks add`, which prints a fresh one)"
        )
        raise IntegrationConfigError(msg)
    return secret


def mask_url(url: str) -> str:
    """The URL as shown in lists and logs: no query string (it may carry a token).

    >>> mask_url("https://h.example/hook?token=abc")
    'https://h.example/hook?…'
    """
    base, sep, _ = url.partition("?")
    return base + ("?…" if sep else "")


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookSpec:
    """One subscription: where to send, the secret, and which events (empty = all)."""

    id: str
    url: str
    secret: str = field(repr=False)
    events: tuple[str, ...] = ()
    departments: tuple[str, ...] = ()
    centres: tuple[str, ...] = ()
    severities: tuple[str, ...] = ()
    source: str = "config"  # config (read-only) or redis (citywatch webhooks add)

    def __post_init__(self) -> None:
        owner = f"[[webhooks]] {self.id!r}"
        if not _ID.match(self.id):
            msg = f"{owner}: id must be 1-64 letters, digits or _.- characters"
            raise IntegrationConfigError(msg)
        check_url(owner, self.url)
        check_secret(owner, self.secret)
        for ev in self.events:
            if ev not in EVENT_TYPES:
                msg = f"{owner}: unknown event {ev!r}; known: {', '.join(EVENT_TYPES)}"
                raise IntegrationConfigError(msg)
        for sev in self.severities:
            if sev not in SEVERITIES:
                msg = f"{owner}: unknown severity {sev!r}; known: {', '.join(SEVERITIES)}"
                raise IntegrationConfigError(msg)

    def wants(self, event_type: str, centre: str, department: str, severity: str) -> bool:
        """Whether an event passes this subscription's filters (an empty filter passes all)."""
        return (
            (not self.events or event_type in self.events)
            and (not self.centres or centre in self.centres)
            and (not self.departments or department in self.departments)
            and (not self.severities or severity in self.severities)
        )

    def public(self) -> dict[str, Any]:
        """As lists and the admin view show it: masked URL, never the secret."""
        return {
            "id": self.id,
            "url": mask_url(self.url),
            "events": list(self.events),
            "departments": list(self.departments),
            "centres": list(self.centres),
            "severities": list(self.severities),
            "source": self.source,
        }

    def to_record(self) -> dict[str, Any]:
        """As stored in Redis (``citywatch webhooks add``), secret included."""
        record = {**self.public(), "url": self.url, "secret": self.secret}
        del record["source"]
        return record

    @classmethod
    def from_table(
        cls, raw: Mapping[str, Any], env: Mapping[str, str], source: str = "config"
    ) -> WebhookSpec:
        table = dict(raw)
        ident = str(table.get("id", ""))
        owner = f"[[webhooks]] {ident!r}"
        env_name = table.pop("secret_env", None)
        if env_name is not None:
            if "secret" in table:
                msg = f"{owner}: give secret or secret_env, not both"
                raise IntegrationConfigError(msg)
            if not env.get(str(env_name)):
                msg = f"{owner}: environment variable {env_name} (secret_env) is not set"
                raise IntegrationConfigError(msg)
            table["secret"] = env[str(env_name)]
        known = {f.name for f in fields(cls)} - {"source"}
        unknown = sorted(set(table) - known)
        if unknown:
            msg = f"{owner}: unknown key(s) {unknown}; known: {sorted(known)}"
            raise IntegrationConfigError(msg)
        for key in ("id", "url", "secret"):
            if not isinstance(table.get(key), str) or not table[key]:
                msg = f"{owner}: {key} is required (a string)"
                raise IntegrationConfigError(msg)
        for key in ("events", "departments", "centres", "severities"):
            value = table.get(key, [])
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                msg = f"{owner}: {key} must be a list of strings, got {value!r}"
                raise IntegrationConfigError(msg)
            table[key] = tuple(value)
        return cls(**table, source=source)


def _numbers(owner: str, obj: Any, positive: tuple[str, ...]) -> None:
    for name in positive:
        value = getattr(obj, name)
        if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
            msg = f"{owner} {name}: must be a number > 0, got {value!r}"
            raise IntegrationConfigError(msg)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliverySettings:
    """``[outputs.webhooks]``: how deliveries are made and retried."""

    retry_for_s: float = 86400.0  # keep retrying an event this long, then dead-letter it
    backoff_first_s: float = 1.0
    backoff_max_s: float = 300.0
    timeout_s: float = 10.0  # per request (connect, read, write)
    concurrency: int = 4  # requests in flight per subscription (one per work order)
    max_payload_bytes: int = 256 * 1024  # larger bodies drop the alert's evidence
    failing_after_s: float = 600.0  # failing this long: shown as failing to admins
    dead_letter_maxlen: int = 10_000
    verify_tls: bool = True
    ca_file: str | None = None
    metrics_port: int = 0  # citywatch webhooks serve's Prometheus port (0: none)

    def __post_init__(self) -> None:
        _numbers(
            "[outputs.webhooks]",
            self,
            (
                "retry_for_s",
                "backoff_first_s",
                "backoff_max_s",
                "timeout_s",
                "max_payload_bytes",
                "failing_after_s",
                "dead_letter_maxlen",
                "concurrency",
            ),
        )
        if self.backoff_first_s > self.backoff_max_s:
            msg = "[outputs.webhooks] backoff_first_s must not exceed backoff_max_s"
            raise IntegrationConfigError(msg)
        if self.max_payload_bytes < 4096:
            msg = "[outputs.webhooks] max_payload_bytes: must be >= 4096"
            raise IntegrationConfigError(msg)


@dataclass(frozen=True, slots=True, kw_only=True)
class KafkaOutputSettings:
    """``[outputs.kafka]``: alerts and work-order changes to Kafka (off unless enabled)."""

    enabled: bool = False
    bootstrap: str | None = None  # default: [kafka] bootstrap / CITYWATCH_KAFKA_BOOTSTRAP
    alerts_topic: str = "citywatch.alerts"
    workorders_topic: str = "citywatch.workorders"
    batch: int = 500
    client: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _numbers("[outputs.kafka]", self, ("batch",))
        for name in ("alerts_topic", "workorders_topic"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                msg = f"[outputs.kafka] {name}: must be a non-empty topic name"
                raise IntegrationConfigError(msg)


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiSettings:
    """``[api]``: the token API for department systems."""

    rate_per_min: int = 600  # requests per token per minute (a token may set its own)
    max_body_bytes: int = 64 * 1024
    idempotency_ttl_s: int = 86400  # how long an Idempotency-Key's answer is kept
    token_days: int = 365  # default lifetime of a new token

    def __post_init__(self) -> None:
        _numbers(
            "[api]", self, ("rate_per_min", "max_body_bytes", "idempotency_ttl_s", "token_days")
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class IntegrationSettings:
    webhooks: tuple[WebhookSpec, ...] = ()
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    kafka: KafkaOutputSettings = field(default_factory=KafkaOutputSettings)
    api: ApiSettings = field(default_factory=ApiSettings)


def _build(cls: type, owner: str, raw: Any) -> Any:
    if not isinstance(raw, Mapping):
        msg = f"{owner} must be a table"
        raise IntegrationConfigError(msg)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        msg = f"{owner}: unknown setting(s) {unknown}; known: {sorted(known)}"
        raise IntegrationConfigError(msg)
    try:
        return cls(**dict(raw))
    except TypeError as exc:
        msg = f"{owner}: {exc}"
        raise IntegrationConfigError(msg) from None


def integration_settings(doc: Mapping[str, Any], env: Mapping[str, str]) -> IntegrationSettings:
    """Parse the integration sections of a configuration document."""
    hooks_raw = doc.get("webhooks", [])
    if not isinstance(hooks_raw, list) or not all(isinstance(h, Mapping) for h in hooks_raw):
        msg = "[[webhooks]] must be an array of tables, one per subscription"
        raise IntegrationConfigError(msg)
    hooks = tuple(WebhookSpec.from_table(h, env) for h in hooks_raw)
    ids = [h.id for h in hooks]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        msg = f"[[webhooks]]: duplicate id(s) {dupes}"
        raise IntegrationConfigError(msg)
    outputs = doc.get("outputs", {})
    if not isinstance(outputs, Mapping):
        msg = "[outputs] must be a table"
        raise IntegrationConfigError(msg)
    unknown = sorted(set(outputs) - {"webhooks", "kafka"})
    if unknown:
        msg = f"[outputs]: unknown output(s) {unknown}; known: kafka, webhooks"
        raise IntegrationConfigError(msg)
    kafka_raw = dict(outputs.get("kafka", {}))
    return IntegrationSettings(
        webhooks=hooks,
        delivery=_build(DeliverySettings, "[outputs.webhooks]", outputs.get("webhooks", {})),
        kafka=_build(KafkaOutputSettings, "[outputs.kafka]", kafka_raw),
        api=_build(ApiSettings, "[api]", doc.get("api", {})),
    )
