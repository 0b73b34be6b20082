"""The worker's own queries: its heartbeat row, in-flight statuses, the claim of a run."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, func, select, update
from sqlalchemy.dialects.postgresql import insert

from ..domain import executions as executions_repo
from ..domain.models import actions, executions, packs, workers
from ..domain.states import ExecutionStatus


def heartbeat(conn: Connection, name: str, hostname: str, pid: int, status: str = "online") -> None:
    """Upsert this worker's row; the executor reads `heartbeat_at` to find lost workers."""
    stmt = insert(workers).values(
        name=name, hostname=hostname, pid=pid, status=status, heartbeat_at=func.now()
    )
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[workers.c.name],
            set_={"hostname": hostname, "pid": pid, "status": status, "heartbeat_at": func.now()},
        )
    )


def touch_executions(conn: Connection, execution_ids: Iterable[int]) -> None:
    """Stamp `executions.heartbeat_at` of the runs this worker has in flight."""
    ids = list(execution_ids)
    if ids:
        conn.execute(
            update(executions).where(executions.c.id.in_(ids)).values(heartbeat_at=func.now())
        )


def statuses(conn: Connection, execution_ids: Iterable[int]) -> dict[int, str]:
    """Current status of each id (to notice canceling, or an end decided elsewhere)."""
    ids = list(execution_ids)
    if not ids:
        return {}
    rows = conn.execute(
        select(executions.c.id, executions.c.status).where(executions.c.id.in_(ids))
    )
    return {row.id: row.status for row in rows}


def lock_status(conn: Connection, execution_id: int) -> str | None:
    """The status under a row lock, so the final transition decides on a stable value."""
    return conn.execute(
        select(executions.c.status).where(executions.c.id == execution_id).with_for_update()
    ).scalar_one_or_none()


def pack(conn: Connection, pack_id: int) -> dict[str, Any] | None:
    """A pack row (its `source_path` is the folder actions run in)."""
    row = conn.execute(select(packs).where(packs.c.id == pack_id)).mappings().one_or_none()
    return dict(row) if row else None


Claimed = tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any] | None]


def claim(conn: Connection, execution_id: int, worker: str) -> Claimed | None:
    """Move a scheduled execution to running for `worker` and read its action and that
    action's pack in the same statement (executions.transition `with_action`): (execution,
    action, pack), the action None when it is gone or not the tenant's to run; None when the
    execution is not claimable (taken, canceled or gone)."""
    row = executions_repo.transition(
        conn, execution_id, ExecutionStatus.RUNNING, expected=[ExecutionStatus.SCHEDULED],
        actor_type="worker", actor=worker, worker=worker, with_action=True)
    if row is None:
        return None
    action = {c.name: row.pop(f"action__{c.name}") for c in actions.c}
    pack = {c.name: row.pop(f"pack__{c.name}") for c in packs.c}
    if action["id"] is None:
        return row, None, None
    return row, action, pack
