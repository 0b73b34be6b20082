"""/api/v1/apikeys: API keys for scripts and CI (made with a login, listed, revoked)."""

from __future__ import annotations

from flask import Blueprint

from nameko_services.domain import api_keys
from nameko_services.domain.db import transaction

from ..app import ctx
from ..auth import permission, principal
from ..http import accepts, json_body, one, page, page_args, path_id
from .openapi import returns

bp = Blueprint("apikeys", __name__)


@bp.post("/api/v1/apikeys")
@permission("self")
@accepts({"name": {"type": "string"}, "role": {"type": "string"},
          "expires_in": {"type": "integer", "minimum": 60}}, {"name"})
@returns("ApiKey")
def create_key():
    """Make an API key acting as you with at most your role: `{"name", "role"?, "expires_in"?
    (seconds)}`; the key is in the answer (201) and never shown again."""
    body = json_body()
    with transaction(ctx().engine) as conn:
        return one(api_keys.create(conn, principal(), body), 201)


@bp.get("/api/v1/apikeys")
@permission("read")
@returns("ApiKey", many=True)
def list_keys():
    """Your API keys (an admin: the tenant's), newest first, without the keys themselves."""
    limit, offset = page_args()
    with transaction(ctx().engine) as conn:
        items, total = api_keys.list_keys(conn, principal(), limit, offset)
    return page(items, total, limit, offset)


@bp.delete("/api/v1/apikeys/<key_id>")
@permission("self")
@returns("ApiKey")
def revoke_key(key_id: str):
    """Revoke one of your API keys (an admin: any of the tenant's); refused at once everywhere."""
    with transaction(ctx().engine) as conn:
        return one(api_keys.revoke(conn, principal(), path_id(key_id, "API key")))
