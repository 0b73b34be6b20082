"""Plumbing shared by the definition views: storable bodies, the acting user, after-commit news."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from nameko_services.domain import messages
from nameko_services.domain.catalog import Actor, Change
from nameko_services.domain.json_values import ensure_storable

from .app import ctx
from .auth import principal
from .http import json_body


def definition_body(allowed: Iterable[str]) -> dict[str, Any]:
    """The JSON object of the request, every value storable as jsonb/text (else 422 naming it)."""
    body = json_body(allowed)
    for key, value in body.items():
        ensure_storable(value, key)
    return body


def publish_changes(changes: Iterable[Change]) -> None:
    """Tell the services (sensor, executor) what changed; call only after the commit."""
    gateway = ctx()
    for change in changes:
        gateway.publish(messages.GATEWAY, change.event, change.payload)


def acting_user() -> Actor:
    return Actor("user", principal().actor)
