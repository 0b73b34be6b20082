"""Enforcements as the API shows them: one per (rule, event) whose criteria matched."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, select

from .db import isoformat
from .errors import NotFoundError
from .models import enforcements


def to_api(row: Any) -> dict[str, Any]:
    """api.md's `enforcement` (plus error, tenant_id and updated_at)."""
    return {
        "id": row["id"],
        "rule_id": row["rule_id"],
        "event_id": row["event_id"],
        "execution_id": row["execution_id"],
        "status": row["status"],
        "error": row["error"],
        "tenant_id": row["tenant_id"],
        "created_at": isoformat(row["created_at"]),
        "updated_at": isoformat(row["updated_at"]),
    }


def get(conn: Connection, tenant_id: int, enforcement_id: int) -> dict[str, Any]:
    """One enforcement of the tenant; NotFoundError otherwise (also for other tenants')."""
    row = conn.execute(
        select(enforcements).where(
            enforcements.c.id == enforcement_id, enforcements.c.tenant_id == tenant_id
        )
    ).mappings().one_or_none()
    if row is None:
        raise NotFoundError(f"Enforcement {enforcement_id} not found")
    return dict(row)


def list_enforcements(
    conn: Connection,
    tenant_id: int,
    *,
    rule_id: int | None = None,
    event_id: int | None = None,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """The tenant's enforcements, newest first, optionally for one rule and/or event."""
    where = [enforcements.c.tenant_id == tenant_id]
    if rule_id is not None:
        where.append(enforcements.c.rule_id == rule_id)
    if event_id is not None:
        where.append(enforcements.c.event_id == event_id)
    total = conn.execute(select(func.count()).select_from(enforcements).where(*where)).scalar_one()
    rows = conn.execute(
        select(enforcements).where(*where)
        .order_by(enforcements.c.created_at.desc(), enforcements.c.id.desc())
        .limit(limit).offset(offset)
    ).mappings()
    return [to_api(r) for r in rows], total
