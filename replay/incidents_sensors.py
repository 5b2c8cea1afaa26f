"""Injected sensor, video and corroboration incidents (appended to ``INJECTORS``).

Timeline of one 40-minute block (minutes from the block's start; gauges are
picked by block number so no two stories share a sensor at the same time)::

    min   0    5    10   15   20   25   30   35   40
          |----|----|----|----|----|----|----|----|
    rate      gauge (b+6) rises 1.5 m/h [6 ..... 30], stays under 4.5 m
    offline     gauge (b+9) silent [5 ............ 25]   alert ~15
    stuck          gauge (b+3) one value [8 ...... 24]   alert ~17
    window  PM10 at ~130 [-30 ......... 30]  hourly mean > 115 at 10-30 (blocks >= 1)
    video      excavator, airport protection zone ^ 8
    video         rod in the reach the boat entered    ^ boat's entry + 6
    video                     dumping in another reach      ^ 28
    fusion  derived from all the above and the other injectors' truth (last injector)

Background never looks like these: gauges swing with the tide (at most ~0.2 m/h)
and read with noise (never one value ten times running), PM10 hourly means stay
under ~92 µg/m³, every background sensor reports (lines dropped as corrupt or
late leave gaps of a few minutes, far below ``silent_s``), and background
cameras never report excavators, rods or dumping.
"""

from __future__ import annotations

import math

import numpy as np

from citywatch.detectors.events import parse_ts
from citywatch.detectors.fusion import FusionParams
from citywatch.replay.scene import Scene

MINUTE = 60_000
HOUR = 3_600_000
TIDE_M = 0.35  # replay.world.normal_value's semi-diurnal tide
TIDE_PERIOD_H = 12.42
SOURCE_OF_FAMILY = {"geofence": "gps", "track": "gps", "sensor": "sensor", "video": "video"}


def tide_level(base: float, t: int) -> float:
    """A levee gauge's noise-free level at ``t`` (the background model without noise)."""
    return base + TIDE_M * math.sin(2 * math.pi * (t / HOUR) / TIDE_PERIOD_H)


def _zone_of_point(gen: Scene, lon: float, lat: float) -> str | None:
    zones = gen.ref.zones.zones_of(np.array([lon]), np.array([lat]))[0]
    return zones[0] if zones else None


def _gauges(gen: Scene) -> list[tuple[str, str, float, float, float, bool]]:
    return [s for s in gen.sensors if s[1] == "water_level" and s[5]]


def levee_gauge_rising_fast(gen: Scene, b: int, base: int, span: int) -> None:
    """A levee gauge rises 1.5 m/h for 24 minutes, 0.6 m in all, never reaching the
    4.5 m warning level (sensor.rate, not sensor.threshold)."""
    gauges = _gauges(gen)
    if len(gauges) < 4 or span < 35 * MINUTE:
        return
    sid, _, lon, lat, level, _ = gauges[(b + 6) % len(gauges)]
    t_rise = base + 6 * MINUTE
    t_top = t_rise + 24 * MINUTE

    def rising(t: int, b0: float = level) -> float:
        up = 1.5 * (min(t, t_top) - t_rise) / HOUR
        down = 1.0 * max(0, t - t_top) / HOUR
        return tide_level(b0, t) + max(0.0, up - down) + 0.004 * math.sin(t / 47_000)

    gen.sensor_override.setdefault(sid, []).append((t_rise, base + span, rising))
    # The 30-minute slope passes 0.6 m/h 12-15 minutes in (and not before 20 minutes
    # of readings, min_span_s, at a run's start).
    gen.expect(
        "sensor.rate",
        sid,
        _zone_of_point(gen, lon, lat),
        t_rise + 10 * MINUTE,
        max(t_rise + 17 * MINUTE, gen.t0 + 22 * MINUTE),
        "levee gauge rising 1.5 m/h (under the warning level)",
    )


def gauge_goes_silent(gen: Scene, b: int, base: int, span: int) -> None:
    """A levee gauge stops reporting for 20 minutes, then recovers (sensor.offline)."""
    gauges = _gauges(gen)
    if len(gauges) < 4 or span < 30 * MINUTE:
        return
    sid, _, lon, lat, _, _ = gauges[(b + 9) % len(gauges)]
    t_off = base + 5 * MINUTE
    gen.sensor_silence.setdefault(sid, []).append((t_off, t_off + 20 * MINUTE))
    # Silent for 600 s after the last reading, which came in the minute before t_off.
    gen.expect(
        "sensor.offline",
        sid,
        _zone_of_point(gen, lon, lat),
        t_off + 9 * MINUTE,
        t_off + 10 * MINUTE,
        "levee gauge silent for 20 minutes",
    )


