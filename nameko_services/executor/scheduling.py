"""Hand a `requested` execution on: to a worker, to the with-items fan-out, or fail it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Engine

from ..domain import executions
from ..domain.db import transaction
from ..domain.errors import NotFoundError
from ..domain.states import ExecutionStatus
from . import lifecycle, repository, with_items
from .news import Dispatch, Outgoing, send

# Runners the executor itself will run (a later issue); until then they fail clearly.
EXECUTOR_RUNNERS = frozenset({"workflow", "inquiry"})


def plan(conn: Connection, row: Mapping[str, Any]) -> list[Outgoing]:
    """Decide what a `requested` execution needs, inside the caller's transaction."""
    if row["status"] != ExecutionStatus.REQUESTED:
        return []
    action = repository.action(conn, row["tenant_id"], row["action_id"])
    if action is None:
        return lifecycle.fail(conn, row, "action_missing",
                              f"Action {row['action_ref']} no longer exists")
    if action["runner_type"] in EXECUTOR_RUNNERS:
        return lifecycle.fail(
            conn, row, "not_implemented",
            f"Runner {action['runner_type']!r} is not implemented yet "
            f"(action {action['ref']})",
        )
    if action.get("with_items") and row["item_index"] is None:
        return with_items.expand(conn, row, action)
    return lifecycle.to_scheduled(conn, row)


def schedule(conn: Connection, execution_id: int, tenant_id: int) -> list[Outgoing]:
    """Load and plan one execution; an unknown id (or another tenant's) is ignored."""
    try:
        row = executions.get(conn, tenant_id, execution_id)
    except NotFoundError:
        return []
    return plan(conn, row)


def schedule_and_send(
    engine: Engine, dispatch: Dispatch, execution_id: int, tenant_id: int
) -> None:
    """One transaction, then the news: EXECUTION_REQUESTED and start-up recovery use this."""
    with transaction(engine) as conn:
        out = schedule(conn, execution_id, tenant_id)
    send(dispatch, out)
