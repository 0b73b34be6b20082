"""Rate limits in front of the views: per user (admins in a larger bucket of their own), per
webhook trigger, per failed-login user name and per login client address.

Installed by `create_app` after `check_route_access`, so the caller is already known (and a
denied request spends nothing). Over a limit the request is refused before the view runs:
429 `rate_limited` with `Retry-After` (api.md). Webhook calls are limited per trigger whoever
sends them. Every login attempt spends a token of its client address's bucket up front, so
parallel attempts cannot slip past it. The buckets live in PostgreSQL
(domain/token_bucket.py), so every gateway process, on this host or another, spends from the
same ones: a limit is the same whichever process a request reaches.
"""

from __future__ import annotations

import logging
import time

from flask import Flask, current_app, g, request
from sqlalchemy import Engine
from werkzeug.wrappers import Response

from nameko_services import metrics
from nameko_services.domain.errors import RateLimitedError
from nameko_services.domain.settings import BucketSettings, RateLimitSettings
from nameko_services.domain.states import Role
from nameko_services.domain.token_bucket import Clock, SharedBuckets, retry_after_seconds

EXTENSION = "attune_rate_limits"
WEBHOOK_ENDPOINT = "webhooks.receive"
LOGIN_ENDPOINT = "auth.login"
MAX_USERNAME_CHARS = 200
# How often each gateway process deletes the rows of buckets that are full again (serve.py).
SWEEP_SECONDS = 30.0

log = logging.getLogger(__name__)


class RateLimits:
    """The five sets of buckets, shared by every gateway process through `engine`'s database;
    `clock` replaces the database's clock in tests."""

    def __init__(self, settings: RateLimitSettings, engine: Engine,
                 clock: Clock | None = None) -> None:
        def buckets(name: str) -> SharedBuckets:
            spec: BucketSettings = getattr(settings, name)
            return SharedBuckets(engine, name, spec.rate, spec.burst, clock=clock)

        self.settings = settings
        self.user = buckets("user")
        self.admin = buckets("admin")
        self.webhook = buckets("webhook")
        self.login_failures = buckets("login_failures")
        self.login_address = buckets("login_address")

    def sweep(self) -> None:
        """Forget the buckets that are full again (their rows), keeping the table small."""
        for buckets in (self.user, self.admin, self.webhook, self.login_failures,
                        self.login_address):
            buckets.sweep()


def install(app: Flask, engine: Engine) -> RateLimits | None:
    """Register the limits on `app`, kept in `engine`'s database (nothing when
    `rate_limit.enabled` is false)."""
    settings: RateLimitSettings = app.config["ATTUNE_SETTINGS"].rate_limit
    if not settings.enabled:
        return None
    limits = app.extensions[EXTENSION] = RateLimits(settings, engine)
    app.before_request(enforce)
    app.after_request(count_login_failure)
    return limits


def sweep_forever(limits: RateLimits, interval: float = SWEEP_SECONDS) -> None:
    """Sweep every `interval` seconds until the process ends (a green thread of serve.py); a
    failed sweep (the database down) is logged and tried again next time."""
    while True:
        time.sleep(interval)
        try:
            limits.sweep()
        except Exception:
            log.warning("rate-limit sweep failed; trying again in %g s", interval, exc_info=True)


def _limits() -> RateLimits:
    return current_app.extensions[EXTENSION]


def _refuse(wait: float, bucket: str, what: str, spec: BucketSettings) -> RateLimitedError:
    """The 429 of `bucket` (one of RateLimits' five sets), counted in attune_rate_limited_total."""
    metrics.RATE_LIMITED.labels(bucket).inc()
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
                raise _refuse(wait, "webhook", f"webhook trigger {trigger_id}",
                              limits.settings.webhook)
        return
    if endpoint == LOGIN_ENDPOINT:
        address = request.remote_addr or "unknown"  # the socket peer; X-Forwarded-For is not read
        wait = limits.login_address.take(address)
        if wait:
            raise _refuse(wait, "login_address", f"logins from {address}",
                          limits.settings.login_address)
        name = _login_name()
        wait = limits.login_failures.peek(name) if name is not None else 0.0
        if wait:
            raise _refuse(wait, "login_failures", "failed logins of this user name",
                          limits.settings.login_failures)
        return
    who = g.get("principal")
    if who is None:  # public route
        return
    if who.token_type != "execution" and who.role == Role.ADMIN:
        name, buckets, spec = "admin", limits.admin, limits.settings.admin  # larger, not unlimited
    else:
        name, buckets, spec = "user", limits.user, limits.settings.user
    wait = buckets.take(who.actor)
    if wait:
        raise _refuse(wait, name, who.actor, spec)


def count_login_failure(response: Response) -> Response:
    """after_request: a refused login spends a token of that user name's bucket."""
    if request.endpoint == LOGIN_ENDPOINT and response.status_code == 401:
        name = _login_name()
        if name is not None:
            _limits().login_failures.take(name)
    return response

