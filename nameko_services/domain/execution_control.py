"""What a user may do to executions: request, rerun, cancel — and the news each step sends.

Each command returns an `Outcome`: the execution row plus the messages to publish once the
transaction has committed (the caller publishes; the domain never talks to the broker).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select

from . import executions, messages
from .catalog import own_first, visible
from .errors import ConflictError, NotFoundError, ValidationError
from .json_values import ensure_storable
from .models import actions
from .states import TERMINAL_STATES, ExecutionStatus

S = ExecutionStatus
# Not yet on a worker: cancel ends them at once. Running ones go through canceling.
CANCEL_AT_ONCE = frozenset({S.REQUESTED, S.SCHEDULED, S.PAUSED})

Message = tuple[str, str, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Outcome:
    """The execution after a command, and the (source, event type, payload) news to publish."""

    execution: dict[str, Any]
    messages: list[Message] = field(default_factory=list)


def resolve_action(conn: Connection, tenant_id: int, ref_or_id: Any) -> dict[str, Any]:
    """The tenant's (or a system) action by id or ref; NotFoundError for anything else."""
    if isinstance(ref_or_id, bool) or not isinstance(ref_or_id, int | str) or ref_or_id == "":
        raise ValidationError("Invalid action", {"action": "must be an action ref or id"})
    if isinstance(ref_or_id, str) and ("\x00" in ref_or_id or len(ref_or_id) > 400):
        raise NotFoundError("Action not found")  # no ref can look like this
    if isinstance(ref_or_id, int) or (ref_or_id.isascii() and ref_or_id.isdigit()):
        if int(ref_or_id) > 2**63 - 1:
            raise NotFoundError(f"Action {ref_or_id} not found")
        match = actions.c.id == int(ref_or_id)
    else:
        match = actions.c.ref == ref_or_id
    row = conn.execute(
        select(actions).where(visible(actions, tenant_id), match)
        .order_by(own_first(actions))  # the tenant's own action first
        .limit(1)
    ).mappings().one_or_none()
    if row is None:
        raise NotFoundError(f"Action {ref_or_id} not found")
    return dict(row)


def created_messages(row: Mapping[str, Any]) -> list[Message]:
    """EXECUTION_CREATED for every new execution, EXECUTION_REQUESTED when it awaits scheduling."""
    news: list[Message] = [
        (messages.EXECUTIONS, messages.EXECUTION_CREATED, executions.status_message(row, None))
    ]
    if row["status"] == S.REQUESTED:
        news.append((messages.GATEWAY, messages.EXECUTION_REQUESTED,
                     executions.work_message(row)))
    return news


def request(
    conn: Connection, *, tenant_id: int, action: Any, parameters: Any, actor: str,
    actor_type: str = "user", **links: Any,
) -> Outcome:
    """Create an execution of `action` (ref or id); invalid parameters fail it at once."""
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, Mapping):
        raise ValidationError("Invalid parameters", {"parameters": "must be an object"})
    ensure_storable(parameters, "parameters")
    action_row = resolve_action(conn, tenant_id, action)
    row = executions.create(conn, tenant_id=tenant_id, action=action_row, parameters=parameters,
                            actor_type=actor_type, actor=actor, **links)
    return Outcome(row, created_messages(row))


def rerun(conn: Connection, *, tenant_id: int, execution_id: int, actor: str,
          trace_id: str | None = None) -> Outcome:
    """A new execution of the same action with the same parameters, `rerun_of` pointing back
    (in the trace of the call that asks for it: a rerun is a new request)."""
    original = executions.get(conn, tenant_id, execution_id)
    if original["action_id"] is None:
        raise ConflictError(f"The action of execution {execution_id} no longer exists")
    return request(conn, tenant_id=tenant_id, action=original["action_id"],
                   parameters=original["parameters"], actor=actor, rerun_of=execution_id,
                   trace_id=trace_id)


def cancel(conn: Connection, *, tenant_id: int, execution_id: int, actor: str) -> Outcome:
    """Cancel: not yet running → canceled at once; running → canceling; terminal → 409.

    Retries when the status moves between the read and the conditional update (a worker
    claiming the execution meanwhile, say), so the answer always matches the database.
    """
    for _ in range(5):
        row = executions.get(conn, tenant_id, execution_id)
        status = S(row["status"])
        if status in TERMINAL_STATES:
            raise ConflictError(
                f"Execution {execution_id} is already {status.value}", {"status": status.value}
            )
        cancel_request: Message = (
            messages.GATEWAY, messages.EXECUTION_CANCEL_REQUESTED,
            {"execution_id": execution_id, "tenant_id": tenant_id, "actor": actor},
        )
        if status is S.CANCELING:  # asked before: ask again (harmless), change nothing
            return Outcome(row, [cancel_request])
        target = S.CANCELED if status in CANCEL_AT_ONCE else S.CANCELING
        extra: dict[str, Any] = (
            {"result": executions.error_result("canceled", f"Canceled by {actor}")}
            if target is S.CANCELED and row["result"] is None else {}
        )
        moved = executions.transition(
            conn, execution_id, target, actor_type="user", actor=actor, expected=[status],
            details={"requested_by": actor}, **extra,
        )
        if moved is None:
            continue
        news: list[Message] = [(messages.EXECUTIONS, messages.EXECUTION_STATUS_CHANGED,
                                executions.status_message(moved, moved["previous"]))]
        if target is S.CANCELING:
            news.append(cancel_request)
        return Outcome(moved, news)
    raise ConflictError(f"Execution {execution_id} kept changing status; try again")
