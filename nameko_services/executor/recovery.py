"""Resume from the database: what a lost message or a crash left unfinished.

Messages are the fast path; these sweeps are the guarantee (ADR 0002). They scan across
tenants (a maintenance sweep), then act on each row within its own tenant. Every step is the
same conditional code the message handlers run, so racing a live handler is harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, or_, select

from ..domain import inquiries
from ..domain.crypto import Cipher
from ..domain.models import events, executions
from ..domain.states import ExecutionStatus
from . import concurrency, enforcement, engines, inquiry, parents, scheduling
from .news import Dispatch, scheduled, send

log = logging.getLogger(__name__)

S = ExecutionStatus
BATCH = 500
# The periodic sweep leaves young rows to their messages, and re-sends a work message only for
# executions that stayed `scheduled` this long (a worker's claim is conditional anyway).
SWEEP_MIN_AGE = timedelta(seconds=10)
SWEEP_REDISPATCH_AFTER = timedelta(minutes=5)


def resume(
    engine: Engine,
    cipher: Cipher,
    dispatch: Dispatch,
    *,
    min_age: timedelta = timedelta(0),
    redispatch_after: timedelta = timedelta(0),
) -> dict[str, int]:
    """Evaluate unprocessed events, plan top-level `requested` executions, advance parents
    (workflows, with-items, retries), resume answered inquiries, admit executions waiting for
    a free concurrency slot and re-send `scheduled` work;
    returns counts per kind (for the log). Due durable timers need nothing here: the timer
    loop reads them from the table."""
    now = datetime.now(UTC)
    counts = {"events": 0, "requested": 0, "parents": 0, "answers": 0, "redispatched": 0,
              "concurrency_keys": 0}
    for event_id, tenant_id in _ids(engine, select(events.c.id, events.c.tenant_id).where(
        events.c.processed_at.is_(None), events.c.created_at <= now - min_age
    ), events.c.id):
        counts["events"] += _attempt(
            enforcement.handle_event, engine, cipher, dispatch, event_id, tenant_id)
    for execution_id, tenant_id in _ids(engine, _executions(S.REQUESTED).where(
        executions.c.parent_execution_id.is_(None), executions.c.requested_at <= now - min_age
    ), executions.c.id):
        counts["requested"] += _attempt(
            scheduling.schedule_and_send, engine, cipher, dispatch, execution_id, tenant_id)
    unfinished_parents = select(executions.c.id, executions.c.tenant_id).where(
        executions.c.status.in_([S.RUNNING, S.PAUSED, S.CANCELING]),
        or_(*(executions.c.state.has_key(kind) for kind in engines.parent_kinds())),
    )
    for execution_id, tenant_id in _ids(engine, unfinished_parents, executions.c.id):
        counts["parents"] += _attempt(
            parents.refresh, engine, cipher, dispatch, execution_id, tenant_id)
    with engine.connect() as conn:
        answered = inquiries.responded_but_paused(conn)
    for inquiry_id, tenant_id in answered:
        counts["answers"] += _attempt(inquiry.resume, engine, dispatch, inquiry_id, tenant_id)
    # hook: concurrency policy (issue 20) — queues whose slots freed without news move on, and
    # an execution waiting for a slot has no work message to re-send
    counts["concurrency_keys"] = concurrency.resume(engine, dispatch)
    for execution_id, tenant_id in _ids(engine, _executions(S.SCHEDULED).where(
        executions.c.scheduled_at <= now - redispatch_after,
        executions.c.waiting_for_concurrency.is_(False),
    ), executions.c.id):
        counts["redispatched"] += _attempt(
            send, dispatch, [scheduled({"id": execution_id, "tenant_id": tenant_id})])
    if any(counts.values()):
        log.info("executor resumed from the database: %s", counts)
    return counts


def sweep(engine: Engine, cipher: Cipher, dispatch: Dispatch) -> dict[str, int]:
    """The periodic safety net: like resume, but leaves young rows to their messages."""
    return resume(engine, cipher, dispatch, min_age=SWEEP_MIN_AGE,
                  redispatch_after=SWEEP_REDISPATCH_AFTER)


def _attempt(step: Callable[..., None], *args: object) -> int:
    """Run one recovery step; a failure is logged and the sweep goes on (1 = done, 0 = failed)."""
    try:
        step(*args)
    except Exception:
        log.exception("recovery step %s%s failed", step.__name__, args[-2:])
        return 0
    return 1


def _executions(status: ExecutionStatus):
    return select(executions.c.id, executions.c.tenant_id).where(executions.c.status == status)


def _ids(engine: Engine, stmt, id_column) -> Iterator[tuple[int, int]]:
    """(id, tenant_id) rows in id order, fetched in batches so a backlog never sits in memory."""
    last = 0
    while True:
        with engine.connect() as conn:
            rows = conn.execute(
                stmt.where(id_column > last).order_by(id_column).limit(BATCH)
            ).all()
        for row_id, tenant_id in rows:
            yield row_id, tenant_id
            last = row_id
        if len(rows) < BATCH:
            return
