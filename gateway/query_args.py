"""Free-text query parameters, checked before they reach SQL (PostgreSQL refuses NUL bytes)."""

from __future__ import annotations

from flask import request

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
