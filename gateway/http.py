"""Request parsing and response shapes shared by every resource blueprint."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from flask import current_app, jsonify, request

from nameko_services.domain.errors import BadRequestError, ValidationError
from nameko_services.domain.json_values import is_utf8_text

F = TypeVar("F", bound=Callable[..., Any])
MAX_LIMIT = 200
DEFAULT_LIMIT = 50


def accepts(properties: Mapping[str, Mapping[str, Any]], required: Iterable[str] = ()
            ) -> Callable[[F], F]:
    """Declare the view's JSON body: the one schema `json_body()` enforces (unknown fields,
    missing required ones) and the OpenAPI document shows, so the two cannot drift apart."""
    schema: dict[str, Any] = {"type": "object", "properties": dict(properties),
                              "additionalProperties": False}
    if required:
        schema["required"] = sorted(required)
    return request_schema(schema)


def request_schema(schema: Mapping[str, Any]) -> Callable[[F], F]:
    """Declare the view's JSON body as any schema (a webhook takes any JSON value)."""

    def mark(view: F) -> F:
        view.attune_body = dict(schema)  # type: ignore[attr-defined]
        return view

    return mark


def json_body() -> dict[str, Any]:
    """The JSON object of the request, checked against the view's `accepts`: unknown fields
    and missing required ones are 422."""
    schema = current_app.view_functions[request.endpoint].attune_body  # type: ignore[index]
    body: Any = {}
    if request.data:
        try:
            body = request.get_json(silent=True, force=True)
            utf8 = is_utf8_text(body)
        except RecursionError as exc:  # hostile input: [[[[...]]]] beyond Python's stack
            raise BadRequestError("Request body is nested too deeply") from exc
        if body is None and request.data.strip() not in (b"null",):
            raise BadRequestError("Request body is not valid JSON")
        if not utf8:
            raise BadRequestError("Request body is not valid UTF-8 text (lone surrogate)")
    if not isinstance(body, dict):
        raise ValidationError("Request body must be a JSON object", {"body": "must be an object"})
    fields = {name: "unknown field" for name in body if name not in schema["properties"]}
    fields.update({name: "required" for name in schema.get("required", ())
                   if body.get(name) in (None, "")})
    if fields:
        raise ValidationError("Invalid request body", fields)
    return body


def int_arg(name: str, default: int | None = None, *, minimum: int | None = None,
            maximum: int | None = None) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise BadRequestError(f"Query parameter '{name}' must be an integer",
                              {"fields": {name: "must be an integer"}}) from exc
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise BadRequestError(
            f"Query parameter '{name}' must be between {minimum} and {maximum}",
            {"fields": {name: f"out of range [{minimum}, {maximum}]"}},
        )
    return value


def page_args() -> tuple[int, int]:
    limit = int_arg("limit", DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
    offset = int_arg("offset", 0, minimum=0)
    return limit or DEFAULT_LIMIT, offset or 0


def one(data: Any, status: int = 200):
    response = jsonify({"data": data})
    response.status_code = status
    return response


def page(items: list[Any], total: int, limit: int, offset: int):
    next_offset = offset + limit if offset + limit < total else None
    return jsonify({
        "data": items,
        "pagination": {"total": total, "limit": limit, "offset": offset,
                       "next_offset": next_offset},
    })


def path_id(value: str, what: str) -> int:
    """Ids in paths are integers; anything else (an injection attempt, say) is a plain 404."""
    from nameko_services.domain.errors import NotFoundError

    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise NotFoundError(f"{what} {value} not found")
    return int(value)
