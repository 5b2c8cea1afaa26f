"""``track.rendezvous``: a tanker and another vehicle stopped side by side (roaming fence).

Illegal mobile refuelling looks like a tanker and a truck standing within
``radius_m`` of each other for ``min_together_s`` or longer, outside chemical
parks and approved stops. It is cross-entity, and entities are sharded by id,
so it runs in two halves:

1. :class:`SpanReporter`, inside each detection shard, follows every vehicle of
   a watched class and reports its *stop span* ``[start, end]`` at an anchor
   point once it has stood still (within ``still_radius_m``, one jittered fix
   tolerated) for ``min_still_s`` outside allowed zones, then again each time
   the span grew by ``report_every_s``. Reports are few and small.
2. :class:`RendezvousMatcher`, in a separate cross-key stage, receives each
   span in its grid cell and in the neighbouring cells it lies within
   ``radius_m`` of (:func:`cells_for`; cells are at least ``cell_m`` >=
   ``radius_m`` wide, so at most four), keyed onto a fixed number of stage
   shards. A pair is judged only in the *home* cell of its subject (the
   tanker; of two tankers, the smaller id), so each pair is found exactly once.

A pair alerts when the overlap of the two spans reaches ``min_together_s``:
``first_ts`` = the later start, ``ts`` = ``first_ts + min_together_s``. Spans
only grow, so whether a pair alerts, and the alert itself, depend only on the
events, never on the order in which shards' reports arrive: any batching or
worker count gives the same alerts. The matcher forgets a span only once no
report still to come can pair with it (``retention_s``, at least
``idle_evict_s`` + ``max(min_still_s, report_every_s)`` + the flow's
``max_out_of_order_s`` after it ended), measured on the *slowest* shard's
watermark (:meth:`RendezvousMatcher.progress`): every shard reports its
watermark after its spans, so no span still to come can end before it (less the
lateness the flow accepts). Forgetting thus depends on event time alone, not on
that order nor on how much event time one batch holds. **One alert per pair**: a tanker meeting
two trucks gives two alerts, both with the tanker as subject and each naming
its partner in the evidence (the id hashes both vehicles); two trucks alone
never alert. The incident stage merges the pairs of one meeting by place and
time.

Timeline (T = 8 min, R = 30 m)::

    t(min)   0    2    4    6    8    10   12   14
    tanker   [stopped at P ..................]
    truck         [stopped 12 m from P ...........]
    alert                             ^ ts 10, first_ts 2 (the truck's start)

>>> from citywatch.detectors.events import GpsEvent
>>> det = RendezvousDetector(RendezvousParams(min_together_s=480, min_still_s=60), {})
>>> out = []
>>> for s in range(0, 15 * 60, 15):
...     det.on_event(GpsEvent(s * 1000, "tk-1", 121.0, 32.0, "tanker", 0.0), out)
...     if s >= 120:
...         det.on_event(GpsEvent(s * 1000 + 500, "hz-9", 121.0001, 32.0, "hazmat_truck", 0.0), out)
>>> [(a.subject, a.evidence["partner"], a.first_ts_ms // 60_000, a.ts_ms // 60_000) for a in out]
[('tk-1', 'hz-9', 2, 10)]
"""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass, field

from citywatch.detectors import params
from citywatch.detectors.alerts import Alert, alert_id
from citywatch.detectors.base import ContractCase, Detector, KeyedState, ZoneCatalog
from citywatch.detectors.events import Event, GpsEvent
from citywatch.detectors.state import Stateful, TuplePickled
from citywatch.geo.distance import haversine_m

OWNER = "track.rendezvous"
M_PER_DEG = 111_195.0
# Cells are ``cell_m`` tall and ``cell_m / (M_PER_DEG * 0.5)`` degrees of longitude
# wide: at least ``cell_m`` wide anywhere below 60 degrees of latitude.
LON_SCALE = 0.5

Cell = tuple[int, int]


