"""``citywatch bench``: the full flow measured over a recording (events/s, latency,
memory, detection quality), with an optional single-process baseline to compare.

``run.py`` runs the phases, ``measure.py`` holds what they measure, ``report.py``
the aims and the Markdown report, ``baseline.py`` the flow's detections as a plain
loop without Bytewax. The benchmarks in ``citywatch.benchmarks`` build on these.
"""

from citywatch.flows.bench.measure import percentiles, work_orders
from citywatch.flows.bench.report import markdown
from citywatch.flows.bench.run import BenchOptions, run_bench

__all__ = ["BenchOptions", "markdown", "percentiles", "run_bench", "work_orders"]
