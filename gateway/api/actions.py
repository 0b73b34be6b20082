"""/api/v1/actions: create, list (?pack=), get, patch and delete action definitions."""

from __future__ import annotations

from flask import Blueprint

from nameko_services.domain import action_spec, actions, pack_store
from nameko_services.domain.db import transaction

from ..app import ctx
from ..auth import permission, principal
from ..definitions import (
    acting_user,
    definition_body,
    definition_fields,
    optional,
    publish_changes,
)
from ..http import accepts, one, page, page_args, path_id
from ..query_args import text_arg
from .openapi import returns

bp = Blueprint("actions", __name__)
# The JSON type of each definition field (action_spec checks the rest; null: not set).
BODY = definition_fields(action_spec.ACTION_FIELDS | {"pack"}, {
    "pack": {"type": "string"}, "name": {"type": "string"}, "runner_type": {"type": "string"},
    "description": optional("string"), "entry_point": optional("string"),
    "code": optional("string"),
    "parameters": optional("object"), "timeout": optional("number"),
    "retry": optional("object"), "with_items": optional("string"),
    "concurrency": optional("integer"), "concurrency_policy": optional("object"),
    "secrets": optional("array", items={"type": "string"}),
    "http_config": optional("object"), "container_config": optional("object"),
    "workflow": optional("object"), "limits": optional("object"),
})


@bp.post("/api/v1/actions")
@permission("write")
@accepts(BODY)
@returns("Action")
def create_action():
    """Create an action in one of the caller's packs."""
    body = definition_body()
    with transaction(ctx().engine) as conn:
        outcome = actions.create(conn, tenant_id=principal().tenant_id, body=body,
                                 actor=acting_user(),
                                 packs_root=pack_store.cache_root(ctx().settings))
    return one(outcome.data, 201)


@bp.get("/api/v1/actions")
@permission("read")
@returns("Action", many=True)
def list_actions():
    """The caller's and system actions, newest first (?pack= filters)."""
    limit, offset = page_args()
    with transaction(ctx().engine) as conn:
        items, total = actions.list_actions(conn, principal().tenant_id,
                                            pack_ref=text_arg("pack"),
                                            limit=limit, offset=offset)
    return page(items, total, limit, offset)


@bp.get("/api/v1/actions/<action_id>")
@permission("read")
@returns("Action")
def get_action(action_id: str):
    """One action definition."""
    with transaction(ctx().engine) as conn:
        row = actions.get(conn, principal().tenant_id, path_id(action_id, "Action"))
    return one(actions.to_api(row))


@bp.patch("/api/v1/actions/<action_id>")
@permission("write")
@accepts(BODY)
@returns("Action")
def update_action(action_id: str):
    """Change an action's definition (not its pack or name)."""
    aid = path_id(action_id, "Action")
    patch = definition_body()
    with transaction(ctx().engine) as conn:
        outcome = actions.update_action(conn, tenant_id=principal().tenant_id, action_id=aid,
                                        patch=patch, actor=acting_user(),
                                        packs_root=pack_store.cache_root(ctx().settings))
    return one(outcome.data)


@bp.delete("/api/v1/actions/<action_id>")
@permission("write")
@returns(None)
def delete_action(action_id: str):
    """Delete an action and the rules that run it."""
    with transaction(ctx().engine) as conn:
        outcome = actions.delete_action(conn, principal().tenant_id,
                                        path_id(action_id, "Action"), acting_user())
    publish_changes(outcome.changes)
    return "", 204
