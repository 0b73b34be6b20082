"""Execution creation, conditional status transitions and the API/notification shape."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import (
    Connection,
    Select,
    String,
    bindparam,
    case,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB

from . import audit, execution_triggers, tracing
from . import parameters as params_mod
from .catalog import visible
from .db import Row, isoformat, prepared
from .errors import NotFoundError, ValidationError
from .models import actions, enforcements, executions, packs
from .states import (
    TERMINAL_STATES,
    TIMESTAMP_COLUMN,
    EnforcementStatus,
    ExecutionStatus,
    sources_of,
)

S = ExecutionStatus


def empty_result() -> dict[str, Any]:
    return {
        "output": None,
        "exit_code": None,
        "stdout": "",
        "stderr": "",
        "error": None,
        "truncated": False,
        "duration_ms": None,
    }


def error_result(error_type: str, message: str, **extra: Any) -> dict[str, Any]:
    return {**empty_result(), "error": {"type": error_type, "message": message}, **extra}


def create(
    conn: Connection,
    *,
    tenant_id: int,
    action: Mapping[str, Any],
    parameters: Mapping[str, Any] | None,
    actor_type: str,
    actor: str,
    **links: Any,
) -> dict[str, Any]:
    """Insert a `requested` execution, validating parameters first.

    Invalid parameters still create the execution, failed at once with
    `result.error.type = "validation"`, so nothing reaches a worker (api.md).
    `links`: rule_id, event_id, enforcement_id, parent_execution_id, task_name, item_index,
    item, trigger_data, rerun_of, max_attempts, attempt, state, trace_id (its event's, its
    parent's or its API call's; a new one when not given).
    """
    declared = action.get("parameters") or {}
    given = dict(parameters or {})
    status, result, values = S.REQUESTED, None, given
    try:
        values = params_mod.validate(declared, given)
    except ValidationError as exc:
        status = S.FAILED
        result = error_result("validation", exc.message, fields=exc.fields)
    retry = action.get("retry") or {}
    columns = {
        "tenant_id": tenant_id,
        "action_id": action["id"],
        "action_ref": action["ref"],
        "status": status.value,
        "parameters": values,
        "secret_parameters": params_mod.secret_names(declared),
        "result": result,
        "max_attempts": links.pop("max_attempts", None) or int(retry.get("max_attempts", 1)),
        "trace_id": links.pop("trace_id", None) or tracing.new_trace_id(),
        **links,
    }
    row = conn.execute(
        _create_statement(tuple(columns), status is S.FAILED),
        {**_bound(columns), **audit.actor_values(actor_type, actor)},
    ).mappings().one()
    if status is S.FAILED:
        audit.record(
            conn, tenant_id=tenant_id, actor_type=actor_type, actor=actor,
            action="execution.failed", entity_type="execution", entity_id=row["id"],
            details={"error": result["error"] if result else None},
        )
    return _fired(conn, dict(row))


def transition(
    conn: Connection,
    execution_id: int,
    target: ExecutionStatus,
    *,
    actor_type: str,
    actor: str,
    expected: Iterable[ExecutionStatus] | None = None,
    details: dict[str, Any] | None = None,
    enforcement: EnforcementStatus | None = None,
    enforcement_error: str | None = None,
    with_action: bool = False,
    **fields: Any,
) -> dict[str, Any] | None:
    """Conditionally move an execution to `target`; None when it was not in an allowed status.

    `UPDATE … WHERE id = :id AND status IN (:expected)` makes duplicated or late messages harmless.
    Returns the updated row plus `previous` (the status it left). `enforcement`: move the
    rule enforcement that made it (if any) on from `created` in the same statement. A terminal
    move also stores the events of matching execution triggers (`fired_events`: their ids).
    `with_action`: the row also carries the execution's action, when its tenant may run it (its
    own or a system one), and that action's pack, as `action__<column>` and `pack__<column>`
    (NULL when gone): what a worker reads to run it, in the same statement.
    """
    allowed = tuple(s.value for s in (expected if expected is not None else sources_of(target)))
    row = conn.execute(
        _transition_statement(target, allowed, tuple(fields), enforcement, with_action),
        {"b_execution_id": execution_id, "audit_details": details or {}, **_bound(fields),
         "enforcement_error": enforcement_error, **audit.actor_values(actor_type, actor)},
    ).mappings().one_or_none()
    return None if row is None else _fired(conn, dict(row))


def _fired(conn: Connection, row: dict[str, Any]) -> dict[str, Any]:
    """An execution that just ended: when its statement saw execution triggers of its tenant,
    store the events of those that match (`fired_events`: their ids, for the status message)."""
    if row.pop("execution_triggers", False):
        row["fired_events"] = execution_triggers.fire(conn, row)
    return row


def _bound(values: Mapping[str, Any]) -> dict[str, Any]:
    """Column values under the bind names `_column_values` gives them."""
    return {f"v_{name}": value for name, value in values.items()}


def _column_values(names: Iterable[str]) -> dict[str, Any]:
    """A bind parameter per column (typed as the column, e.g. jsonb), named `v_<column>`."""
    return {name: bindparam(f"v_{name}", type_=executions.c[name].type) for name in names}


# The statements below are built once per shape and reused: building one (its CTE's column
# collection above all) costs more CPU than executing it. No bound name may equal a column
# name of a table they change: SQLAlchemy would add it to that UPDATE's SET clause.
# Timestamps are the statement's time, not the transaction's: a parent finished by a transaction
# that began before its last child's result was committed must not end before that child.
@functools.cache
def _create_statement(columns: tuple[str, ...], failed: bool) -> Select[Any]:
    """INSERT of a new execution with the `execution.created` audit entry, in one statement."""
    timestamps = {"requested_at": func.statement_timestamp()}
    if failed:
        timestamps["finished_at"] = func.statement_timestamp()
    made = (
        insert(executions)
        .values(**_column_values(columns), **timestamps)
        .returning(executions)
        .cte("made")
    )
    logged = audit.logged_for(
        made, action="execution.created", entity_type="execution",
        details=func.jsonb_build_object(
            "action_ref", made.c.action_ref, "status", made.c.status,
            "parent_execution_id", made.c.parent_execution_id),
    )
    statement = select(made).add_cte(logged)
    if failed:  # born terminal: it ends here
        statement = statement.add_columns(
            execution_triggers.possible(made).label("execution_triggers"))
    if "enforcement_id" in columns:  # the rule's enforcement names its execution (or failure)
        failed_now = made.c.status == S.FAILED.value
        statement = statement.add_cte(
            update(enforcements)
            .where(enforcements.c.id == made.c.enforcement_id)
            .values(
                execution_id=made.c.id, updated_at=func.statement_timestamp(),
                status=case((failed_now, EnforcementStatus.FAILED.value),
                            else_=enforcements.c.status),
                error=case((failed_now, made.c.result["error"]["message"].astext),
                           else_=enforcements.c.error),
            )
            .cte("linked")
        )
    return prepared(statement)


@functools.cache
def _transition_statement(
    target: ExecutionStatus, allowed: tuple[str, ...], fields: tuple[str, ...],
    enforcement: EnforcementStatus | None, with_action: bool = False,
) -> Select[Any]:
    """The conditional UPDATE with its audit entry (`from` the status left, merged with the
    bound `audit_details`), in one statement; `previous` is read from the row before it."""
    previous = (
        select(executions.c.status)
        .where(executions.c.id == bindparam("b_execution_id"))
        .scalar_subquery()
    )
    moved = (
        update(executions)
        # The statuses as one value each (not an expanding IN, re-rendered at every run).
        .where(executions.c.id == bindparam("b_execution_id"),
               executions.c.status.in_([literal(status, String) for status in allowed]))
        .values(
            status=target.value,
            updated_at=func.statement_timestamp(),
            **{TIMESTAMP_COLUMN[target]: func.statement_timestamp()},
            **_column_values(fields),
        )
        .returning(executions, previous.label("previous"))
        .cte("moved")
    )
    logged = audit.logged_for(
        moved, action=audit_action(target, moved.c.previous), entity_type="execution",
        details=func.jsonb_build_object("from", moved.c.previous).op("||")(
            bindparam("audit_details", type_=JSONB)),
    )
    statement = select(moved).add_cte(logged)
    if target in TERMINAL_STATES:
        statement = statement.add_columns(
            execution_triggers.possible(moved).label("execution_triggers"))
    if enforcement is not None:
        statement = statement.add_cte(
            update(enforcements)
            .where(enforcements.c.id == moved.c.enforcement_id,
                   enforcements.c.status == EnforcementStatus.CREATED.value)
            .values(status=enforcement.value, updated_at=func.statement_timestamp(),
                    error=func.coalesce(bindparam("enforcement_error", type_=String),
                                        enforcements.c.error))
            .cte("enforced")
        )
    if with_action:
        statement = (
            statement.add_columns(*(c.label(f"action__{c.name}") for c in actions.c),
                                  *(c.label(f"pack__{c.name}") for c in packs.c))
            .outerjoin_from(moved, actions, (actions.c.id == moved.c.action_id)
                            & visible(actions, moved.c.tenant_id))
            .outerjoin(packs, packs.c.id == actions.c.pack_id)
        )
    return prepared(statement)


def audit_action(target: ExecutionStatus, previous: Any) -> Any:
    """api.md's audit names, as SQL over the status left (`previous`): `execution.<status>`,
    but entering running is `started` (or `resumed` after a pause)."""
    if target is S.RUNNING:
        return case((previous == S.PAUSED.value, literal("execution.resumed", String)),
                    else_=literal("execution.started", String))
    return f"execution.{target.value}"


def get(conn: Connection, tenant_id: int | None, execution_id: int) -> dict[str, Any]:
    """One execution; tenant_id None only for services acting on a message they trust."""
    where = [executions.c.id == execution_id]
    if tenant_id is not None:
        where.append(executions.c.tenant_id == tenant_id)
    row = conn.execute(select(executions).where(*where)).mappings().one_or_none()
    if row is None:
        raise NotFoundError(f"Execution {execution_id} not found")
    return dict(row)


def to_api(row: Row) -> dict[str, Any]:
    """api.md's `execution` object; secret parameters shown as "***"."""
    return {
        "id": row["id"],
        "action_id": row["action_id"],
        "action_ref": row["action_ref"],
        "status": row["status"],
        "parameters": params_mod.mask(row["parameters"], row["secret_parameters"] or []),
        "result": row["result"],
        "parent_execution_id": row["parent_execution_id"],
        "task_name": row["task_name"],
        "item_index": row["item_index"],
        "item": row["item"],
        "attempt": row["attempt"],
        "max_attempts": row["max_attempts"],
        "rule_id": row["rule_id"],
        "event_id": row["event_id"],
        "enforcement_id": row["enforcement_id"],
        "rerun_of": row["rerun_of"],
        "worker": row["worker"],
        "waiting_for_concurrency": bool(row["waiting_for_concurrency"])
        and row["status"] == S.SCHEDULED,
        "tenant_id": row["tenant_id"],
        "trace_id": row["trace_id"],
        "created_at": isoformat(row["created_at"]),
        "requested_at": isoformat(row["requested_at"]),
        "scheduled_at": isoformat(row["scheduled_at"]),
        "started_at": isoformat(row["started_at"]),
        "paused_at": isoformat(row["paused_at"]),
        "finished_at": isoformat(row["finished_at"]),
        "updated_at": isoformat(row["updated_at"]),
    }


