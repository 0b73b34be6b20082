"""Plumbing shared by the definition views: storable bodies, the acting user, after-commit news."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from nameko_services.domain import messages
from nameko_services.domain.catalog import Actor, Change
from nameko_services.domain.json_values import ensure_storable

from .app import ctx
from .auth import principal
from .http import json_body


def definition_fields(names: Iterable[str], types: Mapping[str, Mapping[str, Any]]
                      ) -> dict[str, Mapping[str, Any]]:
    """`accepts` properties for a definition: the domain's own field names, each with its JSON
    type (a name without one is a KeyError at import, so no field goes undocumented)."""
    return {name: types[name] for name in sorted(names)}


REF_OR_ID = {"oneOf": [{"type": "string"}, {"type": "integer"}], "description": "a ref or an id"}


def optional(kind: str, **extra: Any) -> dict[str, Any]:
    """A definition field's JSON type, null meaning "not set"."""
    return {"type": kind, "nullable": True, **extra}


def definition_body() -> dict[str, Any]:
    """The JSON object of the request, every value storable as jsonb/text (else 422 naming it)."""
    body = json_body()
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
