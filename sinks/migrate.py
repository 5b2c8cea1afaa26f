"""Renaming the keys earlier versions wrote (``P:...``) to the hash-tagged layout (``{P}:...``).

Earlier versions named keys ``P:wo:{WO}``, ``P:queue:{Q}``, ... : each Lua script
then touched several hash slots, which a Redis Cluster refuses. Now every key starts
with ``{P}`` (see :mod:`citywatch.sinks.keys`). :func:`migrate_keys` renames every
key matching ``P:*`` to ``{P}:...``, values, TTLs and stream consumer groups
included: ``RENAMENX`` on one server, ``DUMP`` + ``RESTORE`` + ``DEL`` on a
cluster (the two names hash to different slots). A key whose new name exists
already is left alone and reported. Run it with citywatch stopped (the flow, the
console, officers, escalator, webhook relay); it can be run again: a second run
finds nothing left to move.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import redis

from citywatch.sinks.client import is_cluster
from citywatch.sinks.keys import legacy_pattern, migrated_name


@dataclass
class Migration:
    moved: list[str] = field(default_factory=list)  # the legacy names moved (or to move)
    conflicts: list[str] = field(default_factory=list)  # new name present: left alone


def _escape_glob(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def migrate_keys(client: redis.Redis, prefix: str, *, dry_run: bool = False) -> Migration:
    """Move every ``prefix:*`` key to ``{prefix}:*``; ``dry_run`` only lists them.

    ``client`` must not decode responses (``DUMP`` payloads are binary)."""
    out = Migration()
    cluster = is_cluster(client)
    pattern = _escape_glob(legacy_pattern(prefix)[:-1]) + "*"
    for raw in list(client.scan_iter(match=pattern, count=1000)):
        old = raw.decode() if isinstance(raw, bytes) else str(raw)
        new = migrated_name(prefix, old)
        if dry_run:
            (out.conflicts if client.exists(new) else out.moved).append(old)
            continue
        if cluster:
            moved = _dump_restore(client, old, new)
        else:
            moved = bool(client.renamenx(old, new))
        (out.moved if moved else out.conflicts).append(old)
    return out


def _dump_restore(client: redis.Redis, old: str, new: str) -> bool:
    payload = client.dump(old)
    if payload is None:  # gone meanwhile
        return True
    ttl = int(client.pttl(old))
    try:
        client.restore(new, max(ttl, 0), payload)
    except redis.ResponseError as exc:
        if "BUSYKEY" in str(exc):
            return False
        raise
    client.delete(old)
    return True