@dataclass(frozen=True, slots=True, kw_only=True)
class RendezvousParams:
    """``[track.rendezvous]``: who meets whom, how close, how long, and the stage's grid."""

    tanker_classes: tuple[str, ...] = ("tanker",)
    partner_classes: tuple[str, ...] = ("hazmat_truck", "tanker", "muck_truck")
    radius_m: float = 30.0
    min_together_s: int = 480
    still_radius_m: float = 30.0
    max_still_kmh: float = 5.0
    min_still_s: int = 60
    report_every_s: int = 30
    allowed_zone_kinds: tuple[str, ...] = ("chemical_park", "approved_stop")
    cell_m: float = 500.0
    stage_shards: int = 4
    retention_s: int = 3 * 3600
    severity: str = "orange"
    idle_evict_s: int = 3600

    def __post_init__(self) -> None:
        for name in ("radius_m", "min_together_s", "still_radius_m", "max_still_kmh"):
            params.positive(OWNER, name, getattr(self, name))
        for name in ("min_still_s", "report_every_s", "cell_m", "stage_shards"):
            params.positive(OWNER, name, getattr(self, name))
        params.positive(OWNER, "retention_s", self.retention_s)
        params.positive(OWNER, "idle_evict_s", self.idle_evict_s)
        params.severity(OWNER, self.severity)
        if not self.tanker_classes:
            msg = f'{OWNER}: "tanker_classes" must name at least one class, got ()'
            raise ValueError(msg)
        if self.cell_m < self.radius_m:
            msg = (
                f'{OWNER}: "cell_m" must be >= radius_m ({self.radius_m:g}), got '
                f"{self.cell_m:g}; a grid cell must be at least as wide as the meeting radius"
            )
            raise ValueError(msg)
        if self.retention_s * 1000 <= self.min_together_s * 1000 * 2:
            msg = f'{OWNER}: "retention_s" must exceed 2 x min_together_s, got {self.retention_s}'
            raise ValueError(msg)

    @property
    def classes(self) -> frozenset[str]:
        return frozenset(self.tanker_classes) | frozenset(self.partner_classes)


@dataclass(frozen=True, slots=True)
class StopSpan:
    """A vehicle stood still at (lon, lat) from ``start_ms`` through at least ``end_ms``."""

    entity: str
    cls: str
    lon: float
    lat: float
    start_ms: int
    end_ms: int
    zone: str | None = None
    event_id: str | None = None


def cell_of(lon: float, lat: float, cell_m: float) -> Cell:
    """The grid cell of a point.

    >>> cell_of(121.0, 32.0, 500.0)
    (13454, 7116)
    """
    dlat = cell_m / M_PER_DEG
    return (math.floor(lon / (dlat / LON_SCALE)), math.floor(lat / dlat))


def cells_for(lon: float, lat: float, cell_m: float, radius_m: float) -> list[tuple[Cell, bool]]:
    """The home cell of a point (True) and the neighbours within ``radius_m`` of it (False).

    >>> cells_for(121.0, 32.0, 500.0, 30.0)
    [((13454, 7116), True)]
    >>> cells_for(121.0, 32.0023, 500.0, 30.0)  # 4 m below the next row of cells
    [((13454, 7116), True), ((13454, 7117), False)]
    """
    dlat = cell_m / M_PER_DEG
    dlon = dlat / LON_SCALE
    cx, cy = math.floor(lon / dlon), math.floor(lat / dlat)
    reach = radius_m * 1.05 + 1.0  # margin for the flat approximation
    m_lon = M_PER_DEG * math.cos(math.radians(lat))
    xs = [0]
    if (lon - cx * dlon) * m_lon < reach:
        xs.append(-1)
    if ((cx + 1) * dlon - lon) * m_lon < reach:
        xs.append(1)
    ys = [0]
    if (lat - cy * dlat) * M_PER_DEG < reach:
        ys.append(-1)
    if ((cy + 1) * dlat - lat) * M_PER_DEG < reach:
        ys.append(1)
    return [((cx + x, cy + y), x == 0 and y == 0) for x in xs for y in ys]


