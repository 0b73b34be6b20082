"""Hand a `requested` execution on: to a worker, or to the executor's own runners.

`plan` is the one place that decides what an execution needs, asking the engines in the order
service.py registers them:
1. an action with `with_items` (the parent, not an item) fans out, one child per item;
2. more than one attempt (`max_attempts` > 1, from the action's or task's `retry`) makes it a
   retry parent whose attempts are children — the item children of (1) are wrapped one by one;
3. `runner_type: workflow` runs the workflow engine, `inquiry` creates an inquiry;
4. anything else is scheduled for a worker — through its concurrency policy, if it has one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Engine

from ..domain import concurrency as concurrency_policy
from ..domain import executions
from ..domain.crypto import Cipher
from ..domain.db import transaction
from ..domain.errors import NotFoundError
from ..domain.states import ExecutionStatus
from . import concurrency, engines, lifecycle, repository
from .news import Dispatch, Outgoing, send


def plan(
    conn: Connection, row: Mapping[str, Any], cipher: Cipher,
    action: Mapping[str, Any] | None = None,
) -> list[Outgoing]:
    """Decide what a `requested` execution needs, inside the caller's transaction.

    `action`: the execution's action row when the caller has just read it.
    """
    if row["status"] != ExecutionStatus.REQUESTED:
        return []
    if action is None or action["id"] != row["action_id"]:
        action = repository.action(conn, row["tenant_id"], row["action_id"])
    if action is None:
        return lifecycle.fail(conn, row, "action_missing",
                              f"Action {row['action_ref']} no longer exists")
    for engine in engines.ordered():
        if engine.claims(row, action):
            return engine.start(conn, cipher, row, action)
    policy = concurrency_policy.Policy.of(action)  # hook: concurrency policy (issue 20)
    if policy is not None:
        return concurrency.schedule(conn, row, policy)
    return lifecycle.to_scheduled(conn, row)


def schedule(
    conn: Connection, cipher: Cipher, execution_id: int, tenant_id: int
) -> list[Outgoing]:
    """Load and plan one execution; an unknown id (or another tenant's) is ignored."""
    try:
        row = executions.get(conn, tenant_id, execution_id)
    except NotFoundError:
        return []
    return plan(conn, row, cipher)


def schedule_and_send(
    engine: Engine, cipher: Cipher, dispatch: Dispatch, execution_id: int, tenant_id: int
) -> None:
    """One transaction, then the news: EXECUTION_REQUESTED and start-up recovery use this."""
    with transaction(engine) as conn:
        out = schedule(conn, cipher, execution_id, tenant_id)
    send(dispatch, out)
