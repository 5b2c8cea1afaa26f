"""What the console and the token API need of the engine's configuration.

The console layer never reads the configuration itself (it sits below the flows):
these functions build its plain inputs (:class:`~citywatch.console.core.Site`,
:class:`~citywatch.console.api.ApiSite`, console settings) from a
:class:`~citywatch.flows.config.Config`, for ``citywatch console``, ``citywatch api``
and the demo.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from citywatch.console.api import ApiSite
    from citywatch.console.core import Site
    from citywatch.console.server import ConsoleThread
    from citywatch.console.settings import ConsoleSettings
    from citywatch.flows.config import Config

BASEMAP_FILE = "basemap.geojson"  # the console's offline basemap, beside the jurisdictions


def site_for(cfg: Config) -> Site:
    """What the console needs of the configuration: key prefix, map layers, departments.

    The map's offline basemap is ``basemap.geojson`` beside the jurisdictions file, when
    there is one (the bundled Nantong data has it); without it the map has no basemap.
    """
    from citywatch.console.core import EMPTY_GEOJSON, Site

    basemap = cfg.data.jurisdictions.with_name(BASEMAP_FILE)  # optional, beside it
    return Site(
        prefix=cfg.redis.prefix,
        zones_geojson=cfg.data.zones.read_bytes(),
        jurisdictions_geojson=cfg.data.jurisdictions.read_bytes(),
        basemap_geojson=basemap.read_bytes() if basemap.is_file() else EMPTY_GEOJSON,
        departments=departments_of(cfg),
    )


def departments_of(cfg: Config) -> tuple[str, ...]:
    """Every department routing may send an order to."""
    routing = cfg.routing
    return tuple(sorted(set(routing.departments.values()) | {routing.coordinating_department}))


def api_site_for(cfg: Config) -> ApiSite:
    """What the token API needs of the configuration."""
    from citywatch.console.api import ApiSite

    return ApiSite(
        prefix=cfg.redis.prefix,
        integrations=cfg.integrations,
        console=settings_for(cfg),
        departments=departments_of(cfg),
    )


def settings_for(cfg: Config, **overrides: object) -> ConsoleSettings:
    """The ``[console]`` table of the configuration, with the given values overriding it."""
    from citywatch.console.settings import ConsoleSettings

    table = dict(cfg.raw.get("console", {}))
    table.update({k: v for k, v in overrides.items() if v is not None})
    return ConsoleSettings.from_table(table)


def offer_console(cfg: Config, redis_url: str) -> ConsoleThread:
    """The demo's console (``citywatch demo --keep``) on its Redis, with demo accounts."""
    from citywatch.console import demo

    return demo.offer_console(site_for(cfg), cfg.redis.options(redis_url), settings_for(cfg))
