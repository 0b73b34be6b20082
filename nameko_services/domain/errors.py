"""The AttuneError tree: one root, each subclass one HTTP meaning (api.md's error envelope)."""

from __future__ import annotations

from typing import Any


class AttuneError(Exception):
    """Root of every error Attune raises on purpose; carries code, HTTP status and details."""

    code = "internal"
    http_status = 500

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details)
        self.message = message
        self.details = details or {}

    def __str__(self) -> str:
        return self.message


class ConfigurationError(AttuneError):
    """The configuration is missing a key or holds a bad value."""


class BadRequestError(AttuneError):
    """Malformed JSON or query."""

    code, http_status = "bad_request", 400


class UnauthorizedError(AttuneError):
    """Missing, forged, expired or wrong-type credentials."""

    code, http_status = "unauthorized", 401


class ForbiddenError(AttuneError):
    """Authenticated, but the role lacks the permission."""

    code, http_status = "forbidden", 403


class NotFoundError(AttuneError):
    """No such resource in the caller's tenant (other tenants' resources are also 'not found')."""

    code, http_status = "not_found", 404


class ConflictError(AttuneError):
    """The resource exists already or is in a state that forbids the request."""

    code, http_status = "conflict", 409


class PayloadTooLargeError(AttuneError):
    """The request body exceeds the configured limit."""

    code, http_status = "payload_too_large", 413


class ValidationError(AttuneError):
    """Input failed validation; details.fields maps each field path to what is wrong."""

    code, http_status = "validation_error", 422

    def __init__(
        self, message: str, fields: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(message, {"fields": fields or {}, **extra})
        self.fields = fields or {}


class RateLimitedError(AttuneError):
    """Too many requests; retry_after says when to come back."""

    code, http_status = "rate_limited", 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, {"retry_after": retry_after})
        self.retry_after = retry_after


class BacklogFullError(AttuneError):
    """Too much accepted work is waiting to start (domain/backlog.py): 429 when the tenant is
    over its own bound, 503 when the platform is over the global one; retry_after says when to
    come back. Nothing is stored for a refused request."""

    code = "backlog_full"

    def __init__(self, message: str, *, scope: str, queued: int, limit: int,
                 retry_after: int) -> None:
        super().__init__(message, {"scope": scope, "queued": queued, "limit": limit,
                                   "retry_after": retry_after})
        self.http_status = 429 if scope == "tenant" else 503
        self.retry_after = retry_after


class TooManyWaitersError(AttuneError):
    """A synchronous run (`?wait=`) found no room to wait in this gateway process: 429 when the
    tenant already holds its share of waiting requests, 503 when the process holds its maximum
    (ATTUNE.api). Nothing is stored for a refused request; retry_after says when to come back."""

    code = "too_many_waiters"

    def __init__(self, message: str, *, scope: str, waiting: int, limit: int,
                 retry_after: int = 1) -> None:
        super().__init__(message, {"scope": scope, "waiting": waiting, "limit": limit,
                                   "retry_after": retry_after})
        self.http_status = 429 if scope == "tenant" else 503
        self.retry_after = retry_after
