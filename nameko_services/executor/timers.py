"""Durable timers (the `timers` table): retry backoff, workflow timeouts, inquiry expiry.

A timer is a row `(kind, entity_id, due_at, payload)`, unique per (kind, entity): inserted in
the same transaction as the decision that needs it, and claimed by deleting it in the same
transaction as what it triggers, so a crash at any point either leaves it to fire again or
leaves nothing. Times come from the database clock. The loop that waits for them lives in
timer_extensions.py; what each kind does lives in due.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from ..domain import messages
from ..domain.models import timers
from .news import Outgoing

RETRY = "retry"
WORKFLOW_TIMEOUT = "workflow_timeout"
INQUIRY_EXPIRY = "inquiry_expiry"


def _interval(seconds: float) -> Any:
    return func.make_interval(0, 0, 0, 0, 0, 0, float(seconds))


def schedule(
    conn: Connection,
    *,
    kind: str,
    entity_id: int,
    tenant_id: int | None,
    delay_seconds: float,
    payload: Mapping[str, Any] | None = None,
) -> list[Outgoing]:
    """Insert a timer due `delay_seconds` from now; a timer of this kind and entity already
    pending is kept (first writer wins). Returns the wake-up news to publish after commit
    (empty when nothing was inserted)."""
    row = conn.execute(
        pg_insert(timers)
        .values(kind=kind, entity_id=entity_id, tenant_id=tenant_id,
                due_at=func.now() + _interval(max(0.0, delay_seconds)),
                payload=dict(payload or {}))
        .on_conflict_do_nothing(index_elements=["kind", "entity_id"])
        .returning(timers.c.id)
    ).first()
    if row is None:
        return []
    return [Outgoing(messages.TIMER_SCHEDULED,
                     {"kind": kind, "entity_id": entity_id, "due_in": delay_seconds})]


def pending(conn: Connection, kind: str, entity_id: int) -> dict[str, Any] | None:
    row = conn.execute(
        select(timers).where(timers.c.kind == kind, timers.c.entity_id == entity_id)
    ).mappings().first()
    return dict(row) if row is not None else None


def cancel(conn: Connection, kind: str, entity_id: int) -> None:
    """Drop a pending timer (its reason went away); a missing one is fine."""
    conn.execute(delete(timers).where(timers.c.kind == kind, timers.c.entity_id == entity_id))


def claim(conn: Connection, timer_id: int) -> dict[str, Any] | None:
    """Take a due timer by deleting it; None when another executor took it or it is not due.

    The delete commits (or rolls back) with whatever the timer triggered.
    """
    row = conn.execute(
        delete(timers).where(timers.c.id == timer_id, timers.c.due_at <= func.now())
        .returning(timers)
    ).mappings().one_or_none()
    return dict(row) if row is not None else None


def postpone(engine: Engine, timer_id: int, seconds: float) -> None:
    """Push a timer whose handler failed a little into the future (no hot retry loop)."""
    with engine.begin() as conn:
        conn.execute(update(timers).where(timers.c.id == timer_id)
                     .values(due_at=func.now() + _interval(seconds)))


def due_ids(engine: Engine, exclude: Iterable[int] = (), limit: int = 100) -> list[int]:
    """Ids of timers due now, earliest first, leaving out those already being handled."""
    stmt = select(timers.c.id).where(timers.c.due_at <= func.now())
    skip = list(exclude)
    if skip:
        stmt = stmt.where(timers.c.id.not_in(skip))
    with engine.connect() as conn:
        return list(conn.execute(stmt.order_by(timers.c.due_at, timers.c.id).limit(limit))
                    .scalars())


def seconds_until_next(engine: Engine, exclude: Iterable[int] = ()) -> float | None:
    """Seconds until the earliest timer not being handled (≤ 0: due); None when none."""
    stmt = select(func.extract("epoch", func.min(timers.c.due_at) - func.clock_timestamp()))
    skip = list(exclude)
    if skip:
        stmt = stmt.where(timers.c.id.not_in(skip))
    with engine.connect() as conn:
        value = conn.execute(stmt).scalar()
    return None if value is None else float(value)
