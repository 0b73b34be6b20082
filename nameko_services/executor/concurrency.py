"""Concurrency policies (domain/concurrency.py): admit an execution now, queue it, or cancel it.

Every decision about a (tenant, action, key) takes its transaction-scoped advisory lock first,
so two executor replicas never both admit into the last slot. A queued execution is `scheduled`
with `waiting_for_concurrency` and no work message; admitting it clears the flag (a
`scheduled → scheduled` transition, audited) and sends the work message.

A slot is freed when its execution finishes, however it finishes (worker, worker loss, cancel):
the status news of a limited execution's end carries `concurrency_key`, so it is sent to the
executor too (domain/executions.needs_follow_up) and `release` admits the next in line. Should
that news be lost, or an executor crash between the end and the admission, `resume` (start-up
and the periodic sweep) admits whatever the free slots allow.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Engine

from ..domain import concurrency, executions
from ..domain.db import transaction
from ..domain.errors import NotFoundError
from ..domain.states import EnforcementStatus, ExecutionStatus
from . import lifecycle, repository
from .news import Dispatch, Outgoing, scheduled, send, status_changed

log = logging.getLogger(__name__)

S = ExecutionStatus
ACTOR = {"actor_type": "service", "actor": "executor"}


def schedule(
    conn: Connection, row: Mapping[str, Any], policy: concurrency.Policy
) -> list[Outgoing]:
    """A `requested` execution of a limited action: scheduled now when its key has a free slot
    and nobody waiting, else queued (or canceled, by the policy's overflow)."""
    try:
        key = concurrency.render_key(policy, row["parameters"])
    except concurrency.KeyRenderError as exc:
        return lifecycle.fail(conn, row, "concurrency_key", str(exc))
    tenant_id, ref = row["tenant_id"], row["action_ref"]
    concurrency.lock(conn, tenant_id, ref, key)
    taken, waiting = concurrency.counts(conn, tenant_id, ref, key)
    if taken < policy.limit and not waiting:
        return _schedule(conn, row, key, wait=False)
    if policy.overflow == concurrency.CANCEL:
        if taken < policy.limit:  # a queue left from when the overflow was `queue`
            return _schedule(conn, row, key, wait=True) + admit(conn, tenant_id, ref, key, policy)
        return lifecycle.cancel(
            conn, row, f"Concurrency limit reached: {taken} of {policy.limit} executions of "
                       f"{ref} running{_for(key)} (overflow: cancel)")
    return _schedule(conn, row, key, wait=True) + admit(conn, tenant_id, ref, key, policy)


def admit(
    conn: Connection, tenant_id: int, action_ref: str, key: str, policy: concurrency.Policy | None,
) -> list[Outgoing]:
    """Admit the oldest waiting executions of a key into its free slots (lock held).

    `policy` None: the action is gone or no longer limited — every waiting one is let go (a
    gone action then fails at the worker, as any execution of a deleted action does).
    """
    taken, waiting = concurrency.counts(conn, tenant_id, action_ref, key)
    free = waiting if policy is None else min(policy.limit - taken, waiting)
    out: list[Outgoing] = []
    if free <= 0:
        return out
    for execution_id in concurrency.first_waiting(conn, tenant_id, action_ref, key, free):
        moved = executions.transition(
            conn, execution_id, S.SCHEDULED, expected=[S.SCHEDULED],
            waiting_for_concurrency=False, details={"admitted": True}, **ACTOR)
        if moved is not None:  # None: canceled meanwhile; its own news admits again
            out += [status_changed(moved), scheduled(moved)]
    return out


def release(engine: Engine, dispatch: Dispatch, payload: Mapping[str, Any]) -> None:
    """A limited execution finished (EXECUTION_FOLLOW_UP): its key's next in line goes."""
    admit_key(engine, dispatch, payload["tenant_id"], payload["execution_id"])


def admit_key(engine: Engine, dispatch: Dispatch, tenant_id: int, execution_id: int) -> None:
    """One transaction: lock the key of `execution_id`, admit what fits, then the news."""
    with transaction(engine) as conn:
        try:
            row = executions.get(conn, tenant_id, execution_id)
        except NotFoundError:
            return
        key = row["concurrency_key"]
        if key is None:
            return
        action = repository.action(conn, tenant_id, row["action_id"])
        policy = concurrency.Policy.of(action) if action is not None else None
        concurrency.lock(conn, tenant_id, row["action_ref"], key)
        out = admit(conn, tenant_id, row["action_ref"], key, policy)
    send(dispatch, out)


def resume(engine: Engine, dispatch: Dispatch) -> int:
    """Recovery: every key with a queue admits what its free slots allow; returns the number
    of keys looked at."""
    with engine.connect() as conn:
        groups = concurrency.waiting_groups(conn)
    for tenant_id, _ref, _key, oldest_id in groups:
        try:
            admit_key(engine, dispatch, tenant_id, oldest_id)
        except Exception:
            log.exception("admitting waiting executions of execution %s's key failed", oldest_id)
    return len(groups)


def _schedule(
    conn: Connection, row: Mapping[str, Any], key: str, *, wait: bool
) -> list[Outgoing]:
    """requested → scheduled with its key; the work message only when admitted."""
    moved = executions.transition(
        conn, row["id"], S.SCHEDULED, expected=[S.REQUESTED], concurrency_key=key,
        waiting_for_concurrency=wait, enforcement=EnforcementStatus.SCHEDULED, **ACTOR)
    if moved is None:
        return []
    return [status_changed(moved)] if wait else [status_changed(moved), scheduled(moved)]


def _for(key: str) -> str:
    return f" for key {key!r}" if key else ""