def gauge_stuck(gen: Scene, b: int, base: int, span: int) -> None:
    """A levee gauge repeats one value for 16 minutes, then moves again (sensor.stuck)."""
    gauges = _gauges(gen)
    if len(gauges) < 4 or span < 30 * MINUTE:
        return
    sid, _, lon, lat, level, _ = gauges[(b + 3) % len(gauges)]
    t_stuck = base + 8 * MINUTE
    frozen = round(tide_level(level, t_stuck), 3)

    def stuck(t: int, v: float = frozen) -> float:
        return v

    gen.sensor_override.setdefault(sid, []).append((t_stuck, t_stuck + 16 * MINUTE, stuck))
    # The 10th equal reading (min_readings 10): 9 to 10 minutes after the first.
    gen.expect(
        "sensor.stuck",
        sid,
        _zone_of_point(gen, lon, lat),
        t_stuck + 8 * MINUTE,
        t_stuck + 10 * MINUTE,
        "levee gauge repeating one value",
    )


def pm10_hourly_mean_high(gen: Scene, b: int, base: int, span: int) -> None:
    """A dust monitor reads ~130 µg/m³ for an hour: never over the 150 instant level,
    but its hourly mean passes 115 (sensor.window). Needs the hour before the block's
    middle, so it runs from the second block on."""
    if b < 1 or span < 35 * MINUTE:
        return
    sid = _haze_monitor(gen, b)
    if sid is None:
        return
    t_on, t_off = base - 30 * MINUTE, base + 30 * MINUTE

    def haze(t: int) -> float:
        return 130.0 + 6.0 * math.sin(t / 420_000)

    gen.sensor_override.setdefault(sid, []).append((t_on, t_off, haze))
    # Sliding hourly windows end every 10 minutes; the mean passes 115 in the window
    # ending 10, 20 or 30 minutes into the block (the background's level decides).
    gen.expect(
        "sensor.window",
        sid,
        None,
        base + 10 * MINUTE,
        base + 30 * MINUTE,
        "PM10 hourly mean over 115 without an instant reading over 150",
    )


def _haze_monitor(gen: Scene, b: int) -> str | None:
    """The dust monitor of block ``b``'s hazy hour: not one of this block's or the
    previous block's dust plume, and not a monitor hazy in the previous three blocks.
    Two hazy hours on one monitor less than an hour apart leave no hourly window at
    or below ``clear_at`` between them: one episode, one alert, where the truth would
    expect two."""
    dust = [s for s in gen.sensors if s[1] == "pm10" and s[5]]
    recent: list[str] = []
    sid: str | None = None
    for k in range(1, b + 1):
        # Not the monitors of this block's or the previous block's dust plume.
        busy = {dust[k % len(dust)][0], dust[(k - 1) % len(dust)][0]} if dust else set()
        busy.update(recent[-3:])
        quiet = [s for s in dust if s[0] not in busy and _zone_of_point(gen, s[2], s[3]) is None]
        sid = quiet[k % len(quiet)][0] if quiet else None
        if sid is not None:
            recent.append(sid)
    return sid


def _video(gen: Scene, cid: str, t: int, label: str, n: int, every_ms: int) -> None:
    for k in range(n):
        gen.video_injections.append(
            (
                t + k * every_ms,
                {
                    "type": "video",
                    "camera": cid,
                    "label": label,
                    "confidence": round(0.72 + 0.04 * (k % 5), 3),
                    "snapshot": f"snap/{cid}/{label}-{t // 1000}-{k}.jpg",
                },
            )
        )


def _cameras_in(gen: Scene, zone_kind: str) -> list[tuple[str, str]]:
    return [
        (c[0], c[1])
        for c in gen.cameras
        if c[4] and c[1] is not None and gen.world.zone_kind.get(c[1]) == zone_kind
    ]


def excavator_in_airport_protection(gen: Scene, b: int, base: int, span: int) -> None:
    """A camera sees an excavator (and a crane) in the airport protection zone for four
    minutes: one episode, one alert (video.construction)."""
    cams = _cameras_in(gen, "airport_protection")
    if not cams or span < 15 * MINUTE:
        return
    cid, zone = cams[b % len(cams)]
    t_on = base + 8 * MINUTE
    _video(gen, cid, t_on, "excavator", 6, 30_000)
    _video(gen, cid, t_on + 15_000, "crane", 2, 60_000)
    gen.expect(
        "video.construction", cid, zone, t_on, t_on + 5_000, "excavator in the protection zone"
    )


