"""The executor's operator calls (`attune shell`: `n.rpc.executor.invoke/stats/explain`).

Operators act across tenants: these calls take a tenant id or read every tenant's counts, and
are reachable only over RabbitMQ with the platform's broker credentials (never from the API).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, func, select

from .. import broker
from ..domain import execution_control, executions, rule_explain
from ..domain.db import isoformat, transaction
from ..domain.models import events
from ..domain.models import executions as executions_table
from ..domain.states import TERMINAL_STATES, ExecutionStatus
from .news import Dispatch

OPERATOR = "operator"
MAX_WAIT_SECONDS = 300.0
# How `invoke` waits: a read of the execution's status by primary key, first after
# FIRST_POLL_SECONDS, each next one twice as late up to LAST_POLL_SECONDS. The executor hears
# no status news of executions it does not drive (only the notifier consumes them all), and a
# queue of all of them for one call would cost every execution of the platform a delivery
# while the call waits; a few reads per second of one row cost less.
FIRST_POLL_SECONDS = 0.02
LAST_POLL_SECONDS = 0.5
WAITING = (ExecutionStatus.REQUESTED.value, ExecutionStatus.SCHEDULED.value)


def invoke(engine: Engine, dispatch: Dispatch, action_ref: Any, params: Mapping[str, Any] | None,
           tenant_id: int, wait: float) -> dict[str, Any]:
    """Create an execution of `action_ref` for `tenant_id` as the API does (audit actor
    `operator`, actor type `service`; no backlog bound: the operator is not a tenant) and
    wait up to `wait` seconds (at most MAX_WAIT_SECONDS) for it to end; the execution as the
    API serves it, terminal or as it is then. Bad input raises the domain's errors."""
    with transaction(engine) as conn:
        outcome = execution_control.request(
            conn, tenant_id=int(tenant_id), action=action_ref, parameters=params,
            actor=OPERATOR, actor_type="service")
    for source, event_type, payload in outcome.messages:
        dispatch(event_type, payload, source=source)
    execution_id = outcome.execution["id"]
    deadline = time.monotonic() + min(max(float(wait), 0.0), MAX_WAIT_SECONDS)
    pause = FIRST_POLL_SECONDS
    while True:
        with transaction(engine) as conn:
            row = executions.get(conn, int(tenant_id), execution_id)
        remaining = deadline - time.monotonic()
        if row["status"] in TERMINAL_STATES or remaining <= 0:
            return executions.to_api(row)
        time.sleep(min(pause, remaining))
        pause = min(pause * 2, LAST_POLL_SECONDS)


def stats(engine: Engine, amqp_uri: str) -> dict[str, Any]:
    """Executions by status (every tenant), the oldest execution and event still waiting, and
    the depth and consumers of each work queue (`error` instead when the broker is away)."""
    with transaction(engine) as conn:
        by_status = dict(conn.execute(
            select(executions_table.c.status, func.count())
            .group_by(executions_table.c.status)).all())
        oldest = conn.execute(
            select(executions_table.c.id, executions_table.c.tenant_id,
                   executions_table.c.status, executions_table.c.created_at)
            .where(executions_table.c.status.in_(WAITING))
            .order_by(executions_table.c.created_at, executions_table.c.id).limit(1)
        ).mappings().one_or_none()
        oldest_event = conn.execute(
            select(events.c.id, events.c.tenant_id, events.c.created_at)
            .where(events.c.processed_at.is_(None))
            .order_by(events.c.created_at, events.c.id).limit(1)
        ).mappings().one_or_none()
        now = conn.execute(select(func.now())).scalar_one()
    try:
        depths = broker.queue_depths(amqp_uri, broker.work_queues())
        queues: dict[str, Any] = {name: {"ready": ready, "consumers": consumers}
                                  for name, (ready, consumers) in sorted(depths.items())}
    except Exception as exc:  # the counts above still answer
        queues = {"error": f"broker unavailable: {type(exc).__name__}"}
    return {
        "executions": {status: by_status.get(status, 0) for status in
                       sorted({s.value for s in ExecutionStatus} | set(by_status))},
        "oldest_waiting_execution": _waiting(oldest, now),
        "oldest_unprocessed_event": _waiting(oldest_event, now),
        "queues": queues,
    }


def _waiting(row: Mapping[str, Any] | None, now: Any) -> dict[str, Any] | None:
    if row is None:
        return None
    return {**{k: v for k, v in row.items() if k != "created_at"},
            "created_at": isoformat(row["created_at"]),
            "waiting_seconds": round((now - row["created_at"]).total_seconds(), 3)}


def explain(engine: Engine, event_id: int) -> dict[str, Any]:
    """Which rules the event matched and why the others did not (domain/rule_explain.py)."""
    with transaction(engine) as conn:
        return rule_explain.explain(conn, int(event_id))
