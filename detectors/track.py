"""``track.stop``: a watched vehicle standing still outside allowed zones.

A vehicle of a watched class (hazmat truck, tanker) alerts once per *stay*:
when it has stood for ``min_stop_s`` or longer outside zones where stopping is
allowed (chemical parks, approved stops). A stay with any fix inside an
allowed zone is allowed as a whole, so a truck parked at the edge of a service
area does not alert when jitter or its departure puts one fix outside.

What makes one stay, on real receivers:

- **A robust anchor.** The stay's place is the median of a sample of its fixes
  (spread evenly over the stay, at most ``ANCHOR_SAMPLES``), not its first fix,
  so a multipath fix at the start does not shift it.
- **Leaving takes distance, a count and a time.** A fix farther than
  ``radius_m`` from the anchor, or reporting more than ``max_speed_kmh``, is
  *away*. The stay ends only after ``leave_fixes`` away fixes in a row that
  also span ``leave_s`` seconds, so neither a burst of 1 Hz multipath nor one
  or two bad fixes of a slow reporter end it; a fix back within ``radius_m``
  resets the count. Away fixes do not lengthen the stay, and neither does
  the time across an *excursion* (two or more fixes more than 2 x ``radius_m``
  away, then back; multipath puts fixes 60-110 m off, and one glitch can be
  anywhere): it is counted as ``away_s``, not
  as stay time, and ``min_stop_s`` is reached by the rest. A boat or truck
  manoeuvring around a place for an hour, one or two fixes at a time, has not
  stood there.
- **The arrival fix belongs to the stay.** When a stay ends, the next one is
  seeded with the trailing away fixes that lie within ``radius_m`` of the
  newest, so ``first_ts`` is the first fix at the new place.
- **A re-stop continues the stay.** A stay within ``rejoin_m`` of an alerted
  stay's anchor continues that alert's episode (no second alert) when the
  vehicle never went farther than ``rejoin_m`` from it in between (a ship
  swinging at anchor, a truck shuffling in a yard), or when it came back
  within ``rejoin_s``.
- **Silences.** Time between two fixes of the stay more than ``observed_gap_s``
  apart, with no fix elsewhere between them, is *silent*: the evidence
  separates ``observed_s``, ``silent_s`` and ``away_s``. A stop inferred
  mostly across silences (``across_silence``) still alerts: the fixes on both
  sides put the vehicle at the same place with nothing seen elsewhere, and a
  tracker that sleeps while the engine is off is how a parked truck looks. A silence
  longer than ``max_bridge_s`` ends the stay (the vehicle may have left and
  come back; the silence itself is ``track.gap``'s matter), and the stay after
  it continues the earlier alert's episode when it is at the same place.

Whether state survives a silence depends on event time alone (idle state is
dropped when the next fix comes more than ``idle_evict_s`` later, exactly as a
watermark would have evicted it).

Timeline (radius 50 m, min stop 15 min, leaving: 3 fixes and 60 s away)::

    t(min)  0    5    10   12   15
    fix     A    A    A    J    A      A = at the stop, J = 120 m away (multipath)
    alert                       ^ track.stop, first_ts = 0, duration 15 min

>>> from citywatch.detectors.events import GpsEvent
>>> det = StopDetector(StopParams(classes=("hazmat_truck",), radius_m=50, min_stop_s=600), {})
>>> out = []
>>> for t in range(0, 11):
...     det.on_event(GpsEvent(t * 60_000, "hz-1", 121.0, 32.0, "hazmat_truck"), out)
>>> [(a.kind, a.evidence["duration_s"], a.evidence["observed_s"]) for a in out]
[('track.stop', 600, 600)]
"""

from __future__ import annotations

import random
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from citywatch.detectors import params
from citywatch.detectors.alerts import Alert
from citywatch.detectors.base import ContractCase, Detector, KeyedState, ZoneCatalog
from citywatch.detectors.events import Event, GpsEvent
from citywatch.detectors.state import Snapshot, TuplePickled
from citywatch.geo.distance import haversine_m