def fishing_where_the_boat_went(gen: Scene, b: int, base: int, span: int) -> None:
    """A river camera sees fishing rods in the reach a fishing boat entered minutes
    before (video.fishing, and with the boat's geofence.enter a corroborated pair)."""
    cams = _cameras_in(gen, "no_fishing")
    if not cams or span < 30 * MINUTE:
        return
    entries = [
        i
        for i in gen.truth.incidents
        if i["kind"] == "geofence.enter"
        and gen.world.zone_kind.get(i["zone"] or "") == "no_fishing"
        and base <= parse_ts(i["start"]) < base + span
    ]
    if entries:
        zone = entries[0]["zone"]
        t_on = parse_ts(entries[0]["end"]) + 6 * MINUTE
    else:
        zone = cams[b % len(cams)][1]
        t_on = base + 20 * MINUTE
    in_reach = [cid for cid, z in cams if z == zone]
    if not in_reach or t_on > base + span - 5 * MINUTE:
        return
    cid = in_reach[b % len(in_reach)]
    _video(gen, cid, t_on, "fishing", 6, 20_000)
    gen.expect("video.fishing", cid, zone, t_on, t_on + 5_000, "fishing rods in a no-fishing reach")


def dumping_in_another_reach(gen: Scene, b: int, base: int, span: int) -> None:
    """A river camera sees dumping in a reach no boat entered (video.dumping)."""
    cams = _cameras_in(gen, "no_fishing")
    if not cams or span < 32 * MINUTE:
        return
    boat_reaches = {
        i["zone"]
        for i in gen.truth.incidents
        if i["kind"] == "geofence.enter"
        and gen.world.zone_kind.get(i["zone"] or "") == "no_fishing"
        and base - 40 * MINUTE <= parse_ts(i["start"]) < base + span
    }
    others = [(cid, z) for cid, z in cams if z not in boat_reaches]
    if not others:
        return
    cid, zone = others[b % len(others)]
    t_on = base + 28 * MINUTE
    _video(gen, cid, t_on, "dumping", 4, 30_000)
    gen.expect("video.dumping", cid, zone, t_on, t_on + 5_000, "dumping into the river")


def _source(kind: str) -> str | None:
    return SOURCE_OF_FAMILY.get(kind.partition(".")[0])


def corroborated_truth(gen: Scene, b: int, base: int, span: int) -> None:
    """The ``fusion.corroborated`` alerts the injected incidents imply (run last).

    Applies the default fusion rule (``citywatch.detectors.fusion.FusionParams()``) to the
    truth so far: an expected alert is an anchor when an expected alert of another
    source in the same zone is at most ``window_s`` earlier. Truth windows are
    ranges, so a pair is only stated when its order and distance are certain
    whatever the exact alert times; an uncertain pair is an error to fix in the
    injectors' timing, never a guess.
    """
    p = FusionParams()
    window = p.window_s * 1000
    incidents = [
        i
        for i in gen.truth.incidents
        if i["kind"] in p.kinds
        and i["zone"] is not None
        and gen.world.zone_kind.get(i["zone"]) in p.zone_kinds
        and _source(i["kind"]) is not None
    ]
    anchored = {i["anchor"] for i in gen.truth.incidents if i["kind"] == "fusion.corroborated"}
    for y in incidents:
        if y["id"] in anchored:
            continue
        y0, y1 = parse_ts(y["start"]), parse_ts(y["end"])
        sure = False
        unsure: str | None = None
        for a in incidents:
            if a is y or a["zone"] != y["zone"] or _source(a["kind"]) == _source(y["kind"]):
                continue
            a0, a1 = parse_ts(a["start"]), parse_ts(a["end"])
            if a1 < y0 and y1 - a0 <= window:
                sure = True
            elif a0 <= y1 and y0 - a1 <= window:  # neither surely after nor surely too early
                unsure = a["id"]
        if sure:
            gen.expect(
                "fusion.corroborated",
                y["subject"],
                y["zone"],
                y0,
                y1,
                f"corroborates {y['id']} ({y['kind']})",
            )
            gen.truth.incidents[-1]["anchor"] = y["id"]
        elif unsure:
            msg = (
                f"generator truth: whether {y['id']} ({y['kind']} {y['subject']} in {y['zone']}, "
                f"{y['start']}..{y['end']}) is corroborated by {unsure} depends on exact alert "
                f"times (fusion window {p.window_s} s); move one injection in time or zone"
            )
            raise ValueError(msg)


SENSOR_VIDEO_INJECTORS = [
    levee_gauge_rising_fast,
    gauge_goes_silent,
    gauge_stuck,
    pm10_hourly_mean_high,
    excavator_in_airport_protection,
    fishing_where_the_boat_went,
    dumping_in_another_reach,
]
"""Append ``corroborated_truth`` after every other injector (it reads their truth)."""
