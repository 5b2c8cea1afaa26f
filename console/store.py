"""The console's read side: an in-memory index of the work orders in Redis, kept live.

At start the index scans ``{P}:wo:*`` once; then it follows the live feed
(``{P}:feed:{live}``) for new and changed orders and re-reads the open ones every
``refresh_s`` (a transition made by ``citywatch officer`` or by another console
shows up within that time). Each change is published to the subscribers (the
server-sent event streams), which filter it by the officer's scope before it
leaves the server. Timing figures (sign-off and handling times) come from each
order's audit stream.

>>> summarize({"id": "wo-1", "state": "signed", "alerts": "[{}, {}]"})["n_alerts"]
2
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
import redis.asyncio as aredis

from citywatch.sinks.dispatch import Keys

SEVERITIES = ("blue", "yellow", "orange", "red")
FINAL_STATES = ("closed", "merged")
UNSIGNED_STATES = ("dispatched", "escalated", "returned")
OPEN_STATES = ("dispatched", "escalated", "returned", "signed", "handling")
log = logging.getLogger(__name__)

FILTERS = ("centre", "department", "kind", "severity", "state")


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def summarize(h: Mapping[str, str]) -> dict[str, Any]:
    """A work order hash without its bulky alert list, as the map and lists show it."""
    out: dict[str, Any] = {k: v for k, v in h.items() if k != "alerts"}
    if str(h.get("alert_count", "")).isdigit():
        out["n_alerts"] = int(h["alert_count"])
        return out
    try:
        out["n_alerts"] = len(orjson.loads(h.get("alerts") or "[]"))
    except orjson.JSONDecodeError:
        out["n_alerts"] = 0
    return out


def audit_times(entries: Iterable[tuple[str, Mapping[str, str]]]) -> dict[str, int]:
    """First time each state was reached, from audit entries ``(stream id, fields)``.

    >>> audit_times([("5-0", {"state": "dispatched"}), ("9-0", {"state": "signed", "at": "8"})])
    {'dispatched': 5, 'signed': 8}
    """
    out: dict[str, int] = {}
    for entry_id, f in entries:
        state = f.get("state") or f.get("to") or ""
        if not state or state in out:
            continue
        at = f.get("at") or f.get("at_ms") or ""
        out[state] = int(at) if at.isdigit() else int(entry_id.split("-", 1)[0])
    return out


def matches(wo: Mapping[str, Any], filters: Mapping[str, str]) -> bool:
    return all(not v or str(wo.get(k, "")) == v for k, v in filters.items())


def overdue(wo: Mapping[str, Any], now_ms: int) -> str | None:
    """``sign`` or ``resolve`` when the order is past that deadline, else None."""
    state = wo.get("state", "")

    def past(field: str) -> bool:
        due = str(wo.get(field, ""))
        return due.isdigit() and now_ms > int(due)

    if state in UNSIGNED_STATES and past("sign_due_ms"):
        return "sign"
    if state in ("signed", "handling") and past("resolve_due_ms"):
        return "resolve"
    return None


def _percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def overview(
    orders: Iterable[Mapping[str, Any]], county_of: Mapping[str, str], now_ms: int
) -> dict[str, Any]:
    """The leadership figures over the given (already scoped) work orders."""
    by_kind: Counter[str] = Counter()
    by_county: Counter[str] = Counter()
    by_kind_county: dict[str, Counter[str]] = defaultdict(Counter)
    sign_s: dict[str, list[float]] = defaultdict(list)
    handle_s: dict[str, list[float]] = defaultdict(list)
    late: list[dict[str, Any]] = []
    hour_ms = 3_600_000
    start = (now_ms // hour_ms - 23) * hour_ms
    trend = [{"hour_ms": start + i * hour_ms, **dict.fromkeys(SEVERITIES, 0)} for i in range(24)]
    total = 0
    for wo in orders:
        total += 1
        state = wo.get("state", "")
        dept = wo.get("department", "")
        county = county_of.get(wo.get("jurisdiction") or "", "") or county_of.get(
            wo.get("centre", ""), "city"
        )
        if state in OPEN_STATES:
            by_kind[wo.get("kind", "")] += 1
            by_county[county] += 1
            by_kind_county[wo.get("kind", "")][county] += 1
        due = overdue(wo, now_ms)
        if due:
            late.append(
                {
                    k: wo.get(k)
                    for k in (
                        "id",
                        "kind",
                        "severity",
                        "state",
                        "centre",
                        "department",
                        "sign_due_ms",
                        "resolve_due_ms",
                    )
                }
                | {"overdue": due}
            )
        t = wo.get("times") or {}
        created = t.get("dispatched") or _int(wo.get("created_ms"))
        if created and t.get("signed"):
            sign_s[dept].append((t["signed"] - created) / 1000)
        if t.get("signed") and t.get("resolved"):
            handle_s[dept].append((t["resolved"] - t["signed"]) / 1000)
        c = _int(wo.get("created_ms"))
        if c and c >= start and wo.get("severity") in SEVERITIES:
            trend[(c - start) // hour_ms][wo["severity"]] += 1
    depts = sorted(set(sign_s) | set(handle_s) | {o.get("department", "") for o in late})

    def stats(v: list[float]) -> dict[str, Any]:
        if not v:
            return {"n": 0}
        return {"n": len(v), "p50_s": _percentile(v, 0.5), "p90_s": _percentile(v, 0.9)}

    return {
        "now_ms": now_ms,
        "total": total,
        "open": sum(by_kind.values()),
        "open_by_kind": dict(by_kind.most_common()),
        "open_by_county": dict(by_county.most_common()),
        "open_by_kind_county": {k: dict(v) for k, v in by_kind_county.items()},
        "overdue": sorted(late, key=lambda o: str(o.get("id"))),
        "times_by_department": {
            d: {
                "sign": stats(sign_s[d]),
                "handle": stats(handle_s[d]),
                "overdue": sum(1 for o in late if o.get("department") == d),
            }
            for d in depts
        },
        "trend": trend,
    }


def _int(v: Any) -> int:
    s = str(v or "")
    return int(s) if s.isdigit() else 0


class WorkOrderIndex:
    """Every work order's summary in memory, refreshed from Redis, with change fan-out."""

    def __init__(self, client: aredis.Redis, keys: Keys, *, refresh_s: float = 2.0) -> None:
        self.client = client
        self.keys = keys
        self.refresh_s = refresh_s
        self.orders: dict[str, dict[str, Any]] = {}
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._feed_last = "0-0"
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    # --- subscribers ------------------------------------------------------------------
    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=10_000)
        self._subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[dict[str, Any]]) -> None:
        self._subscribers.discard(q)

    def _publish(self, wo: dict[str, Any]) -> None:
        for q in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):  # a stalled browser reloads on reconnect
                q.put_nowait(wo)

    # --- loading ----------------------------------------------------------------------
    async def _load(self, ids: list[str]) -> None:
        """Re-read these orders (hash and audit) and publish those that changed."""
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            pipe = self.client.pipeline(transaction=False)
            for wo_id in chunk:
                pipe.hgetall(self.keys.wo(wo_id))
                pipe.xrange(self.keys.audit(wo_id))
            res = await pipe.execute()
            for i, wo_id in enumerate(chunk):
                raw, audit = res[2 * i], res[2 * i + 1]
                if not raw:
                    continue
                h = {_s(k): _s(v) for k, v in raw.items()}
                wo = summarize(h)
                wo["times"] = audit_times(
                    (_s(eid), {_s(k): _s(v) for k, v in f.items()}) for eid, f in audit
                )
                wo["audit_len"] = len(audit)
                if self.orders.get(wo_id) != wo:
                    self.orders[wo_id] = wo
                    self._publish(wo)

    async def scan(self) -> None:
        """Load every work order: from the creation index, plus a key scan for any
        order written without one."""
        ids: list[str] = [_s(x) for x in await self.client.zrange(self.keys.index(), 0, -1)]
        prefix = self.keys.wo("")[:-1]  # "{P}:wo:{"
        async for key in self.client.scan_iter(match=prefix + "*}", count=1000):
            ids.append(_s(key)[len(prefix) : -1])
        await self._load(list(dict.fromkeys(ids)))

    async def run(self) -> None:
        """Follow Redis until cancelled; while Redis is unreachable, retry with backoff
        (the browsers keep what they have and the API answers from the index)."""
        backoff_s = 0.5
        while True:
            try:
                await self._follow()
            except (aredis.RedisError, OSError) as exc:
                log.warning("console: Redis unreachable (%s); retrying in %.1f s", exc, backoff_s)
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, 10.0)

    async def _follow(self) -> None:
        """Scan once, then follow the feed and refresh open orders."""
        last: Any = await self.client.xrevrange(self.keys.feed(), count=1)
        self._feed_last = _s(last[0][0]) if last else "0-0"
        await self.scan()
        self.ready.set()
        next_refresh = time.monotonic() + self.refresh_s
        while True:
            block_ms = max(1, int((next_refresh - time.monotonic()) * 1000))
            got: Any = await self.client.xread(
                {self.keys.feed(): self._feed_last}, block=block_ms, count=500
            )
            touched: list[str] = []
            for _, entries in got or []:
                for entry_id, f in entries:
                    self._feed_last = _s(entry_id)
                    wo_id = f.get(b"wo") or f.get("wo")
                    if wo_id:
                        touched.append(_s(wo_id))
            if touched:
                await self._load(list(dict.fromkeys(touched)))
            if time.monotonic() >= next_refresh:
                open_ids = [k for k, v in self.orders.items() if v.get("state") not in FINAL_STATES]
                await self._load(open_ids)
                next_refresh = time.monotonic() + self.refresh_s

    async def refresh_one(self, wo_id: str) -> None:
        await self._load([wo_id])

    def start(self) -> None:
        self._task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