OWNER = "track.stop"
ANCHOR_SAMPLES = 32  # fixes kept for the median anchor, evenly spread over the stay
TRAIL_MAX = 32  # away fixes kept to seed the next stay
_RECOMPUTE = frozenset({3, 5, 8, 12, 16, 24})  # sample counts that move the anchor early


@dataclass(frozen=True, slots=True, kw_only=True)
class StopParams:
    """``[track.stop]``: who is watched, what a stay is, and when it has ended."""

    classes: tuple[str, ...] = ("hazmat_truck", "tanker")
    radius_m: float = 50.0
    min_stop_s: int = 900
    allowed_zone_kinds: tuple[str, ...] = ("chemical_park", "approved_stop")
    max_speed_kmh: float = 8.0
    leave_fixes: int = 3
    leave_s: int = 60
    rejoin_m: float = 300.0
    rejoin_s: int = 1800
    observed_gap_s: int = 300
    max_bridge_s: int = 1800
    severity: str = "orange"
    idle_evict_s: int = 6 * 3600

    def __post_init__(self) -> None:
        for name in ("radius_m", "min_stop_s", "max_speed_kmh", "leave_fixes", "idle_evict_s"):
            params.positive(OWNER, name, getattr(self, name))
        for name in ("leave_s", "rejoin_m", "rejoin_s", "observed_gap_s", "max_bridge_s"):
            params.non_negative(OWNER, name, getattr(self, name))
        params.severity(OWNER, self.severity)
        if self.rejoin_m < self.radius_m:
            msg = (
                f'{OWNER}: "rejoin_m" must be >= radius_m ({self.radius_m:g}), got '
                f"{self.rejoin_m:g}; a re-stop within the stop radius is the same place"
            )
            raise ValueError(msg)
        if self.idle_evict_s <= self.max_bridge_s:
            msg = (
                f'{OWNER}: "idle_evict_s" must be longer than max_bridge_s '
                f"({self.max_bridge_s}), got {self.idle_evict_s}"
            )
            raise ValueError(msg)


# (ts_ms, lon, lat, in an allowed zone, event id)
_Fix = tuple[int, float, float, bool, str | None]


@dataclass(slots=True)
class _Episode:
    """The last alerted stay, which a re-stop at the same place continues."""

    lon: float
    lat: float
    last_ts: int
    left: bool = False  # seen farther than rejoin_m from it since


