"""GET /api/v1/audit[?entity_type=&entity_id=]: the tenant's audit trail, oldest first."""

from __future__ import annotations

from flask import Blueprint

from nameko_services.domain import audit
from nameko_services.domain.db import transaction

from ..app import ctx
from ..auth import permission, principal
from ..http import page, page_args
from ..query_args import text_arg
from .openapi import returns

bp = Blueprint("audit", __name__)


@bp.get("/api/v1/audit")
@permission("read")
@returns("AuditEntry", many=True)
def list_audit():
    """The tenant's audit trail, oldest first, optionally for one entity."""
    limit, offset = page_args()
    entity_type = text_arg("entity_type", 50)
    entity_id = text_arg("entity_id", 400)
    with transaction(ctx().engine) as conn:
        items, total = audit.list_entries(conn, principal().tenant_id, entity_type, entity_id,
                                          limit, offset)
    return page(items, total, limit, offset)
