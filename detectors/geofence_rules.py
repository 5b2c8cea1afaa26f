"""Geofence rules: one frozen, self-validating dataclass per rule type, and how a
zone kind's rules combine with a zone's own overrides.

Config form: ``[geofence.<rule>.<zone_kind>]`` (rule: enter, exit, inside,
outside, dwell, cross); a zone's ``rules`` property overrides its kind's rule
field by field, and ``false`` switches a rule off for that zone. ``check_rules``
tries every zone's overrides this way and names each bad one with a hint.

>>> check_rules([("a", "levee", {"dwell": {"dwell_s": -5}})], {"dwell": {}})[0]
'zone \\'a\\' rules.dwell: "classes" must list at least one entity class (or "labels" at \
least one video label); hint: fix the zone\\'s "rules" property or the [geofence.dwell.levee] \
table'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from citywatch.detectors import params
from citywatch.detectors.base import ZoneCatalog, ZoneMeta

VIDEO_RULES = ("inside", "dwell")  # rules that also apply to video detections
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _days(owner: str, value: Any) -> tuple[int, ...] | None:
    """``["mon", "fri"]`` or ``[0, 4]`` (Monday = 0) to weekday numbers; None = every day."""
    if value is None:
        return None
    items = list(value) if isinstance(value, list | tuple) else [value]
    out: list[int] = []
    for d in items:
        if isinstance(d, str) and d.lower()[:3] in DAY_NAMES:
            out.append(DAY_NAMES.index(d.lower()[:3]))
        elif isinstance(d, int) and 0 <= d <= 6:
            out.append(d)
        else:
            msg = (
                f'{owner}: "days" must list weekdays like ["mon", "sat"] or 0-6 (Monday = 0), '
                f"got {value!r}"
            )
            raise ValueError(msg)
    if not out:
        msg = f'{owner}: "days" must not be empty; leave it out for every day'
        raise ValueError(msg)
    return tuple(sorted(set(out)))


@dataclass(frozen=True, slots=True, kw_only=True)
class ZoneRule:
    """Settings every geofence rule has: who it applies to, when, and how loud."""

    rule: ClassVar[str] = ""
    classes: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    min_confidence: float = 0.0
    hours: tuple[int, int] | None = None
    days: tuple[int, ...] | None = None
    severity: str = "orange"

    @property
    def owner(self) -> str:
        return f"geofence.{self.rule} rule"

    def __post_init__(self) -> None:
        owner = self.owner
        if not self.classes and not self.labels:
            msg = (
                f'{owner}: "classes" must list at least one entity class '
                '(or "labels" at least one video label)'
            )
            raise ValueError(msg)
        if self.labels and self.rule not in VIDEO_RULES:
            msg = (
                f'{owner}: "labels" only apply to {" and ".join(VIDEO_RULES)} rules; '
                f"remove them or use classes"
            )
            raise ValueError(msg)
        if not 0.0 <= self.min_confidence <= 1.0:
            msg = f'{owner}: "min_confidence" must be within [0, 1], got {self.min_confidence!r}'
            raise ValueError(msg)
        object.__setattr__(self, "hours", params.hours_window(owner, self.hours))
        object.__setattr__(self, "days", _days(owner, self.days))
        params.severity(owner, self.severity)
        self._check(owner)

    def _check(self, owner: str) -> None:
        """Rule-specific validation (subclasses)."""

    def timed(self) -> bool:
        return self.hours is not None or self.days is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class Presence(ZoneRule):
    """Border hysteresis of a stay: ``min_inside_fixes`` consecutive fixes inside
    confirm it; ``min_outside_fixes`` consecutive fixes outside end it. Once a fix of
    the stay was more than ``exit_margin_m`` metres inside, only fixes more than that
    outside count as outside (GPS noise of a vehicle parked near the edge). The margin
    needs the zone's geometry; without one, any fix outside counts."""

    min_inside_fixes: int = 1
    min_outside_fixes: int = 2
    exit_margin_m: float = 10.0

    def _check(self, owner: str) -> None:
        params.positive(owner, "min_inside_fixes", self.min_inside_fixes)
        params.positive(owner, "min_outside_fixes", self.min_outside_fixes)
        if not self.exit_margin_m >= 0:
            msg = f'{owner}: "exit_margin_m" must be >= 0 metres, got {self.exit_margin_m!r}'
            raise ValueError(msg)


@dataclass(frozen=True, slots=True, kw_only=True)
class EnterRule(Presence):
    """Entities of ``classes`` may not enter zones of the kind."""

    rule: ClassVar[str] = "enter"


@dataclass(frozen=True, slots=True, kw_only=True)
class ExitRule(Presence):
    """Entities of ``classes`` leaving zones of the kind (after being inside)."""

    rule: ClassVar[str] = "exit"


@dataclass(frozen=True, slots=True, kw_only=True)
class InsideRule(Presence):
    """An alert on the first fix inside, then at most one per ``every_s`` while inside."""

    rule: ClassVar[str] = "inside"
    every_s: int = 600

    def _check(self, owner: str) -> None:
        Presence._check(self, owner)
        params.positive(owner, "every_s", self.every_s)


