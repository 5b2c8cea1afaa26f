"""State migrations of :class:`~citywatch.detectors.anomaly.bank.BaselineBank`.

Each takes the snapshot data of one version and returns the next version's;
``layout`` is the current per-sensor column layout (name -> dtype, shape), which
the restored table checks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Layout = dict[str, tuple[str, tuple[int, ...]]]


def with_drift_columns(data: dict[str, Any], layout: Layout, drift_prior: float) -> dict[str, Any]:
    """State version 1 -> 2: the rows get the drift statistic at rest (zero, learning
    from the next reading on) and its tail percentile at the prior; the fast residual
    variance is kept in float32 (so a row stays under 1.2 kB)."""
    rows = data["_rows"]
    cols = dict(rows.data["cols"])
    used = len(cols["n"])
    old_tail = cols["tail"]
    tail = np.empty((used, 4), dtype=np.float32)
    tail[:, :3] = old_tail
    tail[:, 3] = drift_prior
    cols["tail"] = tail
    cols["drift"] = np.zeros((used, 3), dtype=np.float32)
    cols["dsvar"] = np.zeros((used, 3), dtype=np.float32)
    cols["fvar"] = cols["fvar"].astype(np.float32)
    new_rows = type(rows)(rows.kind, rows.version, {**rows.data, "cols": cols, "layout": layout})
    return {**data, "_rows": new_rows}


def with_cusum_column(data: dict[str, Any], layout: Layout, drift_prior: float) -> dict[str, Any]:
    """State version 2 -> 3: the rows get the drift CUSUM at rest (zero, accumulating
    from the next reading on); the drift tail percentile restarts at its prior (it
    measured the EW drift mean, a distance on another scale)."""
    rows = data["_rows"]
    cols = dict(rows.data["cols"])
    used = len(cols["n"])
    cols["cusum"] = np.zeros((used, 3, 2), dtype=np.float32)
    tail = np.array(cols["tail"], dtype=np.float32, copy=True)
    tail[:, 3] = drift_prior
    cols["tail"] = tail
    new_rows = type(rows)(rows.kind, rows.version, {**rows.data, "cols": cols, "layout": layout})
    return {**data, "_rows": new_rows}


def with_hour_var_columns(data: dict[str, Any], layout: Layout) -> dict[str, Any]:
    """State version 3 -> 4: the rows get the hourly spread unlearned (one spread for
    the day until each hour has ``HOUR_VAR_MIN_VISITS`` readings and the hourly spread
    has earned its log-likelihood gain); everything else is kept."""
    rows = data["_rows"]
    cols = dict(rows.data["cols"])
    used = len(cols["n"])
    cols["hvar"] = np.zeros((used, 24), dtype=np.float32)
    cols["hvar_n"] = np.zeros((used, 24), dtype=np.uint8)
    cols["hgain"] = np.zeros(used, dtype=np.float32)
    new_rows = type(rows)(rows.kind, rows.version, {**rows.data, "cols": cols, "layout": layout})
    return {**data, "_rows": new_rows}
