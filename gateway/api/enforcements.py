"""GET /api/v1/enforcements[?rule_id=&event_id=] and GET /api/v1/enforcements/{id}."""

from __future__ import annotations

from flask import Blueprint

from nameko_services.domain import enforcements
from nameko_services.domain.db import transaction

from ..app import ctx
from ..auth import permission, principal
from ..http import int_arg, one, page, page_args, path_id
from .openapi import returns

bp = Blueprint("enforcements", __name__)

MAX_ID = 2**63 - 1


@bp.get("/api/v1/enforcements")
@permission("read")
@returns("Enforcement", many=True)
def list_enforcements():
    """List enforcements (rule matches), newest first, by rule and/or event."""
    limit, offset = page_args()
    rule_id = int_arg("rule_id", minimum=1, maximum=MAX_ID)
    event_id = int_arg("event_id", minimum=1, maximum=MAX_ID)
    with transaction(ctx().engine) as conn:
        items, total = enforcements.list_enforcements(
            conn, principal().tenant_id, rule_id=rule_id, event_id=event_id,
            limit=limit, offset=offset,
        )
    return page(items, total, limit, offset)


@bp.get("/api/v1/enforcements/<enforcement_id>")
@permission("read")
@returns("Enforcement")
def get_enforcement(enforcement_id: str):
    """One enforcement."""
    eid = path_id(enforcement_id, "Enforcement")
    with transaction(ctx().engine) as conn:
        return one(enforcements.to_api(enforcements.get(conn, principal().tenant_id, eid)))
