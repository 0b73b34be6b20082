"""Rate limits in front of the views: per user (admins in a larger bucket of their own), per
webhook trigger, per failed-login user name and per login client address.

Installed by `create_app` after `check_route_access`, so the caller is already known (and a
denied request spends nothing). Over a limit the request is refused before the view runs:
429 `rate_limited` with `Retry-After` (api.md). Webhook calls are limited per trigger whoever
sends them. Every login attempt spends a token of its client address's bucket up front, so
parallel attempts cannot slip past it. The buckets live in this process: docs/security.md
explains how the limit holds with several gateway processes.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from flask import Flask, current_app, g, request
from werkzeug.wrappers import Response

from nameko_services.domain.errors import RateLimitedError
from nameko_services.domain.settings import BucketSettings, RateLimitSettings
from nameko_services.domain.states import Role
from nameko_services.domain.token_bucket import TokenBuckets, retry_after_seconds

EXTENSION = "attune_rate_limits"
WEBHOOK_ENDPOINT = "webhooks.receive"
LOGIN_ENDPOINT = "auth.login"
MAX_USERNAME_CHARS = 200


class RateLimits:
    """The five sets of buckets of one gateway process."""

    def __init__(
        self, settings: RateLimitSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        def buckets(spec: BucketSettings) -> TokenBuckets:
            return TokenBuckets(spec.rate, spec.burst, clock=clock)

        self.settings = settings
        self.user = buckets(settings.user)
        self.admin = buckets(settings.admin)
        self.webhook = buckets(settings.webhook)
        self.login_failures = buckets(settings.login_failures)
        self.login_address = buckets(settings.login_address)


def install(app: Flask, clock: Callable[[], float] = time.monotonic) -> RateLimits | None:
    """Register the limits on `app` (nothing when `rate_limit.enabled` is false)."""
    settings: RateLimitSettings = app.config["ATTUNE_SETTINGS"].rate_limit
    if not settings.enabled:
        return None
    limits = app.extensions[EXTENSION] = RateLimits(settings, clock)
    app.before_request(enforce)
    app.after_request(count_login_failure)
    return limits


def _limits() -> RateLimits:
    return current_app.extensions[EXTENSION]


def _refuse(wait: float, what: str, spec: BucketSettings) -> RateLimitedError:
    seconds = retry_after_seconds(wait)
    return RateLimitedError(
        f"Rate limit exceeded for {what} ({spec.rate:g} requests/s, burst {spec.burst});"
        f" retry in {seconds} s",
        seconds,
    )


def _trigger_id() -> str | None:
    raw = (request.view_args or {}).get("trigger_id")
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 18:
        return str(int(raw))
    return None  # not an id: the view answers 404 without touching anything


def _login_name() -> str | None:
    body = request.get_json(silent=True, force=True) if request.data else None
    name = body.get("username") if isinstance(body, dict) else None
    if isinstance(name, str) and 0 < len(name) <= MAX_USERNAME_CHARS:
        return name
    return None


def enforce() -> None:
    """before_request: take a token from the caller's bucket or refuse with 429."""
    endpoint = request.endpoint
    if endpoint is None:  # 404/405: nothing to protect
        return
    limits = _limits()
    if endpoint == WEBHOOK_ENDPOINT:
        trigger_id = _trigger_id()
        if trigger_id is not None:
            wait = limits.webhook.take(trigger_id)
            if wait:
                raise _refuse(wait, f"webhook trigger {trigger_id}", limits.settings.webhook)
        return
    if endpoint == LOGIN_ENDPOINT:
        address = request.remote_addr or "unknown"  # the socket peer; X-Forwarded-For is not read
        wait = limits.login_address.take(address)
        if wait:
            raise _refuse(wait, f"logins from {address}", limits.settings.login_address)
        name = _login_name()
        wait = limits.login_failures.peek(name) if name is not None else 0.0
        if wait:
            raise _refuse(wait, "failed logins of this user name",
                          limits.settings.login_failures)
        return
    who = g.get("principal")
    if who is None:  # public route
        return
    if who.token_type != "execution" and who.role == Role.ADMIN:
        buckets, spec = limits.admin, limits.settings.admin  # larger, but not unlimited
    else:
        buckets, spec = limits.user, limits.settings.user
    wait = buckets.take(who.actor)
    if wait:
        raise _refuse(wait, who.actor, spec)


def count_login_failure(response: Response) -> Response:
    """after_request: a refused login spends a token of that user name's bucket."""
    if request.endpoint == LOGIN_ENDPOINT and response.status_code == 401:
        name = _login_name()
        if name is not None:
            _limits().login_failures.take(name)
    return response

