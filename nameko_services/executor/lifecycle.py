"""The executor's status moves, each through domain.executions.transition (conditional UPDATE).

Each returns the messages to publish after commit; an empty list means another executor (or a
duplicate message) got there first, which is harmless.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection

from .. import tracing
from ..domain import executions, inquiries, messages
from ..domain.states import EnforcementStatus, ExecutionStatus
from . import timers
from .news import Outgoing, inquiry, scheduled, status_changed

S = ExecutionStatus
ACTOR = {"actor_type": "service", "actor": "executor"}


def to_scheduled(conn: Connection, row: Mapping[str, Any]) -> list[Outgoing]:
    """requested → scheduled; the worker gets EXECUTION_SCHEDULED after the status change."""
    with tracing.span("schedule", row.get("trace_id"), execution_id=row["id"]) as span_id:
        moved = executions.transition(conn, row["id"], S.SCHEDULED, expected=[S.REQUESTED],
                                      enforcement=EnforcementStatus.SCHEDULED, **ACTOR)
    if moved is None:
        return []
    return [status_changed(moved), scheduled(moved, span_id)]


def to_running(
    conn: Connection, row: Mapping[str, Any], state: dict[str, Any]
) -> dict[str, Any] | None:
    """requested → running for an execution the executor runs itself (a with-items parent)."""
    return executions.transition(
        conn, row["id"], S.RUNNING, expected=[S.REQUESTED], state=state,
        enforcement=EnforcementStatus.SCHEDULED, **ACTOR
    )


def fail(
    conn: Connection,
    row: Mapping[str, Any],
    error_type: str,
    message: str,
    *,
    expected: Iterable[ExecutionStatus] = (S.REQUESTED,),
    result_fields: Mapping[str, Any] | None = None,
    **error_fields: Any,
) -> list[Outgoing]:
    """Fail an execution the executor cannot hand on (template, not_implemented, …).

    `error_fields` extend `result.error`; `result_fields` extend `result` (e.g. `output`).
    """
    result = executions.error_result(error_type, message, **(result_fields or {}))
    result["error"].update(error_fields)
    moved = executions.transition(
        conn, row["id"], S.FAILED, expected=list(expected), result=result,
        details={"error": result["error"]}, enforcement=EnforcementStatus.FAILED,
        enforcement_error=message, **ACTOR,
    )
    if moved is None:
        return []
    return [status_changed(moved)]


def succeed(conn: Connection, row: Mapping[str, Any], result: dict[str, Any]) -> list[Outgoing]:
    """running → succeeded for an execution the executor ran itself."""
    moved = executions.transition(
        conn, row["id"], S.SUCCEEDED, expected=[S.RUNNING], result=result, **ACTOR
    )
    return [status_changed(moved)] if moved is not None else []


def cancel(conn: Connection, row: Mapping[str, Any], reason: str) -> list[Outgoing]:
    """A not-yet-running execution (requested/scheduled) → canceled; a worker's claim then fails."""
    moved = executions.transition(
        conn, row["id"], S.CANCELED, expected=[S.REQUESTED, S.SCHEDULED],
        result=executions.error_result("canceled", reason), details={"reason": reason}, **ACTOR,
    )
    return [status_changed(moved)] if moved is not None else []


def canceled(conn: Connection, row: Mapping[str, Any], result: dict[str, Any]) -> list[Outgoing]:
    """canceling → canceled, for an execution the executor ran itself."""
    moved = executions.transition(
        conn, row["id"], S.CANCELED, expected=[S.CANCELING], result=result, **ACTOR
    )
    return [status_changed(moved)] if moved is not None else []


def close_inquiry(conn: Connection, execution_id: int) -> list[Outgoing]:
    """The execution was canceled: its pending inquiry expires now (no default applied)."""
    pending = inquiries.pending_for_execution(conn, execution_id)
    if pending is None:
        return []
    expired = inquiries.expire(conn, pending["id"], reason="execution canceled")
    timers.cancel(conn, timers.INQUIRY_EXPIRY, pending["id"])
    return [inquiry(messages.INQUIRY_EXPIRED, expired)] if expired is not None else []
