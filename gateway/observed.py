"""HTTP metrics of every request the gateway answers, and the outcome of every webhook call
(`attune_http_*`, `attune_webhooks_total`: docs/observability.md)."""

from __future__ import annotations

from flask import Flask, g, request
from werkzeug.wrappers import Response

from nameko_services import metrics

from . import request_log
from .ratelimit import WEBHOOK_ENDPOINT

UNMATCHED = "unmatched"  # the route label of a path no URL rule matches (404, 405)


def install(app: Flask) -> None:
    """Count every request when it is answered, timed from its first hook (request_log's)."""
    app.after_request(_count)


def _count(response: Response) -> Response:
    """Count the answered request by its URL rule (never the raw path: bounded labels)."""
    rule = request.url_rule
    route = rule.rule if rule is not None else UNMATCHED
    status = response.status_code
    metrics.HTTP_REQUESTS.labels(request.method, route, str(status)).inc()
    elapsed = request_log.elapsed()
    if elapsed is not None:
        metrics.HTTP_DURATION.labels(request.method, route).observe(elapsed)
    if request.endpoint == WEBHOOK_ENDPOINT:
        metrics.WEBHOOKS.labels(_webhook_outcome(response)).inc()
    return response


def _webhook_outcome(response: Response) -> str:
    """`accepted`, `duplicate` (an Idempotency-Key seen before), or the error's code (api.md:
    unauthorized, not_found, payload_too_large, rate_limited, backlog_full, ...)."""
    if response.status_code < 400:
        return "duplicate" if g.get("webhook_duplicate") else "accepted"
    body = response.get_json(silent=True)
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else "error"
