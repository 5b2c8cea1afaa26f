"""The former single dispatch module; its names now live in :mod:`citywatch.sinks.dispatch`.

Kept so that existing imports of ``citywatch.sinks.redis_dispatch`` keep working;
new code imports :mod:`citywatch.sinks.dispatch`.
"""

from citywatch.sinks.dispatch import *  # noqa: F403
from citywatch.sinks.dispatch import __all__  # noqa: F401
