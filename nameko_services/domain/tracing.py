"""Trace ids (docs/observability.md "Tracing"): the W3C trace id that ties a webhook or API call
to the event, executions, messages, log lines and notifications it causes.

A `traceparent` header (W3C Trace Context, version 00: `00-<trace id>-<parent id>-<flags>`) is
honoured when well formed; anything else is ignored and a new trace id made, as the
specification asks of a receiver. Parsing is this one regular expression, so the platform
needs no tracing library unless spans are exported (nameko_services/tracing.py).
"""

from __future__ import annotations

import re
import secrets

TRACEPARENT = "traceparent"
# version (not ff), trace id (not all zeros), parent span id (not all zeros), flags; a future
# version may append fields after a dash (the specification's forward compatibility).
_TRACEPARENT = re.compile(
    r"(?!ff)([0-9a-f]{2})-(?!0{32})([0-9a-f]{32})-(?!0{16})([0-9a-f]{16})-([0-9a-f]{2})(-.*)?"
)
_TRACE_ID = re.compile(r"[0-9a-f]{32}")


def new_trace_id() -> str:
    """A fresh random trace id: 32 lowercase hex digits."""
    return secrets.token_hex(16)


def parent_of(header: str | None) -> tuple[str, str] | None:
    """(trace id, parent span id) of a valid `traceparent` header value; None otherwise."""
    if not header or len(header) > 512:
        return None
    match = _TRACEPARENT.fullmatch(header.strip())
    if match is None or (match.group(1) == "00" and match.group(5) is not None):
        return None  # version 00 has exactly four fields
    return match.group(2), match.group(3)


def trace_id_from(header: str | None) -> str:
    """The trace id of a `traceparent` header, or a new one when it is missing or invalid."""
    parent = parent_of(header)
    return parent[0] if parent else new_trace_id()


def is_trace_id(value: str) -> bool:
    """Is `value` a trace id as stored (32 lowercase hex digits)?"""
    return _TRACE_ID.fullmatch(value) is not None


def traceparent(trace_id: str, span_id: str | None = None) -> str:
    """A `traceparent` header value for `trace_id` (sampled), naming `span_id` or a new one."""
    return f"00-{trace_id}-{span_id or secrets.token_hex(8)}-01"
