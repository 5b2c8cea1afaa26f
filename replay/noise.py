"""Field noise for synthetic traffic: what real trackers, gateways and sensors do.

Applied between the generator's clean event stream and the recording writer
when a run is noisy (``GenParams.noise``; on by default for ``--scale city``,
off for ``small`` and ``medium`` so their recordings stay what they were):

- **GPS**: extra jitter (``gps_jitter_m``, standard deviation per axis, on top
  of the trackers' own ~4 m), multipath jumps (a single fix displaced 100-500 m,
  then back), urban-canyon dropouts (a tracker silent 30-120 s: fixes lost,
  shorter than any ``track.gap`` limit), duplicate fixes (the same line twice)
  and out-of-order fixes (a fix delivered after its successor, still within the
  flow's 30 s out-of-order allowance);
- **clocks**: every source sends through a gateway (trackers are their own);
  a share of gateways stamp times a few seconds off (``max_skew_s``), and a few
  step their clock once during the run by 10 s to ``max_step_s`` either way (an
  NTP correction, a reset to a wrong time zone). Timestamps carry the skew; the
  arrival order follows true time, as the network does. Every event a gateway
  sends names it (``src``, ``gw-<n>``), as the event contract allows, so the
  flow keeps one clock per gateway. A step ahead by more than the flow's
  default future guard (``flow.max_future_s``, 300 s) is what the
  ``source.clock_skew`` alert is for: the truth labels it on that gateway
  (:meth:`NoiseStage.clock_step_incidents`); skews and smaller or backward
  steps expect no alert.

Sensor faults (drift, stuck-at, saturation, calibration steps) and overlapping
or border incidents change what *should* alert, so they are injected incidents
with truth entries (:mod:`citywatch.replay.incidents_noise`), not noise here.

Ground truth labels incidents, never single events: position and clock noise
(jitter, multipath, dropouts, skew, steps) is applied only to sources that expect
no alert, and only their events name a gateway (an injector that wants a noisy
incident, like the truck parked on a zone border, gives its vehicle the jitter
itself); incident sources get only what cannot move an expected alert out of
its window or zone (duplicates, a fix reordered within seconds). A skewed or
stepped event is still an event: the truth counts lines written, and ``noise``
counts what was done. The one clock incident is the gateway's own: its
``source.clock_skew`` (above).

Draws come from their own random stream (``seed + 2``) and per-gateway streams
seeded by the gateway number, so the clean stream's draws are untouched and the
same seed gives the same bytes.
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict, fields
from typing import TYPE_CHECKING, Any

from citywatch.geo.distance import offset_deg

if TYPE_CHECKING:
    from citywatch.replay.generator import Generator, GenParams

# GenParams fields that describe the noise; left out of the recording header and
# the truth file of a run without noise (so those stay byte-identical to before).
NOISE_FIELDS = (
    "noise",
    "gps_jitter_m",
    "multipath_per_mille",
    "dropout_per_mille",
    "duplicate_per_mille",
    "reorder_per_mille",
    "skewed_gateways_pct",
    "max_skew_s",
    "clock_steps_pct",
    "max_step_s",
    "sensor_faults",
    "overlapping_incidents",
)
SOURCES_PER_GATEWAY = 50
DROPOUT_MS = (30_000, 120_000)
MULTIPATH_M = (100.0, 500.0)
MIN_STEP_MS = 10_000
REORDER_MAX_PERIOD_MS = 20_000  # fixes further apart cannot be swapped within 30 s
# The flow's default future guard (flow.max_future_s): a gateway clock stepped further
# ahead than this raises source.clock_skew, so the truth expects one.
FUTURE_GUARD_MS = 300_000
# The alert comes once the gateway's next few events agree (the watermark's hold chain),
# stamped with the other sources' recent time, which may be a little behind the step.
CLOCK_ALERT_WITHIN_MS = 10 * 60_000
CLOCK_ALERT_BEFORE_MS = 60_000


def gateway_name(gw: int) -> str:
    """The ``src`` of gateway number ``gw``.

    >>> gateway_name(7)
    'gw-007'
    """
    return f"gw-{gw:03d}"


def is_noisy(p: GenParams) -> bool:
    """Whether a run is noisy: ``p.noise`` if set, else only ``--scale city``."""
    return p.noise if p.noise is not None else p.scale == "city"


def header_params(p: GenParams) -> dict[str, Any]:
    """The parameters a recording header and truth file record: all of them for a
    noisy run, the historic set (no noise fields) otherwise."""
    doc = asdict(p)
    if is_noisy(p):
        doc["noise"] = True
        return doc
    return {k: v for k, v in doc.items() if k not in NOISE_FIELDS}


def validate(p: GenParams) -> None:
    """Raise ``ValueError`` naming the first out-of-range noise option."""
    names = {f.name for f in fields(p)}
    for name in NOISE_FIELDS:
        if name not in names or name in ("noise", "sensor_faults", "overlapping_incidents"):
            continue
        value = getattr(p, name)
        if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
            msg = f'generate: "{name}" must be a number >= 0, got {value!r}'
            raise ValueError(msg)
    for name in ("multipath_per_mille", "dropout_per_mille", "duplicate_per_mille"):
        if getattr(p, name) > 1000:
            msg = f'generate: "{name}" must be at most 1000, got {getattr(p, name)}'
            raise ValueError(msg)
    if p.reorder_per_mille > 1000:
        msg = f'generate: "reorder_per_mille" must be at most 1000, got {p.reorder_per_mille}'
        raise ValueError(msg)
    for name in ("skewed_gateways_pct", "clock_steps_pct"):
        if getattr(p, name) > 100:
            msg = f'generate: "{name}" must be at most 100 (%), got {getattr(p, name)}'
            raise ValueError(msg)


class Gateway:
    """One gateway's clock: a constant skew and at most one step change."""

    __slots__ = ("skew_ms", "step_at_ms", "step_ms")

    def __init__(self, skew_ms: int, step_at_ms: int | None, step_ms: int) -> None:
        self.skew_ms = skew_ms
        self.step_at_ms = step_at_ms
        self.step_ms = step_ms

    def offset(self, t: int) -> int:
        if self.step_at_ms is not None and t >= self.step_at_ms:
            return self.skew_ms + self.step_ms
        return self.skew_ms


