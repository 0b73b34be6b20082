"""Executions the executor runs itself have children: with-items parents, workflows and retry
parents. News about a child comes here; the parent is locked and its engine decides (the
registry of engines.py: this module imports none of them).

Locks are only ever taken parent first, then child (cancel cascades downwards in one
transaction; news travels upwards by message), so two executors cannot deadlock.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Engine

from ..domain import executions
from ..domain.crypto import Cipher
from ..domain.db import transaction
from ..domain.states import ACTIVE_STATES, TERMINAL_STATES, ExecutionStatus
from . import engines, lifecycle, repository
from .news import Dispatch, Outgoing, send, status_changed

S = ExecutionStatus
ACTOR = {"actor_type": "service", "actor": "executor"}


def kind_of(row: Mapping[str, Any]) -> str | None:
    """Which engine runs this execution's children (None: it has none)."""
    state = row.get("state") or {}
    return next((kind for kind in engines.parent_kinds() if kind in state), None)


def advance(conn: Connection, cipher: Cipher, parent: Mapping[str, Any]) -> list[Outgoing]:
    """The next step of a locked parent, by kind."""
    kind = kind_of(parent)
    if kind is None:
        return []
    return engines.get(kind).advance(conn, cipher, parent)  # parent kinds have `advance`


def refresh(
    engine: Engine, cipher: Cipher, dispatch: Dispatch, parent_id: int, tenant_id: int
) -> None:
    """A child changed (or a cancel was asked): lock the parent, advance it, then publish."""
    with transaction(engine) as conn:
        parent = repository.lock_execution(conn, tenant_id, parent_id)
        out = advance(conn, cipher, parent) if parent is not None else []
    send(dispatch, out)


def on_execution_news(
    engine: Engine, cipher: Cipher, dispatch: Dispatch, payload: Mapping[str, Any]
) -> None:
    """EXECUTION_FOLLOW_UP: cascade a cancel downwards, then let the parent react."""
    tenant_id = payload["tenant_id"]
    if executions.canceled_while_paused(payload):
        with transaction(engine) as conn:
            row = repository.lock_execution(conn, tenant_id, payload["execution_id"])
            out = cancel_children(conn, cipher, row, "Canceled with its parent") if row else []
            out += lifecycle.close_inquiry(conn, payload["execution_id"])
        send(dispatch, out)
    if executions.moves_parent(payload):
        refresh(engine, cipher, dispatch, payload["parent_execution_id"], tenant_id)


def cancel_children(
    conn: Connection, cipher: Cipher, parent: Mapping[str, Any], reason: str
) -> list[Outgoing]:
    """Cancel every unfinished child: not started or paused → canceled; running → canceling
    (a worker stops the process; an executor-run child cancels its own children now)."""
    out: list[Outgoing] = []
    result = executions.error_result("canceled", reason)
    for child in repository.children_summary(conn, parent["tenant_id"], parent["id"]):
        status = S(child["status"])
        if status in TERMINAL_STATES or status == S.CANCELING:
            continue
        if kind_of(child) is not None and status in (S.RUNNING, S.PAUSED):
            locked = repository.lock_execution(conn, parent["tenant_id"], child["id"])
            moved = executions.transition(conn, child["id"], S.CANCELING, expected=[status],
                                          details={"reason": reason}, **ACTOR)
            if moved is not None and locked is not None:
                out += [status_changed(moved), *advance(conn, cipher, moved)]
            continue
        target = S.CANCELING if status == S.RUNNING else S.CANCELED
        moved = executions.transition(
            conn, child["id"], target, expected=[status], details={"reason": reason},
            **({"result": result} if target is S.CANCELED else {}), **ACTOR,
        )
        if moved is None:
            continue
        out.append(status_changed(moved))
        if status == S.PAUSED:
            out += lifecycle.close_inquiry(conn, child["id"])
    return out


def unfinished(conn: Connection, parent: Mapping[str, Any]) -> int:
    """How many children are not terminal yet."""
    counts = repository.children_status_counts(conn, parent["tenant_id"], parent["id"])
    return sum(n for status, n in counts.items() if status in ACTIVE_STATES)