def stage_key(cell: Cell, shards: int) -> str:
    """The stage shard of a cell: stable across processes and runs."""
    return stage_name(zlib.crc32(f"{cell[0]},{cell[1]}".encode()) % shards)


def stage_name(i: int) -> str:
    """The key of stage shard ``i``."""
    return f"rdv-{i:03d}"


@dataclass(slots=True)
class _Still(TuplePickled):
    lon: float
    lat: float
    start_ms: int
    last_ms: int
    zone: str | None
    event_id: str | None
    allowed: bool
    outliers: int = 0
    reported_ms: int | None = None
    cand: _Still | None = None


class SpanReporter(Stateful):
    """Per-shard half: stop spans of watched vehicles outside allowed zones."""

    event_type = "gps"

    STATE = ("_state",)

    def __init__(self, p: RendezvousParams, zones: ZoneCatalog) -> None:
        self.p = p
        self._classes = p.classes
        self._allowed: frozenset[str] = frozenset()
        self.set_zones(zones)
        self._state: KeyedState[_Still] = KeyedState(p.idle_evict_s * 1000)

    def set_zones(self, zones: ZoneCatalog) -> None:
        kinds = self.p.allowed_zone_kinds
        self._allowed = frozenset(z for z, meta in zones.items() if meta.kind in kinds)

    def on_event(self, ev: Event, spans: list[StopSpan]) -> None:
        if not isinstance(ev, GpsEvent) or ev.cls not in self._classes:
            return
        ts = ev.ts_ms
        in_allowed = any(z in self._allowed for z in ev.zones)
        self._state.take_stale(ev.entity, ts)  # as a watermark would have evicted it
        st = self._state.get(ev.entity, ts)
        if st is None:
            self._state.put(ev.entity, self._new(ev, in_allowed), ts)
            return
        if ts <= st.last_ms:
            return
        moving = ev.speed_kmh is not None and ev.speed_kmh > self.p.max_still_kmh
        if not moving and haversine_m(st.lon, st.lat, ev.lon, ev.lat) <= self.p.still_radius_m:
            st.last_ms, st.outliers = ts, 0
            st.allowed = st.allowed or in_allowed
        elif st.outliers < 1 and not moving:
            st.outliers += 1  # one jittered fix does not end a stop ...
            st.cand = self._new(ev, in_allowed)
            return
        else:  # ... two do: the stop (if any) restarts at the first of them
            cand = st.cand if not moving and st.outliers > 0 else None
            if cand is not None and (
                haversine_m(cand.lon, cand.lat, ev.lon, ev.lat) <= self.p.still_radius_m
            ):
                cand.last_ms, cand.allowed = ts, cand.allowed or in_allowed
                self._state.put(ev.entity, cand, ts)
            else:  # moving on: this fix is the next candidate anchor (reuse the object)
                st.lon, st.lat, st.start_ms, st.last_ms = ev.lon, ev.lat, ts, ts
                st.zone, st.event_id = (ev.zones[0] if ev.zones else None), ev.id
                st.allowed, st.outliers, st.reported_ms, st.cand = in_allowed, 0, None, None
            return
        p = self.p
        if st.allowed or ts - st.start_ms < p.min_still_s * 1000:
            return
        if st.reported_ms is None or ts - st.reported_ms >= p.report_every_s * 1000:
            st.reported_ms = ts
            spans.append(
                StopSpan(ev.entity, ev.cls, st.lon, st.lat, st.start_ms, ts, st.zone, st.event_id)
            )

    @staticmethod
    def _new(ev: GpsEvent, in_allowed: bool) -> _Still:
        zone = ev.zones[0] if ev.zones else None
        return _Still(ev.lon, ev.lat, ev.ts_ms, ev.ts_ms, zone, ev.id, in_allowed)

    def on_watermark(self, wm_ms: int) -> None:
        self._state.evict_idle(wm_ms)

    def live_keys(self) -> int:
        return len(self._state)


