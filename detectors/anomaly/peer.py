"""``sensor.anomaly`` with a ``peer`` block: dwellings that stand out from their peers.

The group-rental signal: a flat let to many tenants uses several times the
water and power of the flats around it. Each dwelling's meters
(``hh-<estate>-<unit>-<water|power|gas>``, copies ``...-x001``) form one
consumption vector, an EW mean per kind, kept in numpy arrays (one row per
dwelling). Each reading of a dwelling compares its vector, in log space, with
the robust centre (median) and spread (1.4826 MAD, floored) of its peers: the
dwellings of the same estate, or of the whole class of dwellings when the
estate has too few warmed-up ones. A peer anomaly needs the mean z of the
``min_kinds`` highest kinds beyond ``z_limit``, each of them beyond half of it.

Protection: a dwelling flagged as anomalous is left out of its peers' statistics
until it returns to normal, so a cluster of group rentals in one building does
not drag the norm up and hide itself. A per-class river ``HalfSpaceTrees``
(one model for the whole class, never one per dwelling: ~1 MB each) scores each
dwelling's peer-normalised vector before learning it, and does not learn from
flagged dwellings for the same reason; its score is reported as evidence.

>>> from citywatch.detectors.events import SensorEvent
>>> det = PeerGroupDetector(PeerParams(hst=False))
>>> out = []
>>> for unit in range(1, 7):
...     scale = 6.0 if unit == 6 else 1.0 + unit / 20
...     for kind, base in (("water", 0.02), ("power", 0.3), ("gas", 0.02)):
...         k = 1.0 if kind == "gas" else scale
...         det.on_event(SensorEvent(unit * 1000, f"hh-a-{unit:02d}-{kind}", kind, base * k), out)
>>> [(a.subject, sorted(a.evidence["contributing"])) for a in out]
[('hh-a-06', ['power', 'water'])]
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterable
from typing import Any

import numpy as np

from citywatch.detectors.alerts import Alert
from citywatch.detectors.anomaly.bank import DAY_MS, HOUR_MS
from citywatch.detectors.anomaly.params import PeerParams, score_of_z
from citywatch.detectors.anomaly.sensor import utc_offset_s
from citywatch.detectors.anomaly.slots import SlotTable
from citywatch.detectors.base import ContractCase, Detector
from citywatch.detectors.events import Event, SensorEvent
from citywatch.detectors.state import Snapshot

TINY = 1e-9
CLASS = "class"


class PeerGroupDetector(Detector):
    kinds = ("sensor.anomaly",)
    event_type = "sensor"

    def __init__(self, p: PeerParams | None = None, *, timezone: str = "Asia/Shanghai") -> None:
        self.p = p if p is not None else PeerParams()
        self._re = re.compile(self.p.id_pattern)
        self._kind_ix = {k: i for i, k in enumerate(self.p.kinds)}
        self.utc_offset_ms = utc_offset_s(timezone) * 1000
        self._groups: dict[str, int] = {}
        self._zones: dict[str, int] = {}
        self._zone_names: list[str | None] = []
        k = len(self.p.kinds)
        self._rows = SlotTable(
            {
                "mean": (np.float64, (k,)),
                "cnt": (np.int32, (k,)),
                "last_ts": (np.int64, ()),
                "group": (np.int32, ()),
                "zone": (np.int32, ()),
                "lon": (np.float64, ()),
                "lat": (np.float64, ()),
                "live": (np.bool_, ()),
                "flagged": (np.bool_, ()),
                "alert_day": (np.int32, ()),
                "day_alerts": (np.int16, ()),
            },
            capacity=16,
        )
        self._a = self._rows.cols
        # group id (or -1 for the class) -> ((epoch, generation), centre, scale, members)
        self._stats: dict[int, tuple[tuple[int, int], np.ndarray, np.ndarray, int]] = {}
        self._hst: Any = None
        if self.p.hst:
            from river.anomaly import HalfSpaceTrees

            self._hst = HalfSpaceTrees(
                n_trees=self.p.hst_trees,
                height=self.p.hst_height,
                window_size=self.p.hst_window,
                seed=self.p.seed,
            )
        self._next_evict_ms: int | None = None
        # bumped when the set of comparable dwellings of a group changes (its stats
        # must refresh); -1 is the whole class
        self._gen: dict[int, int] = {}
        self._members: dict[int, list[int]] = {}
        # Not state: each group's comparable dwellings and their log means as of its
        # last refresh, and the rows changed since, so that a refresh (on every change
        # of a group while it fills) recomputes the rows that changed, not all of them.
        self._pools: dict[int, _Pool] = {}
        self._touched: dict[int, set[int]] = {}

    STATE = (
        "_groups",
        "_zones",
        "_zone_names",
        "_rows",
        "_stats",
        "_next_evict_ms",
        "_gen",
        "_members",
    )

    def state(self) -> Snapshot:
        snap = super().state()
        snap.data["hst"] = hst_state(self._hst) if self._hst is not None else None
        return snap

    def restore(self, snap: Snapshot) -> None:
        super().restore(snap)
        self._pools.clear()  # rebuilt from the rows when next needed
        self._touched.clear()
        saved = snap.data.get("hst")
        if self._hst is not None and saved is not None:
            hst_restore(self._hst, saved)

    def _slot_of(self, dwelling: str, group: str) -> int:
        i, new = self._rows.slot(dwelling)
        if new:
            gid = self._groups.setdefault(group, len(self._groups))
            self._a["group"][i] = gid
            self._a["live"][i] = True
            self._members.setdefault(gid, []).append(i)
        return i

    def dwelling_of(self, sensor: str) -> tuple[str, str, str] | None:
        """``(dwelling, group, kind)`` of a household meter id, or None.

        >>> PeerGroupDetector(PeerParams(hst=False)).dwelling_of("hh-xingfu-02-gas-x003")
        ('hh-xingfu-02-x003', 'xingfu', 'gas')
        """
        m = self._re.match(sensor)
        if m is None or m["kind"] not in self._kind_ix:
            return None
        return f"hh-{m['group']}-{m['unit']}{m['copy'] or ''}", m["group"], m["kind"]

    def live_keys(self) -> int:
        return len(self._rows)

    def on_event(self, ev: Event, out: list[Alert]) -> None:
        if not isinstance(ev, SensorEvent):
            return
        who = self.dwelling_of(ev.sensor)
        if who is None or ev.kind != who[2]:
            return
        dwelling, group, kind = who
        a, p = self._a, self.p
        i = self._slot_of(dwelling, group)
        k = self._kind_ix[kind]
        c = int(a["cnt"][i, k])
        w = max(p.alpha, 1.0 / (c + 1))
        a["mean"][i, k] += w * (max(ev.value, 0.0) - a["mean"][i, k])
        a["cnt"][i, k] = min(c + 1, 1_000_000)
        if c + 1 == p.min_readings and int(a["cnt"][i].min()) == p.min_readings:
            self._bump(int(a["group"][i]))
        a["last_ts"][i] = max(int(a["last_ts"][i]), ev.ts_ms)
        if ev.lon is not None and ev.lat is not None:
            a["lon"][i], a["lat"][i] = ev.lon, ev.lat
        zone = ev.zones[0] if ev.zones else None
        if zone is not None and zone not in self._zones:
            self._zones[zone] = len(self._zone_names)
            self._zone_names.append(zone)
        a["zone"][i] = self._zones[zone] + 1 if zone is not None else 0
        self._touch(int(a["group"][i]), i)
        if int(a["cnt"][i].min()) >= p.min_readings:
            self._evaluate(i, dwelling, group, ev, out)

    def _touch(self, gid: int, row: int) -> None:
        if gid in self._pools:
            self._touched.setdefault(gid, set()).add(row)

    def _pool_logs(self, gid: int) -> np.ndarray:
        """The log means of group ``gid``'s comparable dwellings (live, not flagged, every
        kind warmed up), in no particular order: the pool of its last refresh with the
        rows changed since recomputed (the same values as computing them all)."""
        pool = self._pools.get(gid)
        if pool is None:
            pool = self._pools[gid] = _Pool(len(self.p.kinds))
            todo: Iterable[int] = self._members.get(gid, [])
        else:
            todo = self._touched.get(gid, ())
        self._touched.pop(gid, None)
        rows = np.fromiter(todo, dtype=np.int64)
        if rows.size:
            a = self._a
            keep = (
                a["live"][rows]
                & (a["group"][rows] == gid)
                & ~a["flagged"][rows]
                & (a["cnt"][rows].min(axis=1) >= self.p.min_readings)
            )
            pool.update(
                rows[keep].tolist(),
                np.log(np.maximum(a["mean"][rows[keep]], TINY)),
                rows[~keep].tolist(),
            )
        return pool.logs[: len(pool.rows)]

    def _bump(self, gid: int) -> None:
        self._gen[gid] = self._gen.get(gid, 0) + 1
        self._gen[-1] = self._gen.get(-1, 0) + 1

    def _peer_stats(self, gid: int, ts_ms: int) -> tuple[np.ndarray, np.ndarray, int] | None:
        """Centre and spread of a group's comparable dwellings (``-1``: the class),
        refreshed each ``refresh_s`` of event time and when the group's membership
        changed (the class only while it is still too small: it is costly)."""
        epoch = (ts_ms // (self.p.refresh_s * 1000), self._gen.get(gid, 0))
        cached = self._stats.get(gid)
        stale = (
            cached is None
            or cached[0][0] != epoch[0]
            or (cached[0][1] != epoch[1] and (gid >= 0 or cached[3] < self.p.min_peers + 1))
        )
        if stale:
            a = self._a
            if gid >= 0:
                logs = self._pool_logs(gid)
            else:
                rows = np.flatnonzero(a["live"])
                ok = ~a["flagged"][rows] & (a["cnt"][rows].min(axis=1) >= self.p.min_readings)
                logs = np.log(np.maximum(a["mean"][rows[ok]], TINY))
            if logs.shape[0] == 0:
                centre = scale = np.zeros(len(self.p.kinds))
            else:
                centre, mad = median_and_mad(logs)
                scale = np.maximum(1.4826 * mad, self.p.min_log_scale)
            cached = (epoch, centre, scale, int(logs.shape[0]))
            self._stats[gid] = cached
        assert cached is not None
        _, centre, scale, members = cached
        if members < self.p.min_peers + 1:
            return None
        return centre, scale, members

    def _evaluate(
        self, i: int, dwelling: str, group: str, ev: SensorEvent, out: list[Alert]
    ) -> None:
        a, p = self._a, self.p
        gid = int(a["group"][i])
        scope, stats = group, self._peer_stats(gid, ev.ts_ms)
        if stats is None:
            scope, stats = CLASS, self._peer_stats(-1, ev.ts_ms)
            if stats is None:
                return
        centre, scale, members = stats
        x = np.log(np.maximum(a["mean"][i], TINY))
        z = (x - centre) / scale
        # the combined signal: the top min_kinds kinds together beyond z_limit, each
        # at least half of it (water *and* power up, not one odd meter)
        high = z >= 0.5 * p.z_limit
        top = sorted(z.tolist(), reverse=True)[: p.min_kinds]
        combined = sum(top) / len(top)
        hst_score = None
        if self._hst is not None:
            feats = {
                k: float(min(max((z[j] + 6.0) / 12.0, 0.0), 1.0)) for k, j in self._kind_ix.items()
            }
            hst_score = float(self._hst.score_one(feats))
            if not a["flagged"][i]:
                self._hst.learn_one(feats)
        if int(high.sum()) < p.min_kinds or combined < p.z_limit:
            if a["flagged"][i] and combined < 0.7 * p.z_limit:
                a["flagged"][i] = False
                self._touch(gid, i)
                self._bump(gid)
            return
        if a["flagged"][i]:
            return
        a["flagged"][i] = True
        self._touch(gid, i)
        self._bump(gid)
        day = (ev.ts_ms + self.utc_offset_ms) // DAY_MS
        if a["alert_day"][i] != day:
            a["alert_day"][i], a["day_alerts"][i] = day, 0
        if a["day_alerts"][i] >= p.max_alerts_per_dwelling_day:
            return
        a["day_alerts"][i] += 1
        score = score_of_z(combined, p.z_half)
        kinds = self.p.kinds
        zone_ix = int(a["zone"][i])
        lon, lat = float(a["lon"][i]), float(a["lat"][i])
        out.append(
            Alert.make(
                "sensor.anomaly",
                p.severity,
                dwelling,
                "sensor",
                self._zone_names[zone_ix - 1] if zone_ix else None,
                lon if lon or lat else ev.lon,
                lat if lon or lat else ev.lat,
                ts_ms=ev.ts_ms,
                first_ts_ms=ev.ts_ms,
                evidence={
                    "sensor_kind": "household",
                    "model": "peer-group",
                    "score": round(score, 4),
                    "combined_z": round(combined, 2),
                    "value": {k: round(float(a["mean"][i, j]), 6) for j, k in enumerate(kinds)},
                    "expected_range": {
                        k: [
                            round(math.exp(centre[j] - p.z_limit * scale[j]), 6),
                            round(math.exp(centre[j] + p.z_limit * scale[j]), 6),
                        ]
                        for j, k in enumerate(kinds)
                    },
                    "contributing": {
                        kinds[j]: round(float(z[j]), 2) for j in np.flatnonzero(high).tolist()
                    },
                    "meters": [f"{dwelling}:{k}" for k in kinds],
                    "event_id": ev.id,
                    "peer": {
                        "group": group,
                        "scope": "estate" if scope == group else CLASS,
                        "peers": members,
                        "median": {k: round(math.exp(centre[j]), 6) for j, k in enumerate(kinds)},
                        "z": {k: round(float(z[j]), 2) for j, k in enumerate(kinds)},
                        "hst_score": None if hst_score is None else round(hst_score, 4),
                    },
                },
            )
        )

    def on_watermark(self, wm_ms: int, out: list[Alert]) -> None:
        if self._next_evict_ms is None:
            self._next_evict_ms = wm_ms + HOUR_MS
            return
        if wm_ms < self._next_evict_ms:
            return
        self._next_evict_ms = wm_ms + HOUR_MS
        a = self._a
        for _, i in self._rows.items():
            if a["last_ts"][i] < wm_ms - self.p.idle_evict_s * 1000:
                self._rows.release(i)
                a["live"][i] = False
                gid = int(a["group"][i])
                self._touch(gid, i)
                self._members[gid].remove(i)
                self._bump(gid)

    @classmethod
    def contract_case(cls, seed: int) -> ContractCase:
        """Eight dwellings of one estate for two hours; from the third hour on, one of
        them uses six times the water and power of the others."""
        rng = random.Random(seed)
        det = cls(PeerParams(min_readings=2, hst_window=50, seed=seed))
        t0 = 1_781_528_400_000
        bases = {
            u: {
                "water": rng.uniform(0.015, 0.03),
                "power": rng.uniform(0.2, 0.4),
                "gas": rng.uniform(0.015, 0.03),
            }
            for u in range(1, 9)
        }
        events: list[Event] = []
        anomaly_from = 0
        for step in range(16):  # every 15 minutes for 4 hours
            t = t0 + step * 900_000
            if step == 8:
                anomaly_from = len(events)
            for u, kinds in bases.items():
                for j, (kind, base) in enumerate(kinds.items()):
                    k = 6.0 if (u == 8 and step >= 8 and kind != "gas") else 1.0
                    v = base * k * (1 + rng.gauss(0, 0.05))
                    events.append(
                        SensorEvent(
                            t + u * 7_000 + j * 1_000,
                            f"hh-est-{u:02d}-{kind}",
                            kind,
                            round(v, 5),
                            120.9,
                            32.0,
                        )
                    )
        return ContractCase(
            detector=det,
            events=events,
            expect_kinds=frozenset(cls.kinds),
            anomaly_from=anomaly_from,
        )


class _Pool:
    """Rows and their log means (``logs[j]`` is row ``rows[j]``'s); removal moves the last
    row into the hole, since only the multiset of values matters to a median."""

    __slots__ = ("logs", "pos", "rows")

    def __init__(self, kinds: int) -> None:
        self.rows: list[int] = []
        self.pos: dict[int, int] = {}
        self.logs = np.empty((16, kinds))

    def update(self, rows: list[int], logs: np.ndarray, gone: list[int]) -> None:
        for row in gone:
            j = self.pos.pop(row, None)
            if j is None:
                continue
            last = self.rows.pop()
            if last != row:
                self.rows[j] = last
                self.pos[last] = j
                self.logs[j] = self.logs[len(self.rows)]
        for row, values in zip(rows, logs, strict=True):
            j = self.pos.get(row)
            if j is None:
                j = self.pos[row] = len(self.rows)
                self.rows.append(row)
                if j == len(self.logs):
                    self.logs = np.concatenate([self.logs, np.empty_like(self.logs)])
            self.logs[j] = values


def median_and_mad(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column: the median of ``x`` (rows, kinds) and the median of its absolute
    deviations from it, the values ``np.median`` gives (the mean of the two middle
    values of an even count) in one partition each instead of its general path.

    >>> x = np.array([[1.0, 4.0], [3.0, 2.0], [2.0, 8.0], [10.0, 1.0]])
    >>> c, mad = median_and_mad(x)
    >>> c.tolist() == np.median(x, axis=0).tolist(), mad.tolist()
    (True, [1.0, 1.5])
    """
    n = x.shape[0]
    if np.isnan(x).any():  # np.median's NaN rules
        centre = np.median(x, axis=0)
        return centre, np.median(np.abs(x - centre), axis=0)
    h = n // 2
    kth: int | tuple[int, int] = h if n % 2 else (h - 1, h)
    cols = x.T
    part = np.partition(cols, kth, axis=1)
    centre = part[:, h] if n % 2 else (part[:, h - 1] + part[:, h]) / 2
    dev = np.partition(np.abs(cols - centre[:, None]), kth, axis=1)
    mad = dev[:, h] if n % 2 else (dev[:, h - 1] + dev[:, h]) / 2
    return centre, mad


def hst_state(hst: Any) -> dict[str, Any]:
    """A river ``HalfSpaceTrees`` as plain data: its parameters, random state, window
    counters and trees as nested tuples (``("L", l_mass, r_mass)`` or
    ``("B", feature, threshold, l_mass, r_mass, left, right)``)."""

    def node(n: Any) -> tuple[Any, ...]:
        if getattr(n, "children", None):
            left, right = n.children
            return ("B", n.feature, n.threshold, n.l_mass, n.r_mass, node(left), node(right))
        return ("L", n.l_mass, n.r_mass)

    return {
        "params": (hst.n_trees, hst.height, hst.window_size, hst.seed),
        "rng": hst.rng.getstate(),
        "counter": hst.counter,
        "first_window": hst._first_window,
        "trees": [node(t) for t in hst.trees],
    }


def hst_restore(hst: Any, saved: dict[str, Any]) -> None:
    """Pour :func:`hst_state` data into a fresh model; when its parameters changed in
    the config, the learned trees no longer fit and the model starts afresh."""
    from river.tree.padded import PaddedBranch, PaddedLeaf

    if tuple(saved["params"]) != (hst.n_trees, hst.height, hst.window_size, hst.seed):
        return

    def build(t: tuple[Any, ...]) -> Any:
        if t[0] == "L":
            return PaddedLeaf(l_mass=t[1], r_mass=t[2])
        _, feature, threshold, l_mass, r_mass, left, right = t
        return PaddedBranch(build(left), build(right), feature, threshold, l_mass, r_mass)

    hst.rng.setstate(saved["rng"])
    hst.counter = saved["counter"]
    hst._first_window = saved["first_window"]
    hst.trees = [build(t) for t in saved["trees"]]
    hst._tree_nodes = [list(t.iter_dfs()) for t in hst.trees]
