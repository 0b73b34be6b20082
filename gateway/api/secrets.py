"""Tenant secrets (api.md "Datastore and secrets"): names only; no route returns a value."""

from __future__ import annotations

from flask import Blueprint, Response

from nameko_services.domain import secrets
from nameko_services.domain.db import transaction
from nameko_services.domain.errors import ValidationError

from ..app import ctx
from ..auth import permission, principal
from ..http import accepts, json_body, one, page, page_args
from .openapi import returns

bp = Blueprint("secrets", __name__)


@bp.post("/api/v1/secrets")
@permission("write")
@accepts({"key": {"type": "string"}, "value": {"type": "string"}}, {"key"})
@returns("Secret")
def put_secret():
    """Create (201) or replace (200) a secret; the value is never returned."""
    body = json_body()
    if "value" not in body:
        raise ValidationError("Invalid request body", {"value": "required"})
    who = principal()
    with transaction(ctx().engine) as conn:
        item, created = secrets.put(conn, ctx().cipher, who.tenant_id, body["key"],
                                    body["value"], actor_type="user", actor=who.actor)
    if created:
        return one({"key": item["key"], "created_at": item["created_at"]}, 201)
    return one(item)


@bp.get("/api/v1/secrets")
@permission("read")
@returns("Secret", many=True)
def list_secrets():
    """List secret names and timestamps, newest first."""
    limit, offset = page_args()
    with transaction(ctx().engine) as conn:
        items, total = secrets.list_names(conn, principal().tenant_id, limit, offset)
    return page(items, total, limit, offset)


@bp.get("/api/v1/secrets/<path:key>")
@permission("read")
@returns("Secret")
def get_secret(key: str):
    """One secret's name and timestamps (never its value)."""
    with transaction(ctx().engine) as conn:
        return one(secrets.get(conn, principal().tenant_id, key))


@bp.delete("/api/v1/secrets/<path:key>")
@permission("write")
@returns(None)
def delete_secret(key: str):
    """Delete a secret (204)."""
    who = principal()
    with transaction(ctx().engine) as conn:
        secrets.delete(conn, who.tenant_id, key, actor_type="user", actor=who.actor)
    return Response(status=204)