@dataclass(slots=True)
class _Known:
    span: StopSpan
    end_ms: int
    home: bool
    alerted: set[tuple[str, int]] = field(default_factory=set)


class RendezvousMatcher(Stateful):
    """Cross-key half: the spans of some grid cells, and the pairs found in them."""

    STATE_VERSION = 2  # 2: the clock is the slowest producer's watermark (``_progress``)
    STATE = ("_cells", "_progress", "_swept_ms", "_spans")
    MIGRATIONS = {  # 1 -> 2: the old clock (latest span end) is not a bound; start afresh
        1: lambda d: {k: v for k, v in d.items() if k != "_clock_ms"} | {"_progress": {}}
    }

    def __init__(self, p: RendezvousParams, disorder_ms: int = 0, producers: int = 1) -> None:
        """``disorder_ms``: how late a span may still arrive behind the watermark its
        producer last reported (the flow's ``max_out_of_order_s``); ``producers``: how
        many producers (detection shards) report spans and watermarks."""
        self.p = p
        # A span is forgotten once no report still to come can pair with it: a report
        # still to come ends at most disorder_ms before the slowest producer's last
        # watermark; a vehicle's reports are at most idle_evict_s + max(min_still_s,
        # report_every_s) apart (the reporter forgets a vehicle idle longer), and so
        # is a new span's start from its first report. The latest span end seen is no
        # such bound: one shard's spans of a batch may run hours ahead of another's.
        settle_s = p.idle_evict_s + max(p.min_still_s, p.report_every_s)
        self._horizon_ms = max(p.retention_s * 1000, settle_s * 1000 + disorder_ms)
        self._producers = producers
        self._tankers = frozenset(p.tanker_classes)
        self._partners = frozenset(p.partner_classes) | self._tankers
        self._cells: dict[Cell, dict[tuple[str, int], _Known]] = {}
        self._progress: dict[str, int] = {}
        self._swept_ms = 0
        self._spans = 0

    def add(self, cell: Cell, home: bool, span: StopSpan, out: list[Alert]) -> None:
        spans = self._cells.setdefault(cell, {})
        key = (span.entity, span.start_ms)
        known = spans.get(key)
        if known is None:
            known = spans[key] = _Known(span, span.end_ms, home)
            self._spans += 1
        elif span.end_ms > known.end_ms:
            known.end_ms = span.end_ms
        else:
            return
        for other in spans.values():
            if other.span.entity != span.entity:
                self._judge(known, other, out)

    def progress(self, producer: str, wm_ms: int) -> None:
        """``producer`` has reported every span of event time before ``wm_ms`` (call it
        after adding that producer's spans of the same activation). Once every
        producer has reported, spans are forgotten on the slowest one's watermark."""
        progress = self._progress
        if wm_ms <= progress.get(producer, -(2**62)):
            return
        progress[producer] = wm_ms
        if len(progress) < self._producers:
            return
        clock = min(progress.values())
        if clock - self._swept_ms >= 60_000:
            self._sweep(clock)

    def _judge(self, a: _Known, b: _Known, out: list[Alert]) -> None:
        sa, sb = a.span, b.span
        a_tanker, b_tanker = sa.cls in self._tankers, sb.cls in self._tankers
        if a_tanker and b_tanker:
            subj, part = (a, b) if sa.entity < sb.entity else (b, a)
        elif a_tanker and sb.cls in self._partners:
            subj, part = a, b
        elif b_tanker and sa.cls in self._partners:
            subj, part = b, a
        else:
            return
        if not subj.home:
            return
        first = max(subj.span.start_ms, part.span.start_ms)
        together_ms = self.p.min_together_s * 1000
        if min(subj.end_ms, part.end_ms) - first < together_ms:
            return
        pkey = (part.span.entity, part.span.start_ms)
        if pkey in subj.alerted:
            return
        dist_m = haversine_m(subj.span.lon, subj.span.lat, part.span.lon, part.span.lat)
        if dist_m > self.p.radius_m:
            return
        subj.alerted.add(pkey)
        out.append(self._alert(subj.span, part.span, first, together_ms, dist_m))

    def _alert(
        self, s: StopSpan, o: StopSpan, first_ms: int, together_ms: int, dist_m: float
    ) -> Alert:
        kind = "track.rendezvous"
        return Alert(
            alert_id(kind, f"{s.entity}+{o.entity}", s.zone, first_ms),
            kind,
            self.p.severity,
            s.entity,
            "gps",
            s.zone,
            s.lon,
            s.lat,
            first_ms + together_ms,
            first_ms,
            {
                "class": s.cls,
                "partner": o.entity,
                "partner_class": o.cls,
                "partner_lon": o.lon,
                "partner_lat": o.lat,
                "distance_m": round(dist_m, 1),
                "min_together_s": together_ms // 1000,
                "stopped_since_ms": s.start_ms,
                "partner_stopped_since_ms": o.start_ms,
                "event_ids": [s.event_id, o.event_id],
            },
        )

    def _sweep(self, clock_ms: int) -> None:
        """Forget spans that ended more than the horizon (``retention_s``, or longer
        where reports may still come, see ``__init__``) before ``clock_ms``, the
        slowest producer's watermark."""
        limit = clock_ms - self._horizon_ms
        for cell in list(self._cells):
            spans = self._cells[cell]
            for key in [k for k, kn in spans.items() if kn.end_ms < limit]:
                del spans[key]
                self._spans -= 1
            if not spans:
                del self._cells[cell]
        self._swept_ms = clock_ms

    def live_spans(self) -> int:
        return self._spans