class NoiseStage:
    """Turns the clean ``(ts, event)`` stream into ``(ts, event, extra delay ms)``
    items with noise applied; counts each kind in ``counts``."""

    def __init__(self, gen: Generator, quiet_subjects: set[str]) -> None:
        self.gen = gen
        self.p = gen.p
        self.rng = random.Random(gen.p.seed + 2)
        # Subjects with expected alerts (or exact dead-letter counts): no clock noise,
        # multipath or dropouts for them.
        self.quiet = quiet_subjects
        self.clean = gen.clean_subjects
        n_sources = len(gen.vehicles) + len(gen.sensors) + len(gen.cameras)
        self.n_gateways = max(1, n_sources // SOURCES_PER_GATEWAY)
        self.gateways: dict[int, Gateway] = {}
        self.period_ms = {v.id: v.period_ms for v in gen.vehicles}
        self.dropout_until: dict[str, int] = {}
        # stepped gateway -> true time of its first event after the step
        self.stepped_heard: dict[int, int] = {}
        self.counts: dict[str, int] = {
            "jittered_fixes": 0,
            "multipath_fixes": 0,
            "dropouts": 0,
            "dropped_fixes": 0,
            "duplicates": 0,
            "out_of_order_fixes": 0,
            "skewed_gateways": 0,
            "stepped_gateways": 0,
            "skewed_events": 0,
        }

    def gateway_of(self, subject: str) -> int:
        return zlib.crc32(subject.encode()) % self.n_gateways

    def gateway(self, gw: int) -> Gateway:
        g = self.gateways.get(gw)
        if g is None:
            # Its own stream: the same gateway gets the same clock whatever the order
            # in which gateways are first seen.
            r = random.Random(self.p.seed * 1_000_003 + gw)
            skew = 0
            if r.random() * 100 < self.p.skewed_gateways_pct:
                skew = int(r.uniform(0.5, max(0.5, self.p.max_skew_s)) * 1000)
                skew *= r.choice((-1, 1))
            step_at: int | None = None
            step = 0
            if (
                r.random() * 100 < self.p.clock_steps_pct
                and self.p.max_step_s * 1000 >= MIN_STEP_MS
            ):
                step_at = r.randrange(self.gen.t0, self.gen.t_end)
                step = int(r.uniform(MIN_STEP_MS, self.p.max_step_s * 1000)) * r.choice((-1, 1))
            g = self.gateways[gw] = Gateway(skew, step_at, step)
            self.counts["skewed_gateways"] += skew != 0
            self.counts["stepped_gateways"] += step_at is not None
        return g

    def apply(
        self, events: Iterable[tuple[int, dict[str, Any]]]
    ) -> Iterator[tuple[int, dict[str, Any], int]]:
        p, rng, counts = self.p, self.rng, self.counts
        random_, gauss, uniform = rng.random, rng.gauss, rng.uniform
        jitter = p.gps_jitter_m
        multipath, dropout = p.multipath_per_mille, p.dropout_per_mille
        duplicate, reorder = p.duplicate_per_mille, p.reorder_per_mille
        clock_noise = p.skewed_gateways_pct > 0 or p.clock_steps_pct > 0
        ts_of = self.gen._ts
        for ts, obj in events:
            subject = obj.get("entity") or obj.get("sensor") or obj.get("camera") or ""
            if subject in self.clean:
                yield ts, obj, 0
                continue
            quiet = subject in self.quiet
            delay = 0
            if obj["type"] == "gps":
                if not quiet:
                    until = self.dropout_until.get(subject)
                    if until is not None:
                        if ts < until:
                            counts["dropped_fixes"] += 1
                            continue
                        del self.dropout_until[subject]
                    if random_() * 1000 < dropout:
                        self.dropout_until[subject] = ts + rng.randrange(*DROPOUT_MS)
                        counts["dropouts"] += 1
                        counts["dropped_fixes"] += 1
                        continue
                if not quiet:
                    obj = self._moved(obj, jitter, random_, gauss, uniform, multipath)
                period = self.period_ms.get(subject, REORDER_MAX_PERIOD_MS + 1)
                if period <= REORDER_MAX_PERIOD_MS and random_() * 1000 < reorder:
                    # Arrives after the next fix (sent one period later, up to 3 s of
                    # network delay) but at most period + 5 s late.
                    delay = period + rng.randrange(3_000, 5_000)
                    counts["out_of_order_fixes"] += 1
            if not quiet:
                gw = self.gateway_of(subject)
                obj = {**obj, "src": gateway_name(gw)}
                if clock_noise:
                    g = self.gateway(gw)
                    offset = g.offset(ts)
                    if offset:
                        obj["ts"] = ts_of(ts + offset)
                        counts["skewed_events"] += 1
                    if g.step_at_ms is not None and ts >= g.step_at_ms:
                        self.stepped_heard.setdefault(gw, ts)
            yield ts, obj, delay
            if random_() * 1000 < duplicate:
                counts["duplicates"] += 1
                yield ts, obj, delay + rng.randrange(1, 2_000)

    def clock_step_incidents(self) -> list[tuple[str, int, int, str]]:
        """``(gateway, start, end, note)`` of the clock steps that should raise
        ``source.clock_skew``: gateways whose clock stepped ahead by more than
        :data:`FUTURE_GUARD_MS` and that sent an event after the step (call after
        :meth:`apply` has run). The window opens :data:`CLOCK_ALERT_BEFORE_MS` before
        the step and closes :data:`CLOCK_ALERT_WITHIN_MS` after the gateway's first
        event past it."""
        out = []
        for gw, heard in sorted(self.stepped_heard.items()):
            g = self.gateways[gw]
            if g.step_at_ms is None or g.step_ms <= FUTURE_GUARD_MS:
                continue
            note = f"gateway clock stepped {g.step_ms / 1000:+.0f} s ahead"
            start = g.step_at_ms - CLOCK_ALERT_BEFORE_MS
            out.append((gateway_name(gw), start, heard + CLOCK_ALERT_WITHIN_MS, note))
        return out

    def _moved(
        self,
        obj: dict[str, Any],
        jitter: float,
        random_: Any,
        gauss: Any,
        uniform: Any,
        multipath: float,
    ) -> dict[str, Any]:
        dx = dy = 0.0
        if jitter > 0:
            dx, dy = gauss(0, jitter), gauss(0, jitter)
            self.counts["jittered_fixes"] += 1
        if random_() * 1000 < multipath:
            r, a = uniform(*MULTIPATH_M), uniform(0, 2 * math.pi)
            dx, dy = dx + r * math.cos(a), dy + r * math.sin(a)
            self.counts["multipath_fixes"] += 1
        if dx == 0.0 and dy == 0.0:
            return obj
        dlon, dlat = offset_deg(obj["lat"], dx, dy)
        return {**obj, "lon": round(obj["lon"] + dlon, 6), "lat": round(obj["lat"] + dlat, 6)}
