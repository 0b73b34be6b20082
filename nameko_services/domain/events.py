"""Events: what a trigger produced (timer, webhook, sensor, api), stored before anyone reacts."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    ScalarSelect,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert

from . import tracing
from .db import isoformat, prepared
from .errors import NotFoundError
from .models import events, executions


def create(
    conn: Connection,
    *,
    trigger: dict[str, Any],
    source: str,
    payload: Any,
    idempotency_key: str | None = None,
    caused_by_execution_id: int | None = None,
    chain_depth: int = 0,
    tenant_id: int | None = None,
    trace_id: str | None = None,
) -> tuple[dict[str, Any], bool]:
    """Store an event of `trigger`; returns (row, created).

    With an idempotency key, a repeat returns the first event and created=False.
    `tenant_id` defaults to the trigger's (system triggers need the caller's tenant);
    `trace_id` to a new one (timers and sensors start a trace of their own).
    """
    values = {
        "tenant_id": tenant_id if tenant_id is not None else trigger["tenant_id"],
        "trigger_id": trigger["id"],
        "trigger_ref": trigger["ref"],
        "source": source,
        "payload": payload,
        "idempotency_key": idempotency_key,
        "caused_by_execution_id": caused_by_execution_id,
        "chain_depth": chain_depth,
        "trace_id": trace_id or tracing.new_trace_id(),
    }
    if idempotency_key is None:
        row = conn.execute(_INSERT, values).mappings().one()
        return dict(row), True
    stmt = (
        pg_insert(events)
        .values(**values)
        .on_conflict_do_nothing(
            index_elements=["trigger_id", "idempotency_key"],
            index_where=events.c.idempotency_key.isnot(None),
        )
        .returning(events)
    )
    inserted = conn.execute(stmt).mappings().one_or_none()
    if inserted is not None:
        return dict(inserted), True
    existing = conn.execute(
        select(events).where(
            events.c.trigger_id == trigger["id"], events.c.idempotency_key == idempotency_key
        )
    ).mappings().one()
    return dict(existing), False


def caused_depth(
    execution_id: ColumnElement[Any], tenant_id: ColumnElement[Any]
) -> ScalarSelect[Any]:
    """SQL: the chain depth of the event that caused an execution (through its nearest ancestor
    with an event, so a workflow child counts its root's event; NULL if none). An event an
    execution causes is one deeper: the loop protection of enforcement.chain_error."""
    chain = (
        select(executions.c.id, executions.c.parent_execution_id, executions.c.event_id,
               literal(0).label("hops"))
        .where(executions.c.id == execution_id, executions.c.tenant_id == tenant_id)
        .cte("chain", recursive=True)
    )
    chain = chain.union_all(
        select(executions.c.id, executions.c.parent_execution_id, executions.c.event_id,
               (chain.c.hops + 1).label("hops"))
        .join(chain, executions.c.id == chain.c.parent_execution_id)
        .where(chain.c.event_id.is_(None), chain.c.hops < 100)
    )
    return (
        select(events.c.chain_depth)
        .join(chain, events.c.id == chain.c.event_id)
        .order_by(chain.c.hops)
        .limit(1)
        .scalar_subquery()
    )


# Built once; the values come as execution parameters (the columns are their keys).
_INSERT = prepared(insert(events).returning(events))


def get(conn: Connection, tenant_id: int | None, event_id: int) -> dict[str, Any]:
    where = [events.c.id == event_id]
    if tenant_id is not None:
        where.append(events.c.tenant_id == tenant_id)
    row = conn.execute(select(events).where(*where)).mappings().one_or_none()
    if row is None:
        raise NotFoundError(f"Event {event_id} not found")
    return dict(row)


def refuse(conn: Connection, event_id: int, error: str) -> None:
    """Store why a claimed event runs no rule."""
    conn.execute(update(events).where(events.c.id == event_id).values(error=error))


# An event whose payload serialises to at most this travels inside its EVENT_CREATED news, so
# the notifier need not read it back; a larger one is read from the table.
ANNOUNCED_PAYLOAD_BYTES = 8 * 1024


def announcement(row: dict[str, Any]) -> dict[str, Any]:
    """The EVENT_CREATED payload for a stored event (publish it after the commit)."""
    news: dict[str, Any] = {"event_id": row["id"], "tenant_id": row["tenant_id"],
                            "trace_id": row["trace_id"]}
    if len(json.dumps(row["payload"], default=str)) <= ANNOUNCED_PAYLOAD_BYTES:
        news["event"] = to_api(row)
    return news


def to_api(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "trigger_id": row["trigger_id"],
        "trigger_ref": row["trigger_ref"],
        "source": row["source"],
        "payload": row["payload"],
        "caused_by_execution_id": row["caused_by_execution_id"],
        "chain_depth": row["chain_depth"],
        "error": row["error"],
        "tenant_id": row["tenant_id"],
        "trace_id": row["trace_id"],
        "created_at": isoformat(row["created_at"]),
    }
