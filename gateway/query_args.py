"""Free-text query parameters, checked before they reach SQL (PostgreSQL refuses NUL bytes)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from flask import request

from nameko_services.domain import json_values, listings, tracing
from nameko_services.domain.errors import BadRequestError


def text_arg(name: str, max_length: int = 400) -> str | None:
    """A query parameter as text; empty → None; too long or holding NUL → 400."""
    value = request.args.get(name) or None
    if value is not None and (len(value) > max_length or "\x00" in value):
        raise BadRequestError(
            f"Query parameter '{name}' must be at most {max_length} characters, without NUL",
            {"fields": {name: f"at most {max_length} characters, no NUL"}},
        )
    return value


def trace_id_arg(name: str = "trace_id") -> str | None:
    """A W3C trace id (32 hex digits, as `trace_id` fields show it); else 400."""
    value = text_arg(name, 64)
    if value is not None and not tracing.is_trace_id(value.lower()):
        raise BadRequestError(f"Query parameter '{name}' must be a trace id: 32 hex digits",
                              {"fields": {name: "32 hex digits"}})
    return value.lower() if value is not None else None


def time_arg(name: str) -> datetime | None:
    """An RFC 3339 / ISO 8601 time (`2026-12-04T10:00:00Z`; without an offset: UTC); else 400."""
    value = text_arg(name, 64)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace(" ", "+"))  # '+' arrives as ' ' unescaped
    except ValueError as exc:
        raise BadRequestError(
            f"Query parameter '{name}' must be an ISO 8601 time, e.g. 2026-12-04T10:00:00Z",
            {"fields": {name: "an ISO 8601 time"}},
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def created_range() -> listings.TimeRange:
    """`since` (inclusive) and `until` (exclusive) on `created_at`; 400 when since ≥ until."""
    since, until = time_arg("since"), time_arg("until")
    if since and until and since >= until:
        raise BadRequestError("Query parameter 'since' must be before 'until'",
                              {"fields": {"since": "before until"}})
    return listings.TimeRange(since=since, until=until)


def json_object_arg(name: str, max_length: int = 2000) -> dict[str, Any] | None:
    """A JSON object in a query parameter (containment filters, e.g. `{"host": "web1"}`); else
    400 naming the parameter."""
    value = text_arg(name, max_length)
    if value is None:
        return None
    try:
        parsed = json.loads(value, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        parsed = None
    if not isinstance(parsed, dict) or not parsed or json_values.problem(parsed) is not None \
            or not json_values.is_utf8_text(parsed):
        raise BadRequestError(
            f"Query parameter '{name}' must be a non-empty JSON object, e.g. "
            '{"host": "web1"}',
            {"fields": {name: "a non-empty JSON object"}},
        )
    return parsed


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
