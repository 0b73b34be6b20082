"""GET /api/v1/openapi.json: OpenAPI 3.0 generated from the app's own routes.

Every rule of the url_map becomes an operation, with the permission its view declares
(`x-attune-permission`), the view's docstring as summary and bearer security unless public, so a
new route cannot be left out of the document. Its request body is the view's `http.accepts` (what
`json_body()` enforces) and its success answer the view's `returns` (a schema of schemas.py).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from importlib import metadata
from typing import Any, TypeVar

from flask import Blueprint, Flask, current_app, jsonify
from werkzeug.routing import Rule

from ..auth import PUBLIC, permission
from .schemas import OBJECTS

bp = Blueprint("openapi", __name__)
F = TypeVar("F", bound=Callable[..., Any])

IGNORED_METHODS = frozenset({"HEAD", "OPTIONS"})
_PARAM = re.compile(
    r"<(?:(?P<converter>[a-zA-Z_][a-zA-Z0-9_]*)(?:\((?P<args>[^>]*)\))?:)?(?P<name>\w+)>")
_TYPES = {
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "uuid": {"type": "string", "format": "uuid"},
}
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {
                    "type": "string",
                    "enum": ["bad_request", "unauthorized", "forbidden", "not_found",
                             "conflict", "validation_error", "rate_limited", "backlog_full",
                             "too_many_waiters",
                             "internal",
                             "method_not_allowed", "payload_too_large",
                             "unsupported_media_type"],
                },
                "message": {"type": "string"},
                "details": {
                    "type": "object",
                    "description": "validation_error: `fields` maps each field path to its problem",
                    "additionalProperties": True,
                },
            },
        }
    },
}
PAGINATION_SCHEMA = {
    "type": "object",
    "required": ["total", "limit", "offset", "next_offset"],
    "properties": {
        "total": {"type": "integer", "minimum": 0},
        "limit": {"type": "integer", "minimum": 1},
        "offset": {"type": "integer", "minimum": 0},
        "next_offset": {"type": "integer", "nullable": True},
    },
}
# api.md "Responses": one object or a page of them under `data`, a page with its `pagination`;
# the answer of a view that declares no `returns` (a new route is documented, if vaguely).
ENVELOPE_SCHEMA = {
    "type": "object",
    "description": "`data`: the object (or list of them); lists add `pagination`",
    "properties": {
        "data": {"oneOf": [{"type": "object"}, {"type": "array", "items": {}}]},
        "pagination": {"$ref": "#/components/schemas/Pagination"},
    },
}
_ERRORS = {
    "400": "Malformed JSON or query",
    "401": "Missing, invalid or expired token",
    "403": "The role lacks the permission",
    "404": "Not found in the caller's tenant",
    "409": "Conflict with the resource's state",
    "422": "Validation failed (details.fields)",
    "429": "Rate limited, or the tenant's backlog is full, or (?wait=) the tenant has its "
           "most requests waiting (see Retry-After)",
}

# The 503 of the views that accept work (webhooks, API runs): docs/reliability.md "Backlog";
# with `?wait=`, also this gateway process's bound on waiting requests (ATTUNE.api).
BACKLOG_FULL = ("The platform's backlog is full (backlog_full), or, with ?wait=, this gateway "
                "process has its most requests waiting (too_many_waiters); see Retry-After")
# `?wait=S` of the views that run like a function (api.md "Waiting for the result").
WAIT = ("Seconds (0 < wait <= ATTUNE.api.max_wait_seconds, default 60) to wait for the "
        "execution to end: 200 with it when it ends in time, else 202 with it as it is then "
        "(it runs on). A bad value is 400; 429/503 too_many_waiters when no room to wait.")
# `?trace_id=` of the event and execution lists (docs/observability.md "Tracing").
TRACE_ID = ("Only those of this trace: the W3C trace id (32 hex digits) of the webhook or API "
            "call that caused them, as their `trace_id` shows; anything else is 400.")
TRACE_ID_SCHEMA = {"type": "string", "pattern": "^[0-9a-fA-F]{32}$"}


def responds(status: int, description: str) -> Callable[[F], F]:
    """Document an error a view answers beyond those its permission implies (a public route's
    403, say), so clients and the fuzzer know to expect it."""

    def mark(view: F) -> F:
        extra = dict(getattr(view, "attune_responses", {}))
        extra[str(status)] = description
        view.attune_responses = extra  # type: ignore[attr-defined]
        return view

    return mark


def produces(*mimetypes: str) -> Callable[[F], F]:
    """Document what a view answers on success when it is not JSON (HTML pages, assets,
    Prometheus text)."""

    def mark(view: F) -> F:
        view.attune_produces = mimetypes  # type: ignore[attr-defined]
        return view

    return mark


def returns(name: str | None, *, many: bool = False, envelope: bool = True
            ) -> Callable[[F], F]:
    """Document what a view answers on success: the component schema `name` under `data` (a
    page of them with `many`, the bare object without `envelope`); None: 204, no body."""
    if name is not None and name not in OBJECTS:
        raise ValueError(f"no component schema {name!r}")

    def mark(view: F) -> F:
        view.attune_returns = (name, many, envelope)  # type: ignore[attr-defined]
        return view

    return mark


def uploads(properties: dict[str, Any], required: tuple[str, ...]) -> Callable[[F], F]:
    """Document the multipart/form-data body a view also accepts (a pack archive)."""

    def mark(view: F) -> F:
        view.attune_upload = {  # type: ignore[attr-defined]
            "type": "object", "properties": properties, "required": list(required)}
        return view

    return mark


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _success(view: Callable[..., Any]) -> dict[str, Any]:
    """The view's 2XX responses: its `produces`, else its `returns`, else the envelope."""
    mimetypes = getattr(view, "attune_produces", None)
    if mimetypes:
        return {"2XX": {"description": "Success", "content": {
            mimetype: {"schema": {"type": "string"}} for mimetype in mimetypes}}}
    name, many, envelope = getattr(view, "attune_returns", ("", False, True))
    if name is None:
        return {"204": {"description": "Done: no content"}}
    if not name:
        schema = _ref("Envelope")
    elif not envelope:
        schema = _ref(name)
    elif many:
        schema = {"type": "object", "required": ["data", "pagination"], "properties": {
            "data": {"type": "array", "items": _ref(name)}, "pagination": _ref("Pagination")}}
    else:
        schema = {"type": "object", "required": ["data"], "properties": {"data": _ref(name)}}
    return {"2XX": {"description": "Success", "content": {"application/json": {"schema": schema}}}}


