"""The worker's own queries: its heartbeat row, in-flight statuses, the pack of an action."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, bindparam, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert

from ..domain.models import actions, executions, packs, workers


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


def action_and_pack(
    conn: Connection, tenant_id: int, action_id: int
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """An action the tenant may run (its own or a system one) and its pack row (whose
    `source_path` is the folder actions run in), in one statement; None when it is gone."""
    row = conn.execute(
        _ACTION_AND_PACK, {"action_id": action_id, "tenant_id": tenant_id}
    ).mappings().one_or_none()
    if row is None:
        return None
    action = {c.name: row[c.name] for c in actions.c}
    return action, {c.name: row[f"pack__{c.name}"] for c in packs.c}


_ACTION_AND_PACK = (
    select(actions, *(c.label(f"pack__{c.name}") for c in packs.c))
    .join(packs, packs.c.id == actions.c.pack_id)
    .where(actions.c.id == bindparam("action_id"),
           or_(actions.c.tenant_id == bindparam("tenant_id"), actions.c.tenant_id.is_(None)))
)
