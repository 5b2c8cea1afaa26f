"""``python -m citywatch.benchmarks.bench``: the same as ``citywatch bench``.

The bench itself lives in :mod:`citywatch.flows.bench` (the command line may not
reach up into the benchmarks; the benchmarks build on the flows).
"""

from __future__ import annotations

import sys

from citywatch.flows.cli import main as cli_main


def main(argv: list[str] | None = None) -> int:
    return cli_main(["bench", *(argv if argv is not None else sys.argv[1:])])


if __name__ == "__main__":
    sys.exit(main())
