"""Append-only audit trail: one row per lifecycle transition and definition change."""

from __future__ import annotations

from typing import Any

from sqlalchemy import CTE, ColumnElement, Connection, String, bindparam, insert, literal, select

from .db import isoformat
from .models import audit_log


def record(
    conn: Connection,
    *,
    tenant_id: int | None,
    actor_type: str,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: int | str,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one entry in the caller's transaction (so it exists iff the change does)."""
    conn.execute(
        insert(audit_log).values(
            tenant_id=tenant_id,
            actor_type=actor_type,
            actor=actor,
            action=action,
            entity_type=entity_type,
            entity_id=str(entity_id),
            details=details or {},
        )
    )


def logged_for(
    changed: CTE, *, action: str | ColumnElement[Any], entity_type: str,
    details: ColumnElement[Any],
) -> CTE:
    """One entry per row of `changed` (a data-modifying CTE with `tenant_id` and `id`), as a
    CTE to attach to the statement that made the change: the entry costs no round trip of its
    own and, as with `record`, exists iff the change does. The actor comes from the bound
    values `audit_actor_type` and `audit_actor` (`actor_values`)."""
    if isinstance(action, str):
        action = literal(action, String)
    return (
        insert(audit_log)
        .from_select(
            ["tenant_id", "actor_type", "actor", "action", "entity_type", "entity_id", "details"],
            select(
                changed.c.tenant_id, bindparam("audit_actor_type", type_=String),
                bindparam("audit_actor", type_=String), action, literal(entity_type, String),
                changed.c.id.cast(String), details,
            ),
        )
        .cte(f"logged_{changed.name}")
    )


def actor_values(actor_type: str, actor: str) -> dict[str, str]:
    """The bound values `logged_for` reads the actor from."""
    return {"audit_actor_type": actor_type, "audit_actor": actor}


def list_entries(
    conn: Connection, tenant_id: int, entity_type: str | None, entity_id: str | None,
    limit: int, offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """The tenant's entries, oldest first, optionally for one entity."""
    from sqlalchemy import func

    where = [audit_log.c.tenant_id == tenant_id]
    if entity_type:
        where.append(audit_log.c.entity_type == entity_type)
    if entity_id:
        where.append(audit_log.c.entity_id == str(entity_id))
    total = conn.execute(select(func.count()).select_from(audit_log).where(*where)).scalar_one()
    rows = conn.execute(
        select(audit_log).where(*where).order_by(audit_log.c.id).limit(limit).offset(offset)
    ).mappings()
    return [
        {
            "id": r["id"],
            "timestamp": isoformat(r["timestamp"]),
            "actor_type": r["actor_type"],
            "actor": r["actor"],
            "action": r["action"],
            "entity_type": r["entity_type"],
            "entity_id": r["entity_id"],
            "details": r["details"],
        }
        for r in rows
    ], total
