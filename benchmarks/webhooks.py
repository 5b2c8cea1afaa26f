"""Webhook delivery: deliveries per second to a local receiver, and the added latency.

An embedded redis-server, the webhook service (relay + one worker per
subscription, ``concurrency`` requests in flight each) in this process, and a
local receiver (uvicorn on loopback, in a process of its own, that verifies every
signature with ``standardwebhooks``):

* ``burst``: ``--orders`` work orders written at once (pipelined batches), fanned
  out to ``--subscriptions`` endpoints: deliveries per second from the first write
  to the last delivery;
* ``paced``: ``--paced`` work orders written one at a time ``--interval-ms`` apart:
  the added latency from the work order's write (``created_ms``) to its arrival at
  the receiver, p50 / p99.

Checks that every delivery arrived exactly once per subscription, signed, and
exits 1 otherwise.

    python -m citywatch.benchmarks.webhooks --orders 3000 --subscriptions 4 --paced 300
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from typing import Any

import httpx
import orjson
import redis
import uvicorn
from standardwebhooks import Webhook

from citywatch.console.server import free_port
from citywatch.detectors.alerts import Alert
from citywatch.sinks.dispatch import Dispatch, Keys, Route, WorkOrderWriter
from citywatch.sinks.embedded_redis import EmbeddedRedis
from citywatch.sinks.integrations.service import WebhookService
from citywatch.sinks.integrations.settings import DeliverySettings, WebhookSpec, new_secret
from citywatch.sinks.integrations.webhooks import HookKeys, SubscriptionStore

T0 = 1_781_528_400_000
PREFIX = "bench"


class Receiver:
    """An ASGI app that verifies each delivery and records (subscription, id, arrival ms)."""

    def __init__(self, secret: str) -> None:
        self.hook = Webhook(secret)
        self.got: list[tuple[str, str, int, int]] = []  # sub, webhook-id, created_ms, now
        self.bad = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/stats":  # the benchmark polls this (not a delivery)
            full = scope.get("query_string") == b"full"
            doc = {"n": len(self.got), "bad": self.bad, "got": self.got if full else []}
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": orjson.dumps(doc)})
            return
        body = b""
        more = True
        while more:
            msg = await receive()
            body += msg.get("body", b"")
            more = msg.get("more_body", False)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        now_ms = int(time.time() * 1000)
        try:
            payload = self.hook.verify(body, headers)
            created = int(payload["data"]["work_order"]["created_ms"])
            self.got.append((scope["path"], headers["webhook-id"], created, now_ms))
            status = 204
        except Exception:  # noqa: BLE001 - counted, the benchmark then fails
            self.bad += 1
            status = 401
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def _dispatch(i: int) -> Dispatch:
    alert = Alert.make(
        "video.intrusion", "yellow", f"cam-{i}", "video", None, 121.0, 32.0,
        ts_ms=T0 + i * 1000, first_ts_ms=T0 + i * 1000, evidence={"i": i},
    )  # fmt: skip
    return Dispatch(alert, Route("town:x", "public_security", "town", "town:x"), 1800, 172800)


def _wait(cond: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--orders", type=int, default=3000)
    p.add_argument("--subscriptions", type=int, default=4)
    p.add_argument("--paced", type=int, default=300)
    p.add_argument("--interval-ms", type=int, default=20)
    p.add_argument("--receiver", nargs=2, metavar=("PORT", "SECRET"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.receiver:  # the receiver process (started below by the benchmark itself)
        port, secret = int(args.receiver[0]), args.receiver[1]
        uvicorn.run(Receiver(secret), host="127.0.0.1", port=port, log_level="warning")
        return 0
    secret = new_secret()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "citywatch.benchmarks.webhooks", "--receiver", str(port), secret]
    )
    stats = f"http://127.0.0.1:{port}/stats"

    def count() -> int:
        try:
            return int(httpx.get(stats, timeout=5).json()["n"])
        except httpx.HTTPError:
            return -1

    _wait(lambda: count() >= 0, 30)
    with EmbeddedRedis() as redis_server:
        client = redis.Redis.from_url(redis_server.url, decode_responses=True)
        keys = HookKeys(PREFIX)
        specs = [
            WebhookSpec(id=f"s{i}", url=f"http://127.0.0.1:{port}/s{i}", secret=secret)
            for i in range(args.subscriptions)
        ]
        store = SubscriptionStore(client, keys, specs)
        settings = DeliverySettings(backoff_first_s=0.05, backoff_max_s=1.0)
        service = WebhookService(client, keys, store, settings).start()
        _wait(service.active.is_set, 15)
        writer = WorkOrderWriter(client, Keys(PREFIX), feed_maxlen=1_000_000)

        want = args.orders * args.subscriptions
        t0 = time.perf_counter()
        for start in range(0, args.orders, 500):
            writer.write([_dispatch(i) for i in range(start, min(args.orders, start + 500))])
        ok = _wait(lambda: count() >= want, 600)
        burst_s = time.perf_counter() - t0
        n = count()
        print(
            f"burst: {args.orders} work orders x {args.subscriptions} subscriptions = "
            f"{n} deliveries in {burst_s:.2f} s -> {n / burst_s:,.0f} deliveries/s"
        )

        first = n
        for i in range(args.paced):
            writer.write([_dispatch(10_000_000 + i)])
            time.sleep(args.interval_ms / 1000)
        ok = ok and _wait(lambda: count() >= first + args.paced * args.subscriptions, 120)
        final = httpx.get(stats + "?full", timeout=30).json()
        got = [tuple(g) for g in final["got"]]
        lat = [float(now - created) for _, _, created, now in got[first:]]
        print(
            f"paced: {args.paced} work orders {args.interval_ms} ms apart, "
            f"{args.subscriptions} subscriptions: added latency work order -> delivery "
            f"p50 {_pct(lat, 0.5):.0f} ms, p99 {_pct(lat, 0.99):.0f} ms, max {max(lat):.0f} ms"
        )
        service.stop()
        ids = [(sub, mid) for sub, mid, _, _ in got]
        total = want + args.paced * args.subscriptions
        dup = len(ids) - len(set(ids))
        print(orjson.dumps({"deliveries": len(ids), "expected": total, "duplicates": dup,
                            "bad_signatures": final["bad"]}).decode())  # fmt: skip
        client.close()
    proc.terminate()
    proc.wait(10)
    if not ok or len(set(ids)) != total or final["bad"]:
        print("FAILED: deliveries missing, repeated or unsigned", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