@dataclass(frozen=True, slots=True, kw_only=True)
class OutsideRule(Presence):
    """Entities of ``classes`` must stay inside the zones of the kind once they were in."""

    rule: ClassVar[str] = "outside"


@dataclass(frozen=True, slots=True, kw_only=True)
class DwellRule(Presence):
    """Inside for ``dwell_s`` or longer; for video, detections at most ``max_gap_s`` apart."""

    rule: ClassVar[str] = "dwell"
    dwell_s: int = 0
    max_gap_s: int = 300

    def _check(self, owner: str) -> None:
        Presence._check(self, owner)
        params.positive(owner, "dwell_s", self.dwell_s)
        params.positive(owner, "max_gap_s", self.max_gap_s)


@dataclass(frozen=True, slots=True, kw_only=True)
class CrossRule(ZoneRule):
    """A track segment (two fixes at most ``max_gap_s`` apart) passed through the zone,
    in and out again within ``max_pass_s``."""

    rule: ClassVar[str] = "cross"
    max_gap_s: int = 120
    max_pass_s: int = 300

    def _check(self, owner: str) -> None:
        params.positive(owner, "max_gap_s", self.max_gap_s)
        params.positive(owner, "max_pass_s", self.max_pass_s)


RULE_TYPES: dict[str, type[ZoneRule]] = {
    t.rule: t for t in (EnterRule, ExitRule, InsideRule, OutsideRule, DwellRule, CrossRule)
}
RULE_KINDS = tuple(RULE_TYPES)
PRESENCE_RULES = ("enter", "exit", "inside", "dwell")

RulesByKind = Mapping[str, Mapping[str, ZoneRule]]  # rule kind -> zone kind -> rule


def build_rule(rule: str, owner: str, raw: Mapping[str, Any]) -> ZoneRule:
    """A rule from a config table or a zone override, errors prefixed with ``owner``.

    >>> build_rule("dwell", "[geofence.dwell.levee]", {"classes": ["tanker"], "dwell_s": 600})
    DwellRule(classes=('tanker',), labels=(), min_confidence=0.0, hours=None, days=None, \
severity='orange', min_inside_fixes=1, min_outside_fixes=2, exit_margin_m=10.0, dwell_s=600, \
max_gap_s=300)
    """
    cls = RULE_TYPES.get(rule)
    if cls is None:
        msg = f"{owner}: unknown geofence rule {rule!r}; expected one of {', '.join(RULE_KINDS)}"
        raise ValueError(msg)
    try:
        built: ZoneRule = params.build(cls, owner, dict(raw))
    except ValueError as exc:  # say where once: "[geofence.dwell.levee]: ..." not twice
        text = str(exc).replace(f"{owner}: geofence.{rule} rule: ", f"{owner}: ")
        raise ValueError(text) from None
    return built


def rules_for_zones(rules_by_kind: RulesByKind, zones: ZoneCatalog) -> dict[str, dict[str, Any]]:
    """The rule of each kind in force in each zone: the zone's override over its kind's rule.

    Returns ``{zone id: {rule kind: rule}}``; raises ValueError naming the zone and rule
    when an override is wrong.
    """
    out: dict[str, dict[str, Any]] = {}
    for zid, meta in zones.items():
        mine: dict[str, Any] = {}
        overrides = meta.rules or {}
        for name in overrides:
            if name not in RULE_TYPES:
                msg = (
                    f"zone {zid!r} rules: unknown geofence rule {name!r}; "
                    f"expected one of {', '.join(RULE_KINDS)}"
                )
                raise ValueError(msg)
        for rule_kind in RULE_KINDS:
            base = rules_by_kind.get(rule_kind, {}).get(meta.kind)
            override = overrides.get(rule_kind)
            if override is False:
                continue
            if isinstance(override, dict):
                merged = {**(_as_dict(base) if base else {}), **override}
                mine[rule_kind] = build_rule(rule_kind, f"zone {zid!r} rules.{rule_kind}", merged)
            elif override is not None:
                msg = (
                    f"zone {zid!r} rules.{rule_kind}: expected a table of settings or false, "
                    f"got {override!r}"
                )
                raise ValueError(msg)
            elif base is not None:
                mine[rule_kind] = base
        if mine:
            out[zid] = mine
    return out


def check_rules(
    zones: Iterable[tuple[str, str, Mapping[str, Any]]],
    rules_by_kind: Mapping[str, Mapping[str, ZoneRule]],
) -> list[str]:
    """One line per zone whose ``rules`` overrides are wrong (unknown rule, bad field);
    ``zones`` gives (id, kind, rules) of each zone."""
    problems: list[str] = []
    for zid, kind, rules in zones:
        if not rules:
            continue
        try:
            rules_for_zones(rules_by_kind, {zid: ZoneMeta(zid, kind, zid, rules)})
        except (TypeError, ValueError) as exc:
            text = str(exc)
            rule = text.partition("rules.")[2].partition(":")[0] or "<rule>"
            problems.append(
                f'{text}; hint: fix the zone\'s "rules" property or the '
                f"[geofence.{rule}.{kind}] table"
            )
    return problems


def _as_dict(rule: ZoneRule) -> dict[str, object]:
    return {f.name: getattr(rule, f.name) for f in dataclasses.fields(rule)}
