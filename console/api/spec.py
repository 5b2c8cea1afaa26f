"""The OpenAPI 3.1 document of the token API (served at ``/api/openapi.json``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from citywatch import __version__

STATES = (
    "dispatched",
    "escalated",
    "returned",
    "signed",
    "handling",
    "resolved",
    "closed",
    "merged",
)
SEVERITIES = ("blue", "yellow", "orange", "red")
LINK_PATTERN = r"^https?://[^\s/?#]+[^\s]*$"
TEXT_PATTERN = r"\S"  # at least one character that is not white space
MAX_LIMIT = 500

_ERR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Malformed request (a missing Idempotency-Key, a bad parameter)",
        401: "No valid, unexpired bearer token",
        404: "No such work order in the token's scope",
        409: "The work order's state does not allow this action, or the "
        "Idempotency-Key's first request is still running",
        413: "Body too large",
        422: "The body is not what the action needs (or the key was used for another request)",
        429: "Rate limit of the token exceeded (see Retry-After)",
    }
    return {str(c): _json(_ERR, text[c]) for c in codes}


def _action(
    op: str, summary: str, body: dict[str, Any] | None, body_required: bool
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "operationId": op,
        "summary": summary,
        "tags": ["work orders"],
        "parameters": [
            {"$ref": "#/components/parameters/WorkOrderId"},
            {"$ref": "#/components/parameters/IdempotencyKey"},
        ],
        "responses": {
            "200": _json({"$ref": "#/components/schemas/ActionResult"}, "The order after it"),
            **_errors(400, 401, 404, 409, 413, 422, 429),
        },
    }
    if body is not None:
        doc["requestBody"] = {
            "required": body_required,
            "content": {"application/json": {"schema": body}},
        }
    return doc


def _body(props: dict[str, Any], required: Sequence[str] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": props,
        **({"required": list(required)} if required else {}),
    }


def _text(max_len: int) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": max_len, "pattern": TEXT_PATTERN}


def openapi(departments: Sequence[str]) -> dict[str, Any]:
    """The document; ``departments`` are those a return may name (from routing)."""
    string_map = {"type": "object", "additionalProperties": {"type": "string"}}
    work_order = {
        "type": "object",
        "description": "A work order as stored: every field a string (see README).",
        "required": ["id", "state", "centre", "department"],
        "properties": {
            "id": {"type": "string"},
            "state": {"type": "string", "enum": list(STATES)},
            "centre": {"type": "string"},
            "department": {"type": "string"},
        },
        "additionalProperties": {"type": "string"},
    }
    wo_paths = "/api/v1/workorders/{wo}"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "citywatch work-order API",
            "version": __version__,
            "description": (
                "For department systems: read the work orders in a token's scope (its "
                "centre and department) and act on them through the same lifecycle as "
                "the console. Every action needs an Idempotency-Key; a repeat with the "
                "same key and body gets the first answer again."
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/me": {
                "get": {
                    "operationId": "me",
                    "summary": "The token's own scope, expiry and rate limit",
                    "tags": ["tokens"],
                    "responses": {
                        "200": _json({"$ref": "#/components/schemas/Me"}, "The token"),
                        **_errors(401, 429),
                    },
                }
            },
            "/api/v1/workorders": {
                "get": {
                    "operationId": "listWorkOrders",
                    "summary": "Work orders in the token's scope, newest first",
                    "tags": ["work orders"],
                    "parameters": [
                        {"name": "state", "in": "query", "schema": {"enum": list(STATES)}},
                        {"name": "severity", "in": "query", "schema": {"enum": list(SEVERITIES)}},
                        {"name": "kind", "in": "query", "schema": {"type": "string"}},
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                        },
                        {
                            "name": "cursor",
                            "in": "query",
                            "description": "next_cursor of the previous page",
                            "schema": {"type": "integer", "minimum": 0},
                        },
                    ],
                    "responses": {
                        "200": _json({"$ref": "#/components/schemas/OrderList"}, "A page"),
                        **_errors(400, 401, 429),
                    },
                }
            },
            wo_paths: {
                "get": {
                    "operationId": "getWorkOrder",
                    "summary": "One work order with its audit trail and alerts",
                    "tags": ["work orders"],
                    "parameters": [{"$ref": "#/components/parameters/WorkOrderId"}],
                    "responses": {
                        "200": _json({"$ref": "#/components/schemas/OrderDetail"}, "The order"),
                        **_errors(401, 404, 429),
                    },
                }
            },
            f"{wo_paths}/sign": {"post": _action("sign", "Sign off", _body({}), False)},
            f"{wo_paths}/handle": {"post": _action("handle", "Start handling", _body({}), False)},
            f"{wo_paths}/feedback": {
                "post": _action(
                    "feedback",
                    "Report the disposal: resolves the order with text and links",
                    _body(
                        {
                            "text": _text(4000),
                            "links": {
                                "type": "array",
                                "maxItems": 10,
                                "items": {
                                    "type": "string",
                                    "maxLength": 2000,
                                    "pattern": LINK_PATTERN,
                                },
                            },
                        },
                        ["text"],
                    ),
                    True,
                )
            },
            f"{wo_paths}/close": {
                "post": _action(
                    "close",
                    "Verify and close (centre-wide tokens only)",
                    _body({"note": {"type": "string", "maxLength": 2000}}),
                    False,
                )
            },
            f"{wo_paths}/return": {
                "post": _action(
                    "return",
                    "Return it (wrong department), optionally to a department routing allows",
                    _body(
                        {
                            "reason": _text(2000),
                            "to_department": {"type": "string", "enum": list(departments)},
                        },
                        ["reason"],
                    ),
                    True,
                )
            },
            "/api/admin/webhooks": {
                "get": {
                    "operationId": "webhookStatus",
                    "summary": "Delivery status of every webhook subscription (leaders)",
                    "tags": ["admin"],
                    "security": [{"session": []}],
                    "responses": {
                        "200": _json(
                            {"$ref": "#/components/schemas/WebhookStatus"}, "The subscriptions"
                        ),
                        **_errors(401),
                        "403": _json(_ERR, "Signed in, but not as a leader"),
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "cwt.<id>.<secret> from `citywatch api tokens add`",
                },
                "session": {"type": "apiKey", "in": "cookie", "name": "cw_session"},
            },
            "parameters": {
                "WorkOrderId": {
                    "name": "wo",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "minLength": 1, "maxLength": 128},
                },
                "IdempotencyKey": {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": True,
                    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                },
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}},
                },
                "WorkOrder": work_order,
                "OrderList": {
                    "type": "object",
                    "required": ["orders", "next_cursor"],
                    "properties": {
                        "orders": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/WorkOrder"},
                        },
                        "next_cursor": {"type": ["integer", "null"]},
                    },
                },  # fmt: skip
                "OrderDetail": {
                    "type": "object",
                    "required": ["order", "audit", "alerts"],
                    "properties": {
                        "order": {"$ref": "#/components/schemas/WorkOrder"},
                        "audit": {"type": "array", "items": string_map},
                        "alerts": {"type": "array", "items": {"type": "object"}},
                    },
                },
                "ActionResult": {
                    "type": "object",
                    "required": ["ok", "order"],
                    "properties": {
                        "ok": {"type": "boolean"},
                        "order": {"$ref": "#/components/schemas/WorkOrder"},
                    },
                },
                "Me": {
                    "type": "object",
                    "required": ["id", "centre", "department", "expires_ms", "rate_per_min"],
                    "properties": {
                        "id": {"type": "string"},
                        "centre": {"type": "string"},
                        "department": {"type": "string"},
                        "expires_ms": {"type": "integer"},
                        "created_ms": {"type": "integer"},
                        "rate_per_min": {"type": "integer"},
                        "note": {"type": "string"},
                    },
                },
                "WebhookStatus": {
                    "type": "object",
                    "required": ["subscriptions"],
                    "properties": {
                        "subscriptions": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["id", "url", "failing", "backlog"],
                            },
                        }
                    },
                },
            },
        },
    }