class RendezvousDetector(Detector):
    """Both halves in one process: the reference semantics, for tests and benchmarks.

    The flow runs the halves apart (``flows/stage_rendezvous.py``) and gives the
    same alerts.
    """

    kinds = ("track.rendezvous",)
    event_type = "gps"

    STATE = ("reporter", "matcher", "_spans")

    def __init__(self, p: RendezvousParams, zones: ZoneCatalog) -> None:
        self.p = p
        self.reporter = SpanReporter(p, zones)
        self.matcher = RendezvousMatcher(p)
        self._spans: list[StopSpan] = []

    def set_zones(self, zones: ZoneCatalog) -> None:
        self.reporter.set_zones(zones)

    def on_event(self, ev: Event, out: list[Alert]) -> None:
        spans = self._spans
        self.reporter.on_event(ev, spans)
        if spans:
            for span in spans:
                for cell, home in cells_for(span.lon, span.lat, self.p.cell_m, self.p.radius_m):
                    self.matcher.add(cell, home, span, out)
            spans.clear()

    def on_watermark(self, wm_ms: int, out: list[Alert]) -> None:
        self.reporter.on_watermark(wm_ms)
        self.matcher.progress("reporter", wm_ms)

    def live_keys(self) -> int:
        return self.reporter.live_keys()

    @classmethod
    def contract_case(cls, seed: int) -> ContractCase:
        """Trucks drive past each other; from fix 40 a tanker and a truck stop side by side."""
        rng = random.Random(seed)
        t0, period = 1_767_225_600_000, 15_000
        events: list[Event] = []
        anomaly_from = -1
        for k in range(120):
            if k == 40:
                anomaly_from = len(events)
            for v, (ent, vcls) in enumerate((("tk-1", "tanker"), ("hz-2", "hazmat_truck"))):
                jitter = rng.uniform(-3e-5, 3e-5)
                if k < 40:  # driving on parallel roads 1 km apart
                    lon, lat, kmh = 121.0 + k * 0.002, 32.0 + v * 0.01, 50.0
                else:  # stopped 15 m apart
                    lon, lat, kmh = 121.1 + v * 0.00016 + jitter, 32.0, 0.0
                ts = t0 + k * period + v * 500
                events.append(GpsEvent(ts, ent, lon, lat, vcls, kmh, id=f"e{k}-{v}"))
        det = cls(RendezvousParams(), {})
        return ContractCase(det, events, frozenset(cls.kinds), anomaly_from)
