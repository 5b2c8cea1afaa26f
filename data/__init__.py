"""The bundled reference data, read as package resources (:func:`data_dir`).

``nantong/`` holds the Nantong sample: the configuration, zones, jurisdictions and the
sensor and camera registries. The script that regenerates them
(``data/nantong/make_reference.py``) stays in the repository and is not installed.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def data_dir() -> Path:
    """The folder of the bundled data, as a real path (the package is never zipped)."""
    root = files(__name__)
    if not isinstance(root, Path):  # pragma: no cover - a zip import, which we do not ship
        msg = f"citywatch's bundled data must be installed as files, not {type(root).__name__}"
        raise RuntimeError(msg)
    return root
