"""Where Bytewax runs a stateful key, and detection shard names that balance the workers.

Bytewax sends each key of a stateful step to worker ``SipHash-1-3(key) % workers``
(Rust's ``DefaultHasher`` over the key string, zero keys); :func:`worker_of`
computes the same in Python (``tests/flows/test_placement.py`` checks it against a
running Bytewax). With 8 shards on 2 workers the names ``shard-000`` …
``shard-007`` fall 4 and 4, but the single-key stages (the watermark of a plain
recording, the household peer stage) land on one of them too, and that worker
sets the pace. :func:`shard_names` gives shard ``i`` a name that lands where the
load is lowest, counting each single-key stage as a share of a shard's work.

Names only matter to a run that keeps no recovery state (a replay): a live run's
snapshots are stored under the shard names, so ``run`` keeps the plain ones. A
different hash in a later Bytewax makes the balance worse, never the alerts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

MASK = (1 << 64) - 1
# Work of a single-key stage, in detection shards of an 8-shard city replay
# (py-spy, benchmarks/RESULTS.md 2026-12-07): the household peer stage ~1.7 shards,
# the watermark step of one input partition ~0.65 shard.
PEER_WEIGHT = 1.7
SOURCE_WEIGHT = 0.65


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & MASK


def _round(v0: int, v1: int, v2: int, v3: int) -> tuple[int, int, int, int]:
    v0 = (v0 + v1) & MASK
    v1 = _rotl(v1, 13) ^ v0
    v0 = _rotl(v0, 32)
    v2 = (v2 + v3) & MASK
    v3 = _rotl(v3, 16) ^ v2
    v0 = (v0 + v3) & MASK
    v3 = _rotl(v3, 21) ^ v0
    v2 = (v2 + v1) & MASK
    v1 = _rotl(v1, 17) ^ v2
    v2 = _rotl(v2, 32)
    return v0, v1, v2, v3


def siphash13(data: bytes) -> int:
    """SipHash-1-3 with zero keys (Rust's ``DefaultHasher::new()``)."""
    v0, v1, v2, v3 = 0x736F6D6570736575, 0x646F72616E646F6D, 0x6C7967656E657261, 0x7465646279746573
    n = len(data)
    end = n - n % 8
    for i in range(0, end, 8):
        m = int.from_bytes(data[i : i + 8], "little")
        v3 ^= m
        v0, v1, v2, v3 = _round(v0, v1, v2, v3)
        v0 ^= m
    last = ((n & 0xFF) << 56) | int.from_bytes(data[end:], "little")
    v3 ^= last
    v0, v1, v2, v3 = _round(v0, v1, v2, v3)
    v0 ^= last
    v2 ^= 0xFF
    for _ in range(3):
        v0, v1, v2, v3 = _round(v0, v1, v2, v3)
    return v0 ^ v1 ^ v2 ^ v3


def worker_of(key: str, workers: int) -> int:
    """The worker Bytewax runs ``key`` of a stateful step on (Rust hashes a ``str`` as
    its bytes and a 0xFF byte).

    >>> [worker_of(k, 2) for k in ("recording", "peer", "shard-000", "shard-004")]
    [1, 1, 1, 0]
    """
    return siphash13(key.encode() + b"\xff") % workers


def plain_names(shards: int) -> list[str]:
    return [f"shard-{i:03d}" for i in range(shards)]


def shard_names(shards: int, workers: int, fixed: Mapping[str, float]) -> list[str]:
    """A name per shard such that shards plus the ``fixed`` single-key stages (key →
    weight in shards) spread evenly over ``workers``; the plain names for one worker.

    >>> names = shard_names(8, 2, {"recording": 0.65, "peer": 1.7})
    >>> names[:4], [worker_of(n, 2) for n in names]
    (['shard-000.2', 'shard-001.3', 'shard-002.1', 'shard-003'], [0, 0, 0, 1, 0, 1, 0, 1])
    """
    if workers <= 1:
        return plain_names(shards)
    load = [0.0] * workers
    for key, weight in fixed.items():
        load[worker_of(key, workers)] += weight
    names: list[str] = []
    for plain in plain_names(shards):
        target = min(range(workers), key=lambda w: (load[w], w))
        name, n = plain, 0
        while worker_of(name, workers) != target:
            n += 1
            name = f"{plain}.{n}"
        load[target] += 1.0
        names.append(name)
    return names


def replay_fixed(sources: Sequence[str], peer: bool, shards: int = 8) -> dict[str, float]:
    """The single-key stages of a replay and their weights in shards of ``shards`` (the
    weights above were measured against 8: with more shards each is a smaller share).

    >>> replay_fixed(["recording"], peer=True, shards=16)
    {'recording': 1.3, 'peer': 3.4}
    """
    scale = shards / 8
    fixed = {src: SOURCE_WEIGHT * scale / max(1, len(sources)) for src in sources}
    if peer:
        fixed["peer"] = PEER_WEIGHT * scale
    return fixed