def query_parameter(name: str, description: str, schema: dict[str, Any] | None = None
                    ) -> Callable[[F], F]:
    """Document a query parameter of a view (path parameters come from the route itself)."""

    def mark(view: F) -> F:
        view.attune_query = [*getattr(view, "attune_query", []), {  # type: ignore[attr-defined]
            "name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "number", "exclusiveMinimum": True, "minimum": 0},
        }]
        return view

    return mark


def _version() -> str:
    try:
        return metadata.version("attune")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def _path(rule: Rule) -> tuple[str, list[dict[str, Any]]]:
    """Flask `/x/<int:id>` → OpenAPI `/x/{id}` plus its typed path parameters."""
    params: list[dict[str, Any]] = []

    def repl(match: re.Match[str]) -> str:
        converter = match.group("converter") or "default"
        schema = dict(_TYPES.get(converter, {"type": "string"}))
        if converter == "any":  # `<any(a, b):name>`: one of the listed words
            schema["enum"] = [word.strip() for word in match.group("args").split(",")]
        params.append({
            "name": match.group("name"),
            "in": "path",
            "required": True,
            "schema": schema,
        })
        return "{" + match.group("name") + "}"

    return _PARAM.sub(repl, rule.rule), params


def _operation(app: Flask, rule: Rule, method: str, params: list[dict[str, Any]],
               many_methods: bool) -> dict[str, Any]:
    view = app.view_functions[rule.endpoint]
    needed = getattr(view, "attune_permission", None)
    doc = inspect.getdoc(view) or ""
    summary, _, description = doc.partition("\n")
    operation: dict[str, Any] = {
        "operationId": f"{rule.endpoint}.{method.lower()}" if many_methods else rule.endpoint,
        "summary": summary.strip() or rule.endpoint,
        "tags": [rule.endpoint.split(".", 1)[0]],
        "x-attune-permission": needed or "undeclared (refused)",
        "responses": {
            **_success(view),
            "default": {"$ref": "#/components/responses/Error"},
        },
    }
    if description.strip():
        operation["description"] = description.strip()
    params = [*params, *getattr(view, "attune_query", [])]
    if params:
        operation["parameters"] = params
    if needed == PUBLIC:
        operation["security"] = []
    else:
        operation["responses"]["401"] = {"$ref": "#/components/responses/Error"}
        operation["responses"]["403"] = {"$ref": "#/components/responses/Error"}
        if getattr(view, "attune_execution_token", False):
            operation["x-attune-execution-token"] = True
    for status, text in getattr(view, "attune_responses", {}).items():
        operation["responses"][status] = {
            "description": text,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    body = getattr(view, "attune_body", None)  # gateway.http.accepts: what json_body checks
    if body is not None and method in ("POST", "PUT", "PATCH"):
        operation["requestBody"] = {
            "required": bool(body.get("required")),
            "content": {"application/json": {"schema": body}},
        }
        upload = getattr(view, "attune_upload", None)
        if upload is not None:
            operation["requestBody"]["content"]["multipart/form-data"] = {"schema": upload}
    if rule.websocket:  # answers the upgrade, then speaks WebSocket (docs/api.md)
        del operation["responses"]["2XX"]
        operation["x-attune-websocket"] = True
        operation["responses"]["101"] = {"description": "Switching Protocols (WebSocket)"}
    return operation


def build_openapi(app: Flask) -> dict[str, Any]:
    """The whole document for `app`, one operation per (rule, method)."""
    paths: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        if rule.endpoint == "static":
            continue
        path, params = _path(rule)
        methods = sorted((rule.methods or set()) - IGNORED_METHODS)
        item = paths.setdefault(path, {})
        for method in methods:
            operation = _operation(app, rule, method, params, len(methods) > 1)
            base, n = operation["operationId"], 1
            while operation["operationId"] in seen:  # one view mounted at several paths
                n += 1
                operation["operationId"] = f"{base}_{n}"
            seen.add(operation["operationId"])
            item[method.lower()] = operation
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Attune API",
            "version": _version(),
            "description": "Event-driven automation: packs, actions, triggers, rules, "
                           "executions, datastore, secrets, inquiries and audit.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            },
            "schemas": {"Error": ERROR_SCHEMA, "Envelope": ENVELOPE_SCHEMA,
                        "Pagination": PAGINATION_SCHEMA, **OBJECTS},
            "responses": {
                "Error": {
                    "description": "api.md error envelope; "
                    + "; ".join(f"{code} {text}" for code, text in _ERRORS.items()),
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                }
            },
        },
    }


@bp.get("/api/v1/openapi.json")
@permission(PUBLIC)
@returns("OpenAPIDocument", envelope=False)
def openapi_document():
    """This API as an OpenAPI 3.0 document, generated from the routes themselves."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    document = app.extensions.get("attune_openapi")
    if document is None:
        document = app.extensions["attune_openapi"] = build_openapi(app)
    return jsonify(document)
