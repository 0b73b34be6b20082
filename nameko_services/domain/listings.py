"""Tenant-scoped, filtered, paginated reads of runtime records (events, executions).

Newest first (`created_at` desc, then `id` desc) with exact totals, as api.md's lists promise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Text, or_, select
from sqlalchemy.dialects.postgresql import array

from . import events as events_mod
from . import executions as executions_mod
from .catalog import count_and_page
from .models import events, executions, rules, triggers


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeRange:
    """`created_at` within [since, until); None: open on that side."""

    since: datetime | None = None
    until: datetime | None = None

    def where(self, column: Any) -> list[Any]:
        return ([column >= self.since] if self.since else []) + (
            [column < self.until] if self.until else [])


def _of_trigger(tenant_id: int, trigger: str) -> Any:
    """The ids of a tenant's (or a system pack's) triggers named by id or by ref."""
    named = triggers.c.id == int(trigger) if trigger.isdigit() else triggers.c.ref == trigger
    return select(triggers.c.id).where(
        named, or_(triggers.c.tenant_id == tenant_id, triggers.c.tenant_id.is_(None)))


def list_events(
    conn: Connection, tenant_id: int, *, trigger_id: int | None = None,
    trigger: str | None = None, created: TimeRange = TimeRange(),
    payload: dict[str, Any] | None = None, trace_id: str | None = None, limit: int, offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """The tenant's events in API shape: of one trigger (id, or id or ref), created within a
    range, whose payload contains `payload` (jsonb `@>`, GIN-indexed), of one trace."""
    where = [events.c.tenant_id == tenant_id, *created.where(events.c.created_at)]
    if trigger_id is not None:
        where.append(events.c.trigger_id == trigger_id)
    if trigger is not None:
        where.append(events.c.trigger_id.in_(_of_trigger(tenant_id, trigger)))
    if payload is not None:
        where.append(events.c.payload.contains(payload))
    if trace_id is not None:
        where.append(events.c.trace_id == trace_id)
    rows, total = count_and_page(conn, events, where, limit, offset)
    return [events_mod.to_api(r) for r in rows], total


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionFilter:
    """The filters of GET /executions; None means 'any'."""

    statuses: tuple[str, ...] | None = None
    action_ref: str | None = None
    pack: str | None = None
    trigger: str | None = None  # an id or a ref: executions its rules made
    parent_execution_id: int | None = None
    rule_id: int | None = None
    enforcement_id: int | None = None
    event_id: int | None = None
    trace_id: str | None = None  # the whole chain of one webhook or API call (ix_executions_trace)
    top_level: bool | None = None
    created: TimeRange = TimeRange()
    # jsonb containment (`@>`), GIN-indexed; a parameter filter never matches on a secret one
    parameters: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    # A walk's snapshot: only executions with id <= max_id (stable pages while new ones arrive).
    max_id: int | None = None


def list_executions(
    conn: Connection, tenant_id: int, filters: ExecutionFilter, *, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """The tenant's executions in API shape (secret parameters masked)."""
    c = executions.c
    where = [c.tenant_id == tenant_id, *filters.created.where(c.created_at)]
    if filters.statuses:
        where.append(c.status.in_(filters.statuses))
    if filters.action_ref is not None:
        where.append(c.action_ref == filters.action_ref)
    if filters.pack is not None:
        where.append(c.action_ref.startswith(f"{filters.pack}.", autoescape=True))
    if filters.trigger is not None:
        where.append(c.rule_id.in_(select(rules.c.id).where(
            rules.c.tenant_id == tenant_id,
            rules.c.trigger_id.in_(_of_trigger(tenant_id, filters.trigger)))))
    for column, value in (
        (c.parent_execution_id, filters.parent_execution_id),
        (c.rule_id, filters.rule_id),
        (c.enforcement_id, filters.enforcement_id),
        (c.event_id, filters.event_id),
        (c.trace_id, filters.trace_id),
    ):
        if value is not None:
            where.append(column == value)
    if filters.top_level is True:
        where.append(c.parent_execution_id.is_(None))
    elif filters.top_level is False:
        where.append(c.parent_execution_id.is_not(None))
    if filters.parameters is not None:
        # Secret values are stored (masked only in answers): a filter on a name that is secret
        # in an execution must not match it, or it would be an oracle for the value.
        where.append(c.parameters.contains(filters.parameters))
        where.append(~c.secret_parameters.has_any(
            array(list(filters.parameters), type_=Text)))
    if filters.result is not None:
        where.append(c.result.contains(filters.result))
    if filters.max_id is not None:
        where.append(c.id <= filters.max_id)
    rows, total = count_and_page(conn, executions, where, limit, offset)
    return [executions_mod.to_api(r) for r in rows], total
