"""Recovery snapshots of the flow's stateful steps: plain, versioned state.

Each stateful step (``watermark``, ``detect``, ``rdv_match``, ``peer``, ``fusion``,
``incidents``) snapshots its objects' learned state with
:func:`citywatch.detectors.state.encode` and, on resume, builds its detectors
from the *current* config and pours the snapshot into them (:func:`restore`).
A parameter changed in the config therefore applies after a restart. A snapshot
that cannot be read or migrated stops the start with a :class:`StateError`
naming the step; ``citywatch run --reset-state STEP`` drops that step's
snapshots (see :func:`reset_steps`).
"""

from __future__ import annotations

import gc
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from citywatch.detectors.state import Snapshot, StateError, Stateful, decode, encode

# The flow's stateful steps whose state citywatch owns (Kafka offsets and the
# per-source watermark are Bytewax's and always kept).
STEPS = ("watermark", "detect", "rdv_match", "peer", "fusion", "incidents")

T = TypeVar("T", bound=Stateful)


def snapshot(step_state: Stateful) -> bytes:
    """``step_state``'s plain state, encoded. The cyclic garbage collector is paused
    meanwhile: building and pickling a city's state allocates hundreds of thousands of
    objects, each collection then walks the whole heap, and that made a snapshot
    (which stops the flow) 2-3x slower. Nothing it allocates is cyclic garbage."""
    paused = gc.isenabled()
    gc.disable()
    try:
        return encode(step_state.state())
    finally:
        if paused:
            gc.enable()


def restore(step: str, fresh: T, resume: Any) -> T:
    """``fresh`` (built from the current config) with the state of ``resume`` poured
    in; ``resume`` None (first start, or a reset step) leaves it fresh."""
    if resume is None:
        return fresh
    if not isinstance(resume, bytes):
        resume = b""  # an object pickled by an earlier citywatch: decode names the fix
    snap = decode(resume, step=step)
    try:
        fresh.restore(snap)
    except StateError as e:
        msg = (
            f"recovery state of step {step!r}: {e}; restart once with "
            f"`citywatch run --reset-state {step}` to start that step empty"
        )
        raise StateError(msg) from None
    return fresh


def reset_steps(recovery_dir: Path, steps: Iterable[str], flow_id: str = "citywatch") -> int:
    """Delete the snapshots of ``steps`` from every recovery partition; returns how many
    rows went. The steps then start empty on the next resume (offsets are kept)."""
    steps = list(steps)
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        msg = f"--reset-state: unknown step {unknown[0]!r}; expected one of {', '.join(STEPS)}"
        raise StateError(msg)
    removed = 0
    ids = [f"{flow_id}.{s}" for s in steps]
    for part in sorted(recovery_dir.glob("part-*.sqlite3")):
        con = sqlite3.connect(part)
        try:
            with con:
                marks = ",".join("?" * len(ids))
                cur = con.execute(f"DELETE FROM snaps WHERE step_id IN ({marks})", ids)  # noqa: S608
                removed += cur.rowcount
        finally:
            con.close()
    return removed


__all__ = ["STEPS", "Snapshot", "StateError", "reset_steps", "restore", "snapshot"]
