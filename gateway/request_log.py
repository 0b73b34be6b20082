"""Each request's ids and its access log line (docs/observability.md "Logs", "Tracing").

A request id is the caller's `X-Request-Id` when it is a sane token, else a new one, and is
returned in the response's `X-Request-Id`. A trace id comes from a valid W3C `traceparent`
header, else a new one; the webhook and run views store it on what they create
(`trace_id()`), and such a response carries a `traceparent` naming it. Both ids are in the
log context of everything logged while the request runs, and the access log
(`gateway.access`, INFO) ends it: method, route, status, duration and the request id.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, Response, g, request

from nameko_services import logs, tracing
from nameko_services.domain import tracing as domain_tracing

REQUEST_ID = "X-Request-Id"
# What a proxy or client may send as a request id (a UUID, a ULID, base64url …); else ours.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:+/=-]{1,128}")

access_log = logging.getLogger("gateway.access")


def install(app: Flask) -> None:
    """Give every request of `app` its ids, log context and access log line."""
    app.before_request_funcs.setdefault(None, []).insert(0, _begin)  # before any refusal
    app.after_request(_end)
    app.teardown_request(_unbind)


def trace_id() -> str:
    """This request's trace id, for the event or execution it creates (and the response's
    `traceparent`)."""
    g.trace_used = True
    return g.trace_id


@contextmanager
def span(name: str, **attributes: object) -> Iterator[str | None]:
    """This request's span (tracing.span) in its trace, the caller's span its parent; yields
    its id for the work message it publishes (None when tracing is off)."""
    with tracing.span(name, trace_id(), g.parent_span_id, **attributes) as span_id:
        yield span_id


def elapsed() -> float | None:
    """Seconds since this request's first hook ran (None if it never did): the one clock of
    the access log and the HTTP metrics (observed.py)."""
    started = g.get("request_started")
    return None if started is None else time.perf_counter() - started


def _begin() -> None:
    g.request_started = time.perf_counter()
    given = request.headers.get(REQUEST_ID, "")
    g.request_id = given if _REQUEST_ID.fullmatch(given) else secrets.token_hex(16)
    parent = domain_tracing.parent_of(request.headers.get(domain_tracing.TRACEPARENT))
    g.trace_id, g.parent_span_id = parent or (domain_tracing.new_trace_id(), None)
    g.log_token = logs.bind(request_id=g.request_id, trace_id=g.trace_id)


def _end(response: Response) -> Response:
    request_id = g.get("request_id")
    if request_id is None:  # a request refused before _begin ran: nothing to say
        return response
    response.headers[REQUEST_ID] = request_id
    if g.get("trace_used"):
        response.headers[domain_tracing.TRACEPARENT] = domain_tracing.traceparent(g.trace_id)
    route = request.url_rule.rule if request.url_rule else None  # never the raw path
    duration_ms = round((elapsed() or 0.0) * 1000, 1)
    access_log.info("%s %s %s %.1f ms", request.method, route or "(no route)",
                    response.status_code, duration_ms, extra={
                        "method": request.method, "route": route, "status": response.status_code,
                        "duration_ms": duration_ms, "request_id": request_id})
    return response


def _unbind(_exc: BaseException | None) -> None:
    token = g.pop("log_token", None)
    if token is not None:
        logs.unbind(token)
