"""``citywatch demo``: the main job on embedded defaults, start to finish."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import redis

from citywatch.flows.config import load_config
from citywatch.flows.runner import load_reference, redis_for, run_recordings
from citywatch.flows.summary import print_summary
from citywatch.sinks.client import RedisOptions, open_client
from citywatch.sinks.dispatch import Keys

SEVERITY_MARK = {"blue": "BLUE  ", "yellow": "YELLOW", "orange": "ORANGE", "red": "RED   "}


class FeedPrinter:
    """Follows the live feed stream in Redis and prints each dispatched work order."""

    def __init__(self, opts: RedisOptions, keys: Keys) -> None:
        self.client = open_client(dataclasses.replace(opts, socket_timeout_s=5.0), check=False)
        self.key = keys.feed()
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        last = "0-0"
        while not self._stop.is_set():
            try:
                got: Any = self.client.xread({self.key: last}, block=200, count=100)
            except redis.RedisError:
                return
            for _, entries in got or []:
                for entry_id, fields in entries:
                    last = entry_id.decode()
                    self._show(fields)

    def _show(self, f: dict[bytes, bytes]) -> None:
        self.count += 1
        alert = orjson.loads(f.get(b"alert", b"{}"))
        ev = alert.get("evidence", {})
        detail = ", ".join(
            f"{k}={ev[k]}"
            for k in ("class", "value", "duration_s", "label", "confidence")
            if ev.get(k) is not None
        )
        sys.stdout.write(
            f"  [{SEVERITY_MARK.get(f[b'severity'].decode(), '')}] {alert.get('ts', '')[11:19]} "
            f"{f[b'kind'].decode():<17} {f[b'subject'].decode():<22} "
            f"zone={f[b'zone'].decode() or '-':<26} -> {f[b'centre'].decode()} / "
            f"{f[b'department'].decode()}  {f[b'wo'].decode()}"
            + (f"  ({detail})" if detail else "")
            + "\n"
        )
        sys.stdout.flush()

    def start(self) -> FeedPrinter:
        self._thread.start()
        return self

    def stop(self) -> None:
        time.sleep(0.5)  # let the last entries arrive
        self._stop.set()
        self._thread.join()
        self.client.close()


def run_demo(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    ref = load_reference(cfg)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    truth_path: Path | None = None
    if args.recording:
        recordings = list(args.recording)
    else:
        from citywatch.replay.generator import GenParams, generate

        recordings = [out / "recording.jsonl"]
        truth_path = out / "truth.json"
        truth = generate(
            ref, GenParams(minutes=args.minutes, seed=args.seed), recordings[0], truth_path
        )
        print(
            f"citywatch demo: generated {truth.events:,} events of synthetic Nantong traffic "
            f"({args.minutes} min, seed {args.seed}) with {len(truth.incidents)} injected "
            f"incidents -> {recordings[0]}"
        )
    alerts_out = out / "alerts.jsonl"
    with redis_for(cfg) as (url, embedded):
        where = "an embedded redis-server" if embedded else "Redis"
        speed = "max speed" if args.speed is None else f"{args.speed:g}x real time"
        print(f"citywatch demo: replaying at {speed} into {where} at {url.split('@')[-1]}")
        print("live feed of dispatched work orders:")
        printer = FeedPrinter(cfg.redis.options(url), Keys(cfg.redis.prefix)).start()
        try:
            result = run_recordings(
                recordings,
                cfg,
                url,
                speed=args.speed,
                alerts_out=alerts_out,
                dead_out=out / "dead_letters.jsonl",
                late_out=out / "late_events.jsonl",
                reference=ref,
            )
        finally:
            printer.stop()
        print()
        print("summary")
        print_summary(result, cfg, False, alerts_out=alerts_out, truth=truth_path)
        print(
            f"files: {out}/ (recording, truth, alerts.jsonl, dead_letters.jsonl, late_events.jsonl)"
        )
        keep = args.keep if args.keep is not None else sys.stdin.isatty()
        if embedded and keep:
            from citywatch.flows.console_site import offer_console

            offer_console(cfg, url)
            print(f"\nRedis stays up at {url} for inspection; press Ctrl-C to stop.")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                print()
        elif embedded:
            print(
                "the embedded Redis stops now: run `citywatch demo --keep` (the default "
                "from a terminal) to keep it up and open the duty officers' console on "
                "these results, or set CITYWATCH_REDIS_URL"
            )
    return 0
