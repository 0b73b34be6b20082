"""create_app(config): the Flask application with every blueprint of gateway/api/."""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app
from kombu.exceptions import OperationalError as BrokerUnavailable
from sqlalchemy import Engine

from nameko_services.domain import backlog, messages
from nameko_services.domain.crypto import Cipher
from nameko_services.domain.db import make_engine
from nameko_services.domain.presence import Presence
from nameko_services.domain.settings import Settings

from . import api, observed, ratelimit, request_log
from .auth import check_route_access
from .errors import register_error_handlers
from .json_provider import OrjsonProvider
from .revocations import Revocations
from .waiters import Waiters


@dataclass
class Gateway:
    """Process-wide resources of the gateway, reachable from views via `ctx()`."""

    settings: Settings
    engine: Engine
    # Work that is one write statement, with no BEGIN/COMMIT: rate-limit buckets, webhooks
    # without an Idempotency-Key (db.make_engine's `autocommit`).
    autocommit: Engine
    cipher: Cipher
    publish: Any  # callable(source_service, event_type, payload); set by serve.py or tests
    backlog: backlog.Backlog  # admits webhooks and API runs (domain/backlog.py)
    waiters: Waiters  # requests waiting on an execution's news (`?wait=`, waiters.py)
    presence: Presence  # announces the tenants listened to here (domain/presence.py)
    rpc: Any = None  # RpcPool, set by serve.py
    notifications: Any = None  # NotificationHub, set by serve.py
    revocations: Any = None  # Revocations (revoked users' access tokens), set by create_app
    process: int = 1  # which of the gateway's processes serves (1..ATTUNE.gateway.processes)

    def dispose(self) -> None:
        """Close the database pools (both engines)."""
        self.engine.dispose()
        self.autocommit.dispose()


log = logging.getLogger(__name__)

Publish = Callable[[str, str, dict[str, Any]], None]


def after_commit(publish: Publish,
                 meanwhile: str = "the recovery sweep picks up what it announced") -> Publish:
    """The views publish only after their transaction committed, so a broker outage must not
    turn a request that was carried out into a 500: the executor's recovery sweep and the
    sensor's resync find the committed rows without the message. The warning says what
    happens `meanwhile` without it."""

    def send(source: str, event_type: str, payload: dict[str, Any]) -> None:
        try:
            publish(source, event_type, payload)
        except (BrokerUnavailable, OSError) as exc:
            log.warning("%s not published (broker unavailable: %s); %s", event_type, exc,
                        meanwhile)

    return send


def ctx() -> Gateway:
    return current_app.extensions["attune"]


def create_app(config: dict[str, Any], *, publish: Any = None, rpc: Any = None) -> Flask:
    """Build the app from a loaded nameko.yaml mapping; `publish`/`rpc` are injected by serve.py."""
    settings = Settings.from_mapping(config)
    app = Flask(__name__)
    app.config["ATTUNE_SETTINGS"] = settings
    app.config["MAX_CONTENT_LENGTH"] = max(settings.webhook_max_body_bytes, 64 * 1024 * 1024)
    app.json = OrjsonProvider(app)
    engine = make_engine(settings.database_url, pool_size=20)
    autocommit = make_engine(settings.database_url, pool_size=10, autocommit=True)
    raw_publish = publish or (lambda *_args: None)
    publish = after_commit(raw_publish)
    announce = after_commit(raw_publish, "its tenants' live news may be held back until an "
                                         "announcement gets through (domain/presence.py)")
    presence = Presence(
        lambda payload: announce(messages.GATEWAY, messages.LISTENERS_PRESENT, payload),
        settings.news.interval_seconds)
    app.extensions["attune"] = Gateway(
        settings=settings,
        engine=engine,
        autocommit=autocommit,
        cipher=Cipher(settings.encryption_keys, settings.active_key_id),
        publish=publish,
        backlog=backlog.shared(settings.database_url, settings.backlog),
        waiters=Waiters(settings.api.max_waiters, settings.api.tenant_max_waiters,
                        on_arrival=presence.arrived),
        presence=presence,
        rpc=rpc,
        revocations=Revocations(engine, settings.access_token_ttl_seconds),
    )
    register_error_handlers(app)
    request_log.install(app)  # first: every request, even one refused, has its ids and clock
    observed.install(app)
    app.before_request(check_route_access)
    ratelimit.install(app, autocommit)  # after check_route_access: limits need the caller
    for module_info in sorted(pkgutil.iter_modules(api.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{api.__name__}.{module_info.name}")
        blueprint = getattr(module, "bp", None)
        if blueprint is not None:
            app.register_blueprint(blueprint)
    return app
