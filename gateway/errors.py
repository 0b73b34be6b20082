"""The only place an error becomes HTTP: api.md's envelope, never a stack trace."""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from sqlalchemy.exc import OperationalError as DatabaseUnavailable
from werkzeug.exceptions import HTTPException

from nameko_services.domain.errors import (
    AttuneError,
    BacklogFullError,
    RateLimitedError,
    TooManyWaitersError,
)

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
    415: "unsupported_media_type", 422: "validation_error", 429: "rate_limited",
}
RETRY_AFTER_OUTAGE_SECONDS = 5


def error_response(status: int, code: str, message: str, details: dict | None = None):
    response = jsonify({"error": {"code": code, "message": message, "details": details or {}}})
    response.status_code = status
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(AttuneError)
    def _attune(exc: AttuneError):
        response = error_response(exc.http_status, exc.code, exc.message, exc.details)
        if isinstance(exc, RateLimitedError | BacklogFullError | TooManyWaitersError):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        status = exc.code or 500
        return error_response(status, _HTTP_CODES.get(status, "error"), exc.description or exc.name)

    @app.errorhandler(DatabaseUnavailable)
    def _database(exc: DatabaseUnavailable):
        # Connection refused, server shutting down or restarting: a moment's outage, not a bug.
        log.warning("database unavailable: %s", str(exc.orig).strip() or type(exc.orig).__name__)
        response = error_response(503, "unavailable", "The database is unavailable; retry shortly "
                                  "(a webhook with the same Idempotency-Key)")
        response.headers["Retry-After"] = str(RETRY_AFTER_OUTAGE_SECONDS)
        return response

    @app.errorhandler(Exception)
    def _internal(exc: Exception):
        log.exception("unhandled error")
        return error_response(500, "internal", "Internal server error")
