"""/api/v1/triggers: create (interval, date, cron, webhook, custom, execution), list, get,
delete."""

from __future__ import annotations

from flask import Blueprint

from nameko_services.domain import triggers
from nameko_services.domain.db import transaction
from nameko_services.domain.states import Role

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

bp = Blueprint("triggers", __name__)
# The JSON type of each definition field (triggers checks the rest).
BODY = definition_fields(triggers.TRIGGER_FIELDS | {"pack"}, {
    "pack": {"type": "string"}, "name": {"type": "string"},
    "type": {"type": "string", "enum": triggers.TYPES},
    "parameters": optional("object"), "description": optional("string"),
})


def _reveal_tokens() -> bool:
    """A webhook token is a credential: viewers (read-only) never see it."""
    return principal().role != Role.VIEWER


@bp.post("/api/v1/triggers")
@permission("write")
@accepts(BODY)
@returns("Trigger")
def create_trigger():
    """Create an interval, date, cron, webhook, custom or execution trigger."""
    body = definition_body()
    with transaction(ctx().engine) as conn:
        outcome = triggers.create(conn, tenant_id=principal().tenant_id, body=body,
                                  actor=acting_user())
    publish_changes(outcome.changes)
    return one(outcome.data, 201)


@bp.get("/api/v1/triggers")
@permission("read")
@returns("Trigger", many=True)
def list_triggers():
    """The caller's and system triggers, newest first (?type=, ?pack=)."""
    limit, offset = page_args()
    with transaction(ctx().engine) as conn:
        items, total = triggers.list_triggers(
            conn, principal().tenant_id, kind=text_arg("type"),
            pack_ref=text_arg("pack"), limit=limit, offset=offset,
            reveal_tokens=_reveal_tokens(),
        )
    return page(items, total, limit, offset)


@bp.get("/api/v1/triggers/<trigger_id>")
@permission("read")
@returns("Trigger")
def get_trigger(trigger_id: str):
    """One trigger (webhooks: with url, and token for its tenant)."""
    tenant_id = principal().tenant_id
    with transaction(ctx().engine) as conn:
        row = triggers.get(conn, tenant_id, path_id(trigger_id, "Trigger"))
    return one(triggers.to_api(row, tenant_id, reveal_token=_reveal_tokens()))


@bp.delete("/api/v1/triggers/<trigger_id>")
@permission("write")
@returns(None)
def delete_trigger(trigger_id: str):
    """Delete a trigger and the rules that use it."""
    with transaction(ctx().engine) as conn:
        outcome = triggers.delete_trigger(conn, principal().tenant_id,
                                          path_id(trigger_id, "Trigger"), acting_user())
    publish_changes(outcome.changes)
    return "", 204