def moves_parent(payload: Mapping[str, Any]) -> bool:
    """Does this status change move the parent? Terminal, paused, and resumed children do."""
    status, previous = payload.get("status"), payload.get("previous")
    return bool(payload.get("parent_execution_id")) and (
        status in TERMINAL_STATES or status == ExecutionStatus.PAUSED
        or (status == ExecutionStatus.RUNNING and previous == ExecutionStatus.PAUSED)
    )


def canceled_while_paused(payload: Mapping[str, Any]) -> bool:
    """Canceled at once while paused: its children and its inquiry must follow."""
    return (payload.get("status") == ExecutionStatus.CANCELED
            and payload.get("previous") == ExecutionStatus.PAUSED)


def frees_concurrency_slot(payload: Mapping[str, Any]) -> bool:
    """A limited execution (it has a concurrency key) ended: the next of its key may go."""
    return "concurrency_key" in payload and payload.get("status") in TERMINAL_STATES


def needs_follow_up(payload: Mapping[str, Any]) -> bool:
    """Must the executor see this status message (EXECUTION_FOLLOW_UP)? Most need nothing from
    it: a top-level execution being scheduled, started or finished, a child being started.
    An end that fired execution-trigger events (`events`) goes there to have them evaluated."""
    return (moves_parent(payload) or canceled_while_paused(payload)
            or frees_concurrency_slot(payload) or bool(payload.get("events")))


def status_message(row: Mapping[str, Any], previous: str | None) -> dict[str, Any]:
    """Payload of EXECUTION_STATUS_CHANGED, dispatched after the transition committed; a
    limited execution's carries its `concurrency_key` (the executor frees its slot), an end
    that stored execution-trigger events their ids (`events`, for the executor)."""
    message = {
        "execution_id": row["id"],
        "tenant_id": row["tenant_id"],
        "status": row["status"],
        "previous": previous,
        "parent_execution_id": row["parent_execution_id"],
        "trace_id": row["trace_id"],
        "execution": to_api(row),
    }
    if row.get("concurrency_key") is not None:
        message["concurrency_key"] = row["concurrency_key"]
    if row.get("fired_events"):
        message["events"] = row["fired_events"]
    return message


def work_message(row: Mapping[str, Any]) -> dict[str, Any]:
    """Payload of EXECUTION_REQUESTED and EXECUTION_SCHEDULED: ids and the trace."""
    return {"execution_id": row["id"], "tenant_id": row["tenant_id"],
            "trace_id": row.get("trace_id")}
