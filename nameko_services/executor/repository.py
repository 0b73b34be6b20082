"""The SQL the executor needs beyond domain.executions/events: rules, actions, enforcements.

Every function takes the tenant explicitly; actions may also be system actions (tenant NULL).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, bindparam, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from ..domain.catalog import visible
from ..domain.db import prepared
from ..domain.models import (
    actions,
    enforcements,
    events,
    executions,
    rule_evaluations,
    rules,
)
from ..domain.states import EnforcementStatus

Rules = list[tuple[dict[str, Any], dict[str, Any] | None]]  # (rule, its action or None)


def claim_event(
    conn: Connection, tenant_id: int, event_id: int
) -> tuple[dict[str, Any], Rules] | None:
    """Mark the tenant's event processed and return it with the tenant's enabled rules on its
    trigger, oldest first, each with its action (the tenant's own or a system one; None when
    it is gone); None when another executor (or an earlier delivery) already claimed it, or
    there is no such event. One statement, one round trip."""
    rows = conn.execute(
        _CLAIM_EVENT, {"b_event_id": event_id, "b_tenant_id": tenant_id}).mappings().all()
    if not rows:
        return None
    event = {c.name: rows[0][f"event__{c.name}"] for c in events.c}
    found: Rules = []
    for row in rows:
        if row["id"] is None:  # the event's trigger has no enabled rule of the tenant
            continue
        rule = {c.name: row[c.name] for c in rules.c}
        action = {c.name: row[f"action__{c.name}"] for c in actions.c}
        found.append((rule, action if action["id"] is not None else None))
    return event, found


def action(conn: Connection, tenant_id: int, action_id: int | None) -> dict[str, Any] | None:
    """An action of the tenant or a system action; None when it is gone."""
    if action_id is None:
        return None
    row = conn.execute(
        _ACTION, {"action_id": action_id, "tenant_id": tenant_id}
    ).mappings().one_or_none()
    return dict(row) if row is not None else None


def record_evaluation(
    conn: Connection, tenant_id: int, event_id: int, rule_id: int, matched: bool, error: str | None
) -> dict[str, Any] | None:
    """Record a rule's verdict on an event; a match also inserts its enforcement (same
    statement), returned — None when unmatched or when this rule+event already has one."""
    values = {"b_tenant_id": tenant_id, "b_event_id": event_id, "b_rule_id": rule_id,
              "b_matched": matched, "b_error": error}
    if not matched:
        conn.execute(_EVALUATION, values)
        return None
    row = conn.execute(_MATCH, values).mappings().one_or_none()
    return dict(row) if row is not None else None


# Built once and reused with bound values (building costs more CPU than running them); a
# bound name never repeats a column name of an INSERT or UPDATE (SQLAlchemy reserves those).
_CLAIMED = (
    update(events)
    .where(events.c.id == bindparam("b_event_id"), events.c.tenant_id == bindparam("b_tenant_id"),
           events.c.processed_at.is_(None))
    .values(processed_at=func.now())
    .returning(events)
    .cte("claimed")
)
_CLAIM_EVENT = prepared(
    select(*(_CLAIMED.c[c.name].label(f"event__{c.name}") for c in events.c), rules,
           *(c.label(f"action__{c.name}") for c in actions.c))
    .select_from(_CLAIMED.outerjoin(
        rules.outerjoin(actions, (actions.c.id == rules.c.action_id)
                        & visible(actions, rules.c.tenant_id)),
        (rules.c.trigger_id == _CLAIMED.c.trigger_id)
        & (rules.c.tenant_id == _CLAIMED.c.tenant_id) & rules.c.enabled.is_(True)))
    .order_by(rules.c.id)
)
_ACTION = select(actions).where(
    actions.c.id == bindparam("action_id"), visible(actions, bindparam("tenant_id")))
_EVALUATION = (
    pg_insert(rule_evaluations)
    .values(**{name: bindparam(f"b_{name}") for name in
               ("tenant_id", "event_id", "rule_id", "matched", "error")})
    .on_conflict_do_nothing(index_elements=["event_id", "rule_id"])
)
_MATCH = prepared(select(
    pg_insert(enforcements)
    .values(tenant_id=bindparam("b_tenant_id"), rule_id=bindparam("b_rule_id"),
            event_id=bindparam("b_event_id"))
    .on_conflict_do_nothing(index_elements=["rule_id", "event_id"])
    .returning(enforcements)
    .cte("enforced")
).add_cte(_EVALUATION.cte("evaluated")))


def fail_enforcement(conn: Connection, tenant_id: int, enforcement_id: int, error: str) -> None:
    """A new enforcement that could not make its execution: failed, with the reason."""
    conn.execute(
        update(enforcements)
        .where(enforcements.c.id == enforcement_id, enforcements.c.tenant_id == tenant_id,
               enforcements.c.status == EnforcementStatus.CREATED.value)
        .values(status=EnforcementStatus.FAILED.value, error=error, updated_at=func.now())
    )


def lock_execution(
    conn: Connection, tenant_id: int, execution_id: int
) -> dict[str, Any] | None:
    """SELECT … FOR UPDATE: serialises the bookkeeping of one parent across executors."""
    row = conn.execute(
        select(executions)
        .where(executions.c.id == execution_id, executions.c.tenant_id == tenant_id)
        .with_for_update()
    ).mappings().one_or_none()
    return dict(row) if row is not None else None


def children_status_counts(conn: Connection, tenant_id: int, parent_id: int) -> dict[str, int]:
    rows = conn.execute(
        select(executions.c.status, func.count())
        .where(executions.c.tenant_id == tenant_id,
               executions.c.parent_execution_id == parent_id)
        .group_by(executions.c.status)
    )
    return {status: count for status, count in rows}


def children_in_status(
    conn: Connection, tenant_id: int, parent_id: int, status: str, limit: int | None = None
) -> list[dict[str, Any]]:
    """Children of a parent in one status, in item order."""
    stmt = (
        select(executions)
        .where(executions.c.tenant_id == tenant_id,
               executions.c.parent_execution_id == parent_id,
               executions.c.status == status)
        .order_by(executions.c.item_index, executions.c.id)
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    return [dict(r) for r in conn.execute(stmt).mappings()]


def children_results(conn: Connection, tenant_id: int, parent_id: int) -> list[Mapping[str, Any]]:
    """(item_index, status, result) of every child, in item order."""
    return list(
        conn.execute(
            select(executions.c.item_index, executions.c.status, executions.c.result)
            .where(executions.c.tenant_id == tenant_id,
                   executions.c.parent_execution_id == parent_id)
            .order_by(executions.c.item_index, executions.c.id)
        ).mappings()
    )


def set_state(conn: Connection, execution_id: int, state: dict[str, Any]) -> None:
    """Replace the engine state of an execution the caller holds locked."""
    conn.execute(update(executions).where(executions.c.id == execution_id)
                 .values(state=state, updated_at=func.now()))


def set_attempt(conn: Connection, execution_id: int, attempt: int) -> None:
    conn.execute(update(executions).where(executions.c.id == execution_id)
                 .values(attempt=attempt, updated_at=func.now()))


def children_summary(conn: Connection, tenant_id: int, parent_id: int) -> list[dict[str, Any]]:
    """Every child of a parent, oldest first, with its output and error but not its logs."""
    result = executions.c.result
    rows = conn.execute(
        select(executions.c.id, executions.c.task_name, executions.c.status,
               executions.c.attempt, executions.c.item_index, executions.c.state,
               result["output"].label("output"), result["error"].label("error"))
        .where(executions.c.tenant_id == tenant_id,
               executions.c.parent_execution_id == parent_id)
        .order_by(executions.c.id)
    ).mappings()
    return [dict(r) for r in rows]


def result_of(conn: Connection, execution_id: int) -> dict[str, Any] | None:
    return conn.execute(
        select(executions.c.result).where(executions.c.id == execution_id)
    ).scalar_one_or_none()


def depth(conn: Connection, execution_id: int, limit: int = 64) -> int:
    """How many ancestors an execution has (stops counting at `limit`)."""
    tree = (
        select(executions.c.id, executions.c.parent_execution_id,
               literal(0).label("level"))
        .where(executions.c.id == execution_id)
        .cte("tree", recursive=True)
    )
    tree = tree.union_all(
        select(executions.c.id, executions.c.parent_execution_id,
               (tree.c.level + 1).label("level"))
        .where(executions.c.id == tree.c.parent_execution_id, tree.c.level < limit)
    )
    return int(conn.execute(select(func.max(tree.c.level))).scalar() or 0)
