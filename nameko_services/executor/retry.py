"""Retry policy: each attempt is its own execution row, a child of the one the user asked for.

Decision (documented in docs/packs.md): the execution that was requested — by the API, a rule,
a workflow task or a with-items item — becomes a *retry parent* the executor runs itself. It is
`running` while its attempts run, carries `attempt` (the latest) and `max_attempts`, and ends
with the final attempt's status and result, so whoever watches that id sees one honest
outcome. Every attempt is a child row (`attempt` n of `max_attempts`, same action and
parameters) with its own status, logs, worker and audit trail; nothing is ever re-run in
place, so a terminal status never changes.

Between attempts a durable timer (kind `retry`) waits
`min(delay * multiplier^(n-1), max_delay)`; an executor restart does not lose it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from ..domain import audit, executions
from ..domain.crypto import Cipher
from ..domain.retry import RetryPolicy
from ..domain.states import ACTIVE_STATES, ExecutionStatus
from . import engines, lifecycle, parents, repository, scheduling, timers
from .news import Outgoing, created, status_changed

S = ExecutionStatus
STATE_KEY = engines.RETRY
ATTEMPT_KEY = "attempt_of"
POLICY_KEY = engines.RETRY_POLICY_KEY
ACTOR = {"actor_type": "service", "actor": "executor"}


def wraps(row: Mapping[str, Any], action: Mapping[str, Any]) -> bool:
    """Does this requested execution need attempts? (Never an attempt itself, nor an inquiry.)"""
    state = row.get("state") or {}
    return (int(row["max_attempts"] or 1) > 1 and ATTEMPT_KEY not in state
            and action["runner_type"] != "inquiry")


def policy_of(row: Mapping[str, Any], action: Mapping[str, Any] | None = None) -> RetryPolicy:
    state = row.get("state") or {}
    block = (state.get(STATE_KEY) or {}).get("policy") or state.get(POLICY_KEY)
    if block is None and action is not None:
        block = action.get("retry")
    return RetryPolicy.from_mapping(block, max_attempts=row["max_attempts"])


def start(
    conn: Connection, cipher: Cipher, row: Mapping[str, Any], action: Mapping[str, Any]
) -> list[Outgoing]:
    """requested → running as a retry parent, and its first attempt."""
    policy = policy_of(row, action)
    state = {STATE_KEY: {"policy": policy.to_dict()}}
    running = lifecycle.to_running(conn, row, state)
    if running is None:
        return []
    return [status_changed(running), *_attempt(conn, cipher, running, 1)]


def _attempt(
    conn: Connection, cipher: Cipher, parent: Mapping[str, Any], number: int
) -> list[Outgoing]:
    action = repository.action(conn, parent["tenant_id"], parent["action_id"])
    if action is None:
        return lifecycle.fail(conn, parent, "action_missing",
                              f"Action {parent['action_ref']} no longer exists",
                              expected=[S.RUNNING])
    child = executions.create(
        conn,
        tenant_id=parent["tenant_id"],
        action=action,
        parameters=parent["parameters"],
        actor_type="service",
        actor="executor",
        parent_execution_id=parent["id"],
        item_index=parent["item_index"],
        item=parent["item"],
        trigger_data=parent["trigger_data"],
        attempt=number,
        max_attempts=parent["max_attempts"],
        timeout_seconds=parent.get("timeout_seconds"),
        state={ATTEMPT_KEY: parent["id"]},
        trace_id=parent["trace_id"],
    )
    repository.set_attempt(conn, parent["id"], number)
    audit.record(conn, tenant_id=parent["tenant_id"], action="execution.attempt_started",
                 entity_type="execution", entity_id=parent["id"],
                 details={"attempt": number, "max_attempts": parent["max_attempts"],
                          "attempt_execution_id": child["id"]}, **ACTOR)
    return [created(child), *scheduling.plan(conn, child, cipher)]


def advance(conn: Connection, cipher: Cipher, parent: Mapping[str, Any]) -> list[Outgoing]:
    """An attempt changed: finish the parent, or wait for the backoff timer of the next one.

    The caller holds the parent row lock.
    """
    attempts = repository.children_summary(conn, parent["tenant_id"], parent["id"])
    active = [a for a in attempts if a["status"] in ACTIVE_STATES]
    if parent["status"] == S.CANCELING:
        out = parents.cancel_children(conn, cipher, parent, "Canceled with its execution")
        if not parents.unfinished(conn, parent):
            timers.cancel(conn, timers.RETRY, parent["id"])
            out += lifecycle.canceled(conn, parent, _final_result(conn, attempts, parent))
        return out
    if parent["status"] != S.RUNNING or active:
        return []
    if not attempts:  # its first attempt was never created (crash between the two)
        return _attempt(conn, cipher, parent, 1)
    last = attempts[-1]
    result = _final_result(conn, attempts, parent)
    if last["status"] == S.SUCCEEDED:
        timers.cancel(conn, timers.RETRY, parent["id"])
        return lifecycle.succeed(conn, parent, result)
    if last["status"] == S.CANCELED:  # someone canceled the attempt itself: no more tries
        moved = executions.transition(conn, parent["id"], S.CANCELED, expected=[S.RUNNING],
                                      result=result, **ACTOR)
        return [status_changed(moved)] if moved is not None else []
    policy = policy_of(parent)
    if policy.allows_another(last["attempt"]):
        return _schedule_next(conn, parent, policy, last)
    message = (result.get("error") or {}).get("message") or f"attempt {last['attempt']} failed"
    error = {**(result.get("error") or {}),
             "message": f"{message} (attempt {last['attempt']} of {parent['max_attempts']})"}
    result = {**result, "error": error}
    moved = executions.transition(conn, parent["id"], S.FAILED, expected=[S.RUNNING],
                                  result=result, details={"error": error}, **ACTOR)
    return [status_changed(moved)] if moved is not None else []


def _schedule_next(
    conn: Connection, parent: Mapping[str, Any], policy: RetryPolicy, last: Mapping[str, Any]
) -> list[Outgoing]:
    delay = policy.delay_after(last["attempt"])
    out = timers.schedule(conn, kind=timers.RETRY, entity_id=parent["id"],
                          tenant_id=parent["tenant_id"], delay_seconds=delay,
                          payload={"attempt": last["attempt"] + 1})
    if out:  # first time this failure is seen
        audit.record(conn, tenant_id=parent["tenant_id"], action="execution.retry_scheduled",
                     entity_type="execution", entity_id=parent["id"],
                     details={"attempt": last["attempt"] + 1,
                              "max_attempts": parent["max_attempts"],
                              "delay_seconds": delay,
                              "after_error": last["error"],
                              "failed_execution_id": last["id"]}, **ACTOR)
    return out


def on_due(conn: Connection, cipher: Cipher, timer: Mapping[str, Any]) -> list[Outgoing]:
    """The backoff is over: start the next attempt (unless the parent moved on meanwhile)."""
    parent = repository.lock_execution(conn, timer["tenant_id"], timer["entity_id"])
    if parent is None or parent["status"] != S.RUNNING or STATE_KEY not in (parent["state"] or {}):
        return []
    attempts = repository.children_summary(conn, parent["tenant_id"], parent["id"])
    number = int(timer["payload"].get("attempt") or len(attempts) + 1)
    if any(a["status"] in ACTIVE_STATES for a in attempts) or (
        attempts and attempts[-1]["attempt"] >= number
    ):
        return []
    return _attempt(conn, cipher, parent, number)


def _final_result(
    conn: Connection, attempts: list[dict[str, Any]], parent: Mapping[str, Any]
) -> dict[str, Any]:
    """The last attempt's result, plus the list of attempts and the parent's duration."""
    last = attempts[-1] if attempts else None
    result = dict((repository.result_of(conn, last["id"]) if last else None)
                  or executions.empty_result())
    result["attempts"] = [
        {"attempt": a["attempt"], "execution_id": a["id"], "status": a["status"],
         "error": a["error"]}
        for a in attempts
    ]
    started = parent.get("started_at")
    if started is not None:
        result["duration_ms"] = int((datetime.now(UTC) - started).total_seconds() * 1000)
    return result


ENGINE = engines.Engine(kind=STATE_KEY, claims=wraps, start=start, advance=advance)
