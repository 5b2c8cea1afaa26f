"""The console's actions, delegated to the dispatch lifecycle (:mod:`citywatch.sinks.lifecycle`).

The console never changes a work order itself: every action calls the same
:class:`citywatch.sinks.lifecycle.WorkOrders` operation as ``citywatch officer``, so
transitions stay atomic, an invalid one is refused with the lifecycle's own
reason, and the audit stream records the officer. Silencing adds a maintenance
window through :class:`citywatch.sinks.silences.SilenceStore` (the one the dispatch sink
reads): new alerts of the order's subject (or zone) stop creating or growing
work orders for that many minutes; the order itself stays as it is.

Action names (the URL segment) and their form fields:

====================  =============================================================
``sign``              sign off (take responsibility)
``handle``            start handling
``resolve``           ``feedback`` (required): what was found and done
``return``            ``reason`` (required), optional ``to_department`` to re-route
                      (one of routing's departments, not the order's own)
``silence``           ``minutes`` (required), optional ``target`` (``subject``/``zone``),
                      ``reason``
``close``             optional ``note``: the centre verifies and closes (leaders and
                      centre-wide officers only)
====================  =============================================================
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import redis

from citywatch.console.auth import ANY, User
from citywatch.sinks.dispatch import Keys
from citywatch.sinks.lifecycle import (
    TransitionRefused,
    UnknownWorkOrder,
    WorkOrderError,
    WorkOrders,
)
from citywatch.sinks.silences import SilenceError, SilenceStore, make_silence

SILENCE_TARGET = {"sensor": "sensor", "video": "camera", "gps": "subject"}
MAX_SILENCE_MIN = 7 * 24 * 60


class ActionError(RuntimeError):
    """An action was refused or could not run; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Act:
    """One action's inputs: the lifecycle, the order, who acts, the form, and the
    departments routing knows (where a returned order may go)."""

    orders: WorkOrders
    wo: Mapping[str, str]
    user: User
    form: Mapping[str, Any]
    departments: Collection[str]

    def text(self, name: str, action: str, *, required: bool = False) -> str:
        value = str(self.form.get(name) or "").strip()
        if required and not value:
            msg = f"{action}: {name!r} is required"
            raise ActionError(msg, status=422)
        return value


def _sign(a: Act) -> Any:
    return a.orders.sign(a.wo["id"], a.user.name)


def _handle(a: Act) -> Any:
    return a.orders.start(a.wo["id"], a.user.name)


def _resolve(a: Act) -> Any:
    return a.orders.resolve(a.wo["id"], a.user.name, a.text("feedback", "resolve", required=True))


def return_targets(wo: Mapping[str, str], departments: Collection[str]) -> list[str]:
    """The departments an order may be returned to: routing's, except its own.

    >>> return_targets({"department": "water"}, ["water", "transport", "fisheries"])
    ['fisheries', 'transport']
    """
    return sorted(set(departments) - {wo.get("department", "")})


def _return(a: Act) -> Any:
    reason = a.text("reason", "return", required=True)
    to = a.text("to_department", "return")
    targets = return_targets(a.wo, a.departments)
    if to and to not in targets:
        msg = f"return: 'to_department' must be one of {', '.join(targets)}; got {to!r}"
        raise ActionError(msg, status=422)
    return a.orders.return_(a.wo["id"], a.user.name, reason, to_department=to or None)


def _close(a: Act) -> Any:
    if not (a.user.is_leader or a.user.department == ANY):
        msg = "close: the centre verifies and closes; a department officer cannot"
        raise ActionError(msg, status=403)
    return a.orders.close(a.wo["id"], a.user.name, a.text("note", "close"))


def _silence(a: Act) -> Any:
    wo, f = a.wo, a.form
    try:
        minutes = int(f.get("minutes") or 0)
    except (TypeError, ValueError):
        minutes = 0
    if not 0 < minutes <= MAX_SILENCE_MIN:
        msg = f"silence: 'minutes' must be 1..{MAX_SILENCE_MIN}, got {f.get('minutes')!r}"
        raise ActionError(msg, status=422)
    target = a.text("target", "silence") or "subject"
    if target == "zone":
        value = wo.get("zone", "")
    elif target == "subject":
        target, value = SILENCE_TARGET.get(wo.get("subject_type", ""), "subject"), wo["subject"]
    else:
        msg = f"silence: 'target' must be subject or zone, got {target!r}"
        raise ActionError(msg, status=422)
    now = int(time.time() * 1000)
    reason = a.text("reason", "silence") or f"from work order {wo['id']}"
    silence = make_silence(target, value, now, now + minutes * 60_000, a.user.name, reason)
    return SilenceStore(a.orders.client, a.orders.keys).add(silence).to_json()


ACTIONS: dict[str, Callable[[Act], Any]] = {
    "sign": _sign,
    "handle": _handle,
    "resolve": _resolve,
    "return": _return,
    "silence": _silence,
    "close": _close,
}


def perform(
    client: redis.Redis,
    keys: Keys,
    action: str,
    wo: Mapping[str, str],
    user: User,
    form: Mapping[str, Any],
    departments: Collection[str] = (),
    *,
    wait_replicas: int = 0,
) -> Any:
    """Run one console action on a work order (already scope-checked) as ``user``;
    ``departments`` are routing's (a return may name one of them); ``wait_replicas``
    as ``[redis] wait_replicas``."""
    fn = ACTIONS.get(action)
    if fn is None:
        msg = f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}"
        raise ActionError(msg, status=404)
    try:
        orders = WorkOrders(client, keys, wait_replicas=wait_replicas)
        return fn(Act(orders, wo, user, form, departments))
    except TransitionRefused as exc:
        raise ActionError(str(exc), status=409) from exc
    except UnknownWorkOrder as exc:
        raise ActionError(str(exc), status=404) from exc
    except (WorkOrderError, SilenceError) as exc:
        raise ActionError(str(exc), status=422) from exc
