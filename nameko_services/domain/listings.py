"""Tenant-scoped, filtered, paginated reads of runtime records (events, executions).

Newest first (`created_at` desc, then `id` desc) with exact totals, as api.md's lists promise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from . import events as events_mod
from . import executions as executions_mod
from .catalog import count_and_page
from .models import events, executions


def list_events(
    conn: Connection, tenant_id: int, *, trigger_id: int | None = None, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """The tenant's events in API shape, optionally of one trigger."""
    where = [events.c.tenant_id == tenant_id]
    if trigger_id is not None:
        where.append(events.c.trigger_id == trigger_id)
    rows, total = count_and_page(conn, events, where, limit, offset)
    return [events_mod.to_api(r) for r in rows], total


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionFilter:
    """The filters of GET /executions; None means 'any'."""

    statuses: tuple[str, ...] | None = None
    action_ref: str | None = None
    parent_execution_id: int | None = None
    rule_id: int | None = None
    enforcement_id: int | None = None
    event_id: int | None = None
    top_level: bool | None = None
    # A walk's snapshot: only executions with id <= max_id (stable pages while new ones arrive).
    max_id: int | None = None


def list_executions(
    conn: Connection, tenant_id: int, filters: ExecutionFilter, *, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """The tenant's executions in API shape (secret parameters masked)."""
    c = executions.c
    where = [c.tenant_id == tenant_id]
    if filters.statuses:
        where.append(c.status.in_(filters.statuses))
    if filters.action_ref is not None:
        where.append(c.action_ref == filters.action_ref)
    for column, value in (
        (c.parent_execution_id, filters.parent_execution_id),
        (c.rule_id, filters.rule_id),
        (c.enforcement_id, filters.enforcement_id),
        (c.event_id, filters.event_id),
    ):
        if value is not None:
            where.append(column == value)
    if filters.top_level is True:
        where.append(c.parent_execution_id.is_(None))
    elif filters.top_level is False:
        where.append(c.parent_execution_id.is_not(None))
    if filters.max_id is not None:
        where.append(c.id <= filters.max_id)
    rows, total = count_and_page(conn, executions, where, limit, offset)
    return [executions_mod.to_api(r) for r in rows], total
