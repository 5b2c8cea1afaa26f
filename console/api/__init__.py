"""The token API for department systems (machine clients), under ``/api``.

``/api/openapi.json`` describes it (OpenAPI 3.1); ``/api/v1/...`` reads and acts
on work orders with ``Authorization: Bearer cwt.<id>.<secret>`` (tokens from
``citywatch api tokens add``), scoped like officers, rate-limited per token,
each action idempotent by its ``Idempotency-Key``; ``/api/admin/webhooks``
shows the webhook deliveries to signed-in leaders. The console serves these
routes (:func:`api_routes`); ``citywatch api serve`` runs them alone
(:func:`create_api_app`).
"""

from citywatch.console.api.app import ApiSite, api_routes, create_api_app

__all__ = ["ApiSite", "api_routes", "create_api_app"]
