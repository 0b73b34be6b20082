"""The tenant key-value store (api.md "Datastore"); actions reach it with their execution token."""

from __future__ import annotations

from flask import Blueprint, Response

from nameko_services.domain import datastore
from nameko_services.domain.auth import Principal
from nameko_services.domain.db import transaction
from nameko_services.domain.errors import ValidationError

from ..app import ctx
from ..auth import permission, principal
from ..http import accepts, json_body, one, page, page_args
from ..query_args import text_arg
from .openapi import returns

bp = Blueprint("datastore", __name__)


def actor_type(who: Principal) -> str:
    """Audit actor type: an action writing through its execution token acts as the worker."""
    return "worker" if who.token_type == "execution" else "user"


@bp.post("/api/v1/datastore")
@permission("write", execution_token=True)
@accepts({"key": {"type": "string"}, "value": {"description": "required: any JSON value",
                                             "nullable": True},
          "encrypted": {"type": "boolean"}, "ttl_seconds": {"type": "integer", "minimum": 1}},
         {"key"})
@returns("DatastoreItem")
def put_item():
    """Create (201) or replace (200) a key, optionally encrypted and expiring."""
    body = json_body()
    if "value" not in body:
        raise ValidationError("Invalid request body", {"value": "required"})
    who = principal()
    with transaction(ctx().engine) as conn:
        item, created = datastore.put(
            conn, ctx().cipher, who.tenant_id, body["key"], body["value"],
            encrypted=body.get("encrypted", False), ttl_seconds=body.get("ttl_seconds"),
            actor_type=actor_type(who), actor=who.actor,
        )
    return one(item, 201 if created else 200)


@bp.get("/api/v1/datastore")
@permission("read", execution_token=True)
@returns("DatastoreItem", many=True)
def list_items():
    """List live keys, newest first; encrypted values shown as "***"."""
    limit, offset = page_args()
    prefix = text_arg("prefix")
    with transaction(ctx().engine) as conn:
        items, total = datastore.list_items(conn, principal().tenant_id, limit, offset, prefix)
    return page(items, total, limit, offset)


@bp.get("/api/v1/datastore/<path:key>")
@permission("read", execution_token=True)
@returns("DatastoreItem")
def get_item(key: str):
    """One live key with its value decrypted."""
    with transaction(ctx().engine) as conn:
        return one(datastore.get_item(conn, ctx().cipher, principal().tenant_id, key))


@bp.delete("/api/v1/datastore/<path:key>")
@permission("write", execution_token=True)
@returns(None)
def delete_item(key: str):
    """Delete a key (204)."""
    who = principal()
    with transaction(ctx().engine) as conn:
        datastore.delete(conn, who.tenant_id, key, actor_type=actor_type(who), actor=who.actor)
    return Response(status=204)
