"""Log lines an operator can follow (docs/observability.md "Logs"): every record carries the
context of the work it is about — `execution_id`, `tenant_id`, `event_id`, `trace_id`,
`request_id` — and the service that wrote it, as text or as one JSON object per line.

The context is bound per greenthread (`bind`, a context variable: each eventlet greenthread has
its own) by the entrypoints from the message they handle (`extensions.MessageContext`) and by the
gateway per request; a record's own `extra=` fields are added to it. `Formatter` is what
nameko.yaml's LOGGING section names, with `format: text | json` ($ATTUNE_LOG_FORMAT). Secrets
are masked before formatting (log_masking.MaskingFilter), whichever the format.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import logging
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

# The context fields, in the order the text format shows them.
FIELDS = ("service", "tenant_id", "event_id", "execution_id", "trace_id", "request_id")
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"

# Never changed in place (bind sets a new mapping), so one shared empty default is safe.
_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "attune_log_context", default=MappingProxyType({}))
_service: str | None = None


def set_service(name: str) -> None:
    """Name this process's service in every record from now on (`service`)."""
    global _service
    _service = name


def bind(**fields: Any) -> contextvars.Token[Mapping[str, Any]]:
    """Add `fields` (None values left out) to this greenthread's context; `unbind` the token."""
    given = {name: value for name, value in fields.items() if value is not None}
    return _context.set({**_context.get(), **given})


def unbind(token: contextvars.Token[Mapping[str, Any]]) -> None:
    """Restore the context as it was before the `bind` that returned `token`."""
    _context.reset(token)


@contextlib.contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """`fields` in the context of every record logged in this block."""
    token = bind(**fields)
    try:
        yield
    finally:
        unbind(token)


def context_of(payload: Any) -> dict[str, Any]:
    """The context fields a message payload names (the ids of messages.py's payloads)."""
    if not isinstance(payload, Mapping):
        return {}
    return {name: payload[name] for name in FIELDS if payload.get(name) is not None}


def current() -> dict[str, Any]:
    """This greenthread's context (for a thread it spawns: `bound(**current())` there)."""
    return dict(_context.get())


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The context fields of a record: the bound ones, then its own `extra=` ones."""
    found = {"service": _service} if _service else {}
    found.update(_context.get())
    for name in FIELDS:
        value = getattr(record, name, None)
        if value is not None:
            found[name] = value
    return found


class _Json(JsonFormatter):
    """python-json-logger's object with the context fields; a traceback as MaskingFilter left it."""

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord,
                   message_dict: dict[str, Any]) -> None:
        super().add_fields(log_data, record, message_dict)
        rest = dict(log_data)
        log_data.clear()  # time, level, then the context, then the rest: easier to read
        log_data.update(time=rest.pop("time"), level=rest.pop("level"))
        log_data.update(_ordered(fields_of(record)), **rest)

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info and record.exc_text:  # masked text: never format the original again
            record = copy.copy(record)
            record.exc_info = None
        return super().format(record)


class Formatter(logging.Formatter):
    """nameko.yaml's formatter: `format: text` (a line with the context as `name=value`) or
    `format: json` (one object per line: time, level, service, logger, message, context)."""

    def __init__(self, format: str = "text", datefmt: str | None = None) -> None:
        kind = (format or "text").strip().lower()
        if kind not in FORMATS:
            raise ValueError(f"logging format must be one of {', '.join(FORMATS)}, not {format!r}")
        super().__init__(TEXT_FORMAT, datefmt)
        self.kind = kind
        self._json = _Json(
            "%(levelname)s %(name)s %(message)s", timestamp="time",
            rename_fields={"levelname": "level", "name": "logger"},
            reserved_attrs=[*RESERVED_ATTRS, *FIELDS],
        ) if kind == "json" else None

    def format(self, record: logging.LogRecord) -> str:
        if self._json is not None:
            return self._json.format(record)
        line = super().format(record)
        context = fields_of(record)
        context.pop("service", None)  # the logger name says as much in text
        if not context:
            return line
        head, sep, tail = line.partition("\n")  # before a traceback, if any
        extra = " ".join(f"{name}={value}" for name, value in _ordered(context).items())
        return f"{head} [{extra}]{sep}{tail}"


def _ordered(context: dict[str, Any]) -> dict[str, Any]:
    return {name: context[name] for name in FIELDS if name in context}