@dataclass(slots=True)
class _Stay(TuplePickled):
    FLAT_COLUMNS = True  # its anchor sample and trail: columns of numbers in a snapshot

    lon: float
    lat: float
    first_ts: int
    last_ts: int  # the last fix that belongs to the stay
    last_any: int  # the last fix, away or not
    first_id: str | None
    allowed: bool
    fixes: int = 0
    silent_ms: int = 0
    samples: array[float] = field(default_factory=lambda: array("d"))  # lon, lat, lon, ...
    stride: int = 1
    seen: int = 0
    away_n: int = 0
    away_since: int = 0
    trail: list[_Fix] = field(default_factory=list)
    alerted: bool = False
    episode: _Episode | None = None
    away_ms: int = 0  # time across excursions: seen far away, then back (not stay time)
    away_far: int = 0  # away fixes beyond 2 x radius since the last fix of the stay

    def add(self, f: _Fix, observed_gap_ms: int) -> None:
        """A fix that belongs to the stay."""
        if self.away_far >= 2:
            # Seen elsewhere since the last fix of the stay: an excursion, neither
            # an observed standstill nor a silence it may have stood through.
            self.away_ms += f[0] - self.last_ts
        elif f[0] - self.last_ts > observed_gap_ms:
            self.silent_ms += f[0] - self.last_ts
        self.last_ts = self.last_any = f[0]
        self.fixes += 1
        self.allowed = self.allowed or f[3]
        self.away_n = self.away_far = 0
        self.trail.clear()
        # Keep every ``stride``-th fix; when full, halve the sample and double the
        # stride, so the sample stays spread over the whole stay.
        self.seen += 1
        if (self.seen - 1) % self.stride:
            return
        self.samples.extend((f[1], f[2]))
        if len(self.samples) >= 2 * ANCHOR_SAMPLES:
            kept = array("d")
            for i in range(0, len(self.samples), 4):
                kept.extend(self.samples[i : i + 2])
            self.samples = kept
            self.stride *= 2
        n = len(self.samples) // 2
        if self.stride == 1 and n not in _RECOMPUTE:
            return  # early in a stay the anchor moves on at a few sample counts only
        lons = sorted(self.samples[0::2])
        lats = sorted(self.samples[1::2])
        self.lon = lons[n // 2] if n % 2 else (lons[n // 2 - 1] + lons[n // 2]) / 2
        self.lat = lats[n // 2] if n % 2 else (lats[n // 2 - 1] + lats[n // 2]) / 2


def _stay_from(seed: list[_Fix], episode: _Episode | None, observed_gap_ms: int) -> _Stay:
    ts, lon, lat, allowed, eid = seed[0]
    st = _Stay(lon, lat, ts, ts, ts, eid, allowed, episode=episode)
    for f in seed:
        st.add(f, observed_gap_ms)
    return st


def _with_away_ms(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 -> 2: stays gained ``away_ms`` (nothing was known away before)."""
    keyed = data.get("_state")
    items = keyed.data.get("items", []) if isinstance(keyed, Snapshot) else []
    for _key, stay in items:
        if isinstance(stay, _Stay) and not hasattr(stay, "away_ms"):
            stay.away_ms, stay.away_far = 0, 0
    return data


class StopDetector(Detector):
    kinds = ("track.stop",)
    event_type = "gps"

    STATE = ("_state",)
    STATE_VERSION = 2
    MIGRATIONS: ClassVar[dict[int, Callable[[dict[str, Any]], dict[str, Any]]]] = {1: _with_away_ms}

    def __init__(self, p: StopParams, zones: ZoneCatalog) -> None:
        self.p = p
        self._allowed: frozenset[str] = frozenset()
        self.set_zones(zones)
        self._state: KeyedState[_Stay] = KeyedState(p.idle_evict_s * 1000)
        self._gap_ms = p.observed_gap_s * 1000

    def set_zones(self, zones: ZoneCatalog) -> None:
        self._allowed = frozenset(
            zid for zid, meta in zones.items() if meta.kind in self.p.allowed_zone_kinds
        )

    def on_event(self, ev: Event, out: list[Alert]) -> None:
        if not isinstance(ev, GpsEvent) or ev.cls not in self.p.classes:
            return
        p, ts = self.p, ev.ts_ms
        fix: _Fix = (ts, ev.lon, ev.lat, any(z in self._allowed for z in ev.zones), ev.id)
        self._state.take_stale(ev.entity, ts)
        st = self._state.get(ev.entity, ts)
        if st is None:
            self._state.put(ev.entity, _stay_from([fix], None, self._gap_ms), ts)
            return
        if ts <= st.last_any:
            return  # out of order within the allowed bound: it adds nothing to a stay
        ep = st.episode
        if ep is not None and not ep.left:
            ep.left = haversine_m(ep.lon, ep.lat, ev.lon, ev.lat) > p.rejoin_m
        if ts - st.last_any > p.max_bridge_s * 1000:
            # A silence too long to assume the vehicle stood through it: a new stay. It
            # was not seen elsewhere, so at the same place it continues an alerted episode.
            if st.alerted:
                st.episode, st.alerted = _Episode(st.lon, st.lat, ts), False
            elif st.episode is not None:
                st.episode.last_ts = ts
            st = self._restart(ev.entity, st, [fix])
        elif (off_m := haversine_m(st.lon, st.lat, ev.lon, ev.lat)) > p.radius_m or (
            ev.speed_kmh is not None and ev.speed_kmh > p.max_speed_kmh
        ):
            st.last_any = ts
            if off_m > 2 * p.radius_m:
                st.away_far += 1
            if st.away_n == 0:
                st.away_since = ts
            st.away_n += 1
            # The trailing away fixes near the newest one seed the next stay.
            trail, k = st.trail, len(st.trail)
            while k and haversine_m(trail[k - 1][1], trail[k - 1][2], ev.lon, ev.lat) <= (
                p.radius_m
            ):
                k -= 1
            st.trail = trail[k:] + [fix]
            if len(st.trail) > TRAIL_MAX:
                st.trail = [st.trail[0], *st.trail[2::2]]
            if st.away_n < p.leave_fixes or ts - st.away_since < p.leave_s * 1000:
                return
            st = self._restart(ev.entity, st, st.trail)
        else:
            st.add(fix, self._gap_ms)
        self._check(ev, st, out)

    def _restart(self, entity: str, st: _Stay, seed: list[_Fix]) -> _Stay:
        episode = _Episode(st.lon, st.lat, st.last_ts) if st.alerted else st.episode
        new = _stay_from(list(seed), episode, self._gap_ms)
        self._state.put(entity, new, seed[-1][0])
        return new

    def _check(self, ev: GpsEvent, st: _Stay, out: list[Alert]) -> None:
        p = self.p
        duration_ms = st.last_ts - st.first_ts
        if st.alerted or st.allowed or duration_ms - st.away_ms < p.min_stop_s * 1000:
            return
        st.alerted = True
        ep = st.episode
        if (
            ep is not None
            and (not ep.left or st.first_ts - ep.last_ts <= p.rejoin_s * 1000)
            and haversine_m(ep.lon, ep.lat, st.lon, st.lat) <= p.rejoin_m
        ):
            return  # a re-stop at the same place: its episode has alerted already
        out.append(
            Alert.make(
                "track.stop",
                p.severity,
                ev.entity,
                "gps",
                ev.zones[0] if ev.zones else None,
                st.lon,
                st.lat,
                ts_ms=ev.ts_ms,
                first_ts_ms=st.first_ts,
                evidence={
                    "class": ev.cls,
                    "cargo": ev.cargo,
                    "duration_s": duration_ms // 1000,
                    "observed_s": (duration_ms - st.silent_ms - st.away_ms) // 1000,
                    "silent_s": st.silent_ms // 1000,
                    "away_s": st.away_ms // 1000,
                    # more of the stay inferred across silences than seen: weaker evidence
                    "across_silence": 2 * st.silent_ms > duration_ms - st.away_ms,
                    "radius_m": p.radius_m,
                    "fixes": st.fixes,
                    "first_event_id": st.first_id,
                    "event_id": ev.id,
                },
            )
        )

    def on_watermark(self, wm_ms: int, out: list[Alert]) -> None:
        self._state.evict_idle(wm_ms)

    def live_keys(self) -> int:
        return len(self._state)

    @classmethod
    def contract_case(cls, seed: int) -> ContractCase:
        """Three hazmat trucks drive; from fix 30 one stands by the road for 20 minutes,
        with GPS jitter and one fix 120 m off."""
        rng = random.Random(seed)
        t0, period = 1_767_225_600_000, 15_000
        events: list[Event] = []
        anomaly_from = -1
        for k in range(110):
            if k == 30:
                anomaly_from = len(events)
            for v in range(3):
                stopped = v == 0 and k >= 30
                if stopped:
                    off = 0.0013 if k == 50 else rng.uniform(-5e-5, 5e-5)
                    lon, lat, kmh = 121.2 + off, 32.0, rng.uniform(0.0, 1.0)
                else:
                    lon, lat, kmh = 121.0 + k * 0.003, 32.0 + v * 0.01, rng.uniform(40, 60)
                ts = t0 + k * period + v * 900
                events.append(GpsEvent(ts, f"hz-{v}", lon, lat, "hazmat_truck", kmh, id=f"e{k}"))
        det = cls(StopParams(classes=("hazmat_truck",), radius_m=50, min_stop_s=900), {})
        return ContractCase(det, events, frozenset(cls.kinds), anomaly_from)
