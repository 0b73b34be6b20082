"""Checks that a user-supplied JSON value can be stored in a PostgreSQL jsonb column.

jsonb refuses NaN/Infinity and the NUL character; catching them here turns what would be a
database error (500) into a client error naming the field.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from .errors import BadRequestError, ValidationError

MAX_DEPTH = 100
# JSON may escape half a UTF-16 pair (`"\ud800"`): not UTF-8 text, so PostgreSQL refuses it.
_SURROGATE = re.compile("[\ud800-\udfff]")


def problem(value: Any, depth: int = 0) -> str | None:
    """Why `value` cannot be stored as jsonb, or None when it can."""
    if depth > MAX_DEPTH:
        return f"nested deeper than {MAX_DEPTH} levels"
    if isinstance(value, str):
        if "\x00" in value:
            return "contains a NUL character"
        return "contains a lone surrogate (not UTF-8)" if _SURROGATE.search(value) else None
    if isinstance(value, float):
        return None if math.isfinite(value) else "NaN and Infinity are not JSON"
    if value is None or isinstance(value, bool | int):
        return None
    if isinstance(value, list | tuple):
        return next((p for item in value if (p := problem(item, depth + 1))), None)
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return "object keys must be strings"
            found = problem(key, depth + 1) or problem(item, depth + 1)
            if found:
                return found
        return None
    return f"{type(value).__name__} is not a JSON type"


def ensure_storable(value: Any, field: str) -> Any:
    """Return `value` unchanged, or raise ValidationError (422) naming `field`."""
    found = problem(value)
    if found:
        raise ValidationError(f"Invalid value for {field}: {found}", {field: found})
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse(raw: bytes, what: str = "Request body") -> Any:
    """Strict JSON parse of a raw body (UTF-8, no NaN/Infinity); empty → None; bad → 400."""
    if not raw.strip():
        return None
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequestError(f"{what} is not valid JSON") from exc
    except RecursionError as exc:
        raise BadRequestError(f"{what} is nested too deeply") from exc
    found = problem(value)
    if found:
        raise BadRequestError(f"{what} cannot be stored: {found}")
    return value


def is_utf8_text(value: Any) -> bool:
    """True when every string (keys too) of a parsed JSON value is encodable as UTF-8."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, ValueError, TypeError):
        return False
    return True
