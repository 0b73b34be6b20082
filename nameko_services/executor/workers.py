"""Lost workers: a worker whose heartbeat is older than two periods is gone, and so are its runs.

Every worker beats every `HEARTBEAT_SECONDS` (worker/runtime.py), stamping its `workers` row and
the `executions.heartbeat_at` of the runs it has in flight. This module, run by the executor on
a timer, marks a worker whose beat is older than `LOST_AFTER` as `lost` and ends each of its
`running` executions `failed` with `error.type: "worker_lost"` (a `canceling` one ends
`canceled`: the user asked for that, and the process is gone either way). An attempt of a retry
parent is just such an execution: its parent sees the status news and makes the next attempt when
the policy allows (executor/retry.py), so nothing here knows about retries.

The work message of an execution the worker had not yet claimed was never acknowledged, so
RabbitMQ redelivers it to another worker when the dead worker's connection closes.

Every step is a conditional UPDATE, so several executors sweeping at once are harmless. A sweep
right after this executor's own database outage would see every worker as stale (they could not
beat either), so the sweep acts only once the database has answered for a whole heartbeat period.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import Engine, func, select, update

from ..domain import executions as executions_repo
from ..domain.db import transaction
from ..domain.models import executions, workers
from ..domain.states import ExecutionStatus
from .news import Dispatch, Outgoing, send, status_changed

log = logging.getLogger(__name__)

S = ExecutionStatus
HEARTBEAT_SECONDS = 5.0  # worker/runtime.py HEARTBEAT_SECONDS (rooms do not import each other)
LOST_AFTER = timedelta(seconds=2 * HEARTBEAT_SECONDS)
CHECK_SECONDS = 2.0
ONLINE, LOST = "online", "lost"
ACTOR = {"actor_type": "service", "actor": "executor"}


@dataclass
class LostWorkerDetector:
    """Per executor process: remembers since when the database has answered without a gap."""

    clock: object = field(default=time.monotonic)
    healthy_since: float | None = None
    last_ok: float | None = None

    def check(self, engine: Engine, dispatch: Dispatch) -> dict[str, int]:
        """One sweep; returns counts (workers marked lost, executions ended)."""
        now = self.clock()  # type: ignore[operator]
        try:
            with engine.connect() as conn:
                conn.execute(select(1))
        except Exception as exc:
            self.healthy_since = None
            log.warning("lost-worker check skipped: database unavailable (%s)", type(exc).__name__)
            return {"workers": 0, "executions": 0}
        gap = self.last_ok is None or now - self.last_ok > 2 * CHECK_SECONDS + HEARTBEAT_SECONDS
        if gap or self.healthy_since is None:
            self.healthy_since = now  # first check, or a gap: give workers a period to beat
        self.last_ok = now
        if now - self.healthy_since < HEARTBEAT_SECONDS:
            return {"workers": 0, "executions": 0}
        return sweep(engine, dispatch)


def sweep(engine: Engine, dispatch: Dispatch) -> dict[str, int]:
    """Mark stale workers lost, then end every run left without a live worker."""
    with transaction(engine) as conn:
        lost = conn.execute(
            update(workers)
            .where(workers.c.status == ONLINE,
                   workers.c.heartbeat_at < func.now() - LOST_AFTER)
            .values(status=LOST)
            .returning(workers.c.name, workers.c.heartbeat_at)
        ).all()
    for name, beat in lost:
        log.warning("worker %s lost (last heartbeat %s)", name, beat.isoformat())
    ended = 0
    for execution_id in orphaned(engine):
        ended += end_orphan(engine, dispatch, execution_id)
    return {"workers": len(lost), "executions": ended}


def orphaned(engine: Engine) -> list[int]:
    """Worker-run executions in flight whose worker is not online and whose own stamp is stale.

    The execution's own stamp matters too: a claim made moments before the worker row first
    appears (or a worker renamed across a restart) is not an orphan yet.
    """
    live = select(workers.c.name).where(workers.c.status == ONLINE)
    stale = func.coalesce(executions.c.heartbeat_at, executions.c.started_at,
                          executions.c.updated_at) < func.now() - LOST_AFTER
    stmt = (
        select(executions.c.id)
        .where(
            executions.c.status.in_([S.RUNNING.value, S.CANCELING.value]),
            executions.c.worker.is_not(None),
            executions.c.worker.not_in(live),
            stale,
        )
        .order_by(executions.c.id)
        .limit(500)
    )
    with engine.connect() as conn:
        return list(conn.execute(stmt).scalars())


def end_orphan(engine: Engine, dispatch: Dispatch, execution_id: int) -> int:
    """running → failed (worker_lost), canceling → canceled; 1 when this call moved it."""
    outgoing: list[Outgoing] = []
    with transaction(engine) as conn:
        row = conn.execute(
            select(executions.c.status, executions.c.worker, executions.c.result)
            .where(executions.c.id == execution_id).with_for_update()
        ).one_or_none()
        if row is None or row.status not in (S.RUNNING, S.CANCELING):
            return 0
        message = f"Worker {row.worker} stopped heartbeating while the action was running"
        result = executions_repo.error_result("worker_lost", message)
        for key in ("stdout", "stderr"):  # keep whatever partial output was recorded
            if row.result and row.result.get(key):
                result[key] = row.result[key]
        target = S.CANCELED if row.status == S.CANCELING else S.FAILED
        moved = executions_repo.transition(
            conn, execution_id, target, expected=[S(row.status)], result=result,
            details={"error": result["error"], "worker": row.worker}, **ACTOR,
        )
        if moved is None:
            return 0
        outgoing.append(status_changed(moved))
    log.warning("execution %s of lost worker %s: %s", execution_id, row.worker, target.value,
                extra={"execution_id": execution_id})
    send(dispatch, outgoing)
    return 1


_DETECTOR = LostWorkerDetector()


def check(engine: Engine, dispatch: Dispatch) -> dict[str, int]:
    """The executor's periodic check (one detector per process)."""
    return _DETECTOR.check(engine, dispatch)
