"""citywatch: a real-time warning engine for a city command centre.

Everything is imported under this one name: :mod:`citywatch.flows` (the Bytewax
dataflows and the command line), :mod:`citywatch.detectors`, :mod:`citywatch.geo`,
:mod:`citywatch.sinks`, :mod:`citywatch.replay`, :mod:`citywatch.console`,
:mod:`citywatch.benchmarks`, and :mod:`citywatch.data` (the bundled Nantong sample).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__: str = version("citywatch")
except PackageNotFoundError:  # pragma: no cover - running from a bare source tree
    __version__ = "0+unknown"

__all__ = ["__version__"]
