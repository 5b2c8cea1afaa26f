"""``python -m citywatch``: the same as the ``citywatch`` command."""

from __future__ import annotations

from citywatch.flows.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
