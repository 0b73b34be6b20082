"""One scheduled execution on this worker: claim, prepare, run, record, and the news of each.

The claim is a conditional `scheduled → running` update, so a redelivered or duplicated work
message finds nothing to claim. Whatever happens after the claim, the execution ends in a
terminal state: an unexpected error in this code fails it with `error.type: "worker_error"`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from runners import get_runner
from runners.base import Outcome, RunResult, error

from .. import log_masking, logs, metrics, tracing
from ..domain import executions, messages
from ..domain.db import transaction
from ..domain.live_output import LiveOutput, live_masker
from ..domain.states import ExecutionStatus
from ..extensions import Platform
from . import preparation, repository
from .runtime import Runtime, Slot

log = logging.getLogger(__name__)
S = ExecutionStatus
Dispatch = Callable[..., None]

RECORD_ATTEMPTS = 5
_TARGETS = {Outcome.SUCCEEDED: S.SUCCEEDED, Outcome.FAILED: S.FAILED, Outcome.CANCELED: S.CANCELED}


def handle_scheduled(
    platform: Platform, runtime: Runtime, dispatch: Dispatch, payload: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Run one EXECUTION_SCHEDULED message; returns the final row, or None if not ours.

    The claim and the reads that prepare the run share one transaction (a database error in
    either leaves the execution `scheduled`: the message is retried or the sweep re-sends it).
    """
    execution_id = int(payload["execution_id"])
    ready: preparation.Prepared | RunResult | None = None
    claimed: dict[str, Any] | None = None
    try:
        with transaction(platform.engine) as conn:
            found = repository.claim(conn, execution_id, runtime.name)
            if found is not None:
                claimed, action, pack = found
                ready = prepare_claimed(conn, platform, claimed, action, pack)
    except BaseException:
        if isinstance(ready, preparation.Prepared):
            ready.cleanup()
        raise
    if claimed is None or ready is None:
        log.debug("execution %s not claimable (taken, canceled or gone)", execution_id,
                  extra={"execution_id": execution_id})
        return None
    with logs.bound(execution_id=execution_id, tenant_id=claimed["tenant_id"],
                    trace_id=claimed["trace_id"]), \
            tracing.span("run", claimed["trace_id"], execution_id=execution_id,
                         action=claimed["action_ref"], worker=runtime.name):
        _publish(dispatch, claimed)
        log.debug("execution %s (%s) started", execution_id, claimed["action_ref"])
        began = time.monotonic()
        with runtime.track(execution_id, claimed.get("action_ref")) as slot:
            result = run_claimed(platform, claimed, ready, slot, dispatch)
        final = record(platform.engine, runtime.name, execution_id, result)
        if final is not None:
            _publish(dispatch, final)
            runner = (ready.runner_type if isinstance(ready, preparation.Prepared)
                      else metrics.UNKNOWN)
            count_run(claimed, final["status"], runner, time.monotonic() - began)
            log.info("execution %s (%s) %s in %s ms", execution_id, claimed["action_ref"],
                     final["status"], (final["result"] or {}).get("duration_ms"))
        return final


def count_run(claimed: Mapping[str, Any], status: str, runner: str, seconds: float) -> None:
    """A run this worker ended, in the metrics (docs/observability.md): from what it already
    holds, so a run costs no statement and no message more."""
    metrics.EXECUTIONS_FINISHED.labels(status, runner).inc()
    metrics.EXECUTION_DURATION.labels(runner).observe(seconds)
    if claimed.get("scheduled_at") is not None and claimed.get("started_at") is not None:
        waited = (claimed["started_at"] - claimed["scheduled_at"]).total_seconds()
        metrics.EXECUTION_QUEUE.observe(max(waited, 0.0))


def prepare_claimed(
    conn: Connection, platform: Platform, row: Mapping[str, Any],
    action: dict[str, Any] | None, pack: dict[str, Any] | None,
) -> preparation.Prepared | RunResult:
    """The run's request, or the failed result of an execution that cannot run here.

    A database error propagates (the caller's transaction, claim included, rolls back).
    """
    try:
        return preparation.prepare(conn, platform.settings, platform.cipher, row, action, pack)
    except preparation.Rejected as exc:
        return RunResult(outcome=Outcome.FAILED, error=error(exc.error_type, exc.message))
    except DBAPIError:
        raise
    except Exception as exc:
        return _worker_error(row, exc, None)


def run_claimed(
    platform: Platform, row: Mapping[str, Any], ready: preparation.Prepared | RunResult,
    slot: Slot, dispatch: Dispatch,
) -> RunResult:
    """Run a prepared request; never raises (a failure of ours becomes a failed result).

    While the run's secrets are known, they are masked in this process's logs, and an error of
    ours is masked before it becomes the execution's result. The lines the action prints are
    published while it runs (`live_output`, unless disabled), all of them before this returns.
    """
    if isinstance(ready, RunResult):
        return ready
    prepared = ready
    with contextlib.ExitStack() as scope:
        scope.callback(prepared.cleanup)
        try:
            scope.enter_context(log_masking.known(prepared.request.secret_values()))
            preparation.use_environment(prepared, platform.settings, platform.engine)
            runner = get_runner(prepared.runner_type)()
            slot.attach(runner)
            request = prepared.request
            if platform.settings.live_output.enabled:
                live = live_output(platform, row, request.secret_values(), dispatch)
                scope.callback(live.close)  # the last lines leave before the final status
                request = dataclasses.replace(request, output_lines=live.lines())
            return runner.run(request)
        except preparation.Rejected as exc:
            return RunResult(outcome=Outcome.FAILED, error=error(exc.error_type, exc.message))
        except Exception as exc:
            return _worker_error(row, exc, prepared)
    raise AssertionError("unreachable")  # every path above returns


def live_output(platform: Platform, row: Mapping[str, Any], secrets: list[Any],
                dispatch: Dispatch) -> LiveOutput:
    """The run's live output, published as EXECUTION_OUTPUT news (transient: messages.NEWS_ONLY)
    for the notifier."""
    execution_id, tenant_id, trace_id = row["id"], row["tenant_id"], row.get("trace_id")

    def publish(stream: str, seq: int, lines: list[str], dropped: int) -> None:
        dispatch(messages.EXECUTION_OUTPUT, {
            "execution_id": execution_id, "tenant_id": tenant_id, "trace_id": trace_id,
            "stream": stream, "seq": seq, "lines": lines, "dropped": dropped,
        }, source=messages.EXECUTIONS)

    return LiveOutput(platform.settings.live_output, live_masker(secrets), publish)


def _worker_error(
    row: Mapping[str, Any], exc: Exception, prepared: preparation.Prepared | None
) -> RunResult:
    """A failure of ours, logged, as the execution's (masked) failed result."""
    log.exception("worker error in execution %s", row["id"], exc_info=exc,
                  extra={"execution_id": row["id"]})
    message = f"{type(exc).__name__}: {exc}"
    if prepared is not None:
        message = prepared.request.masker().text(message)
    return RunResult(outcome=Outcome.FAILED, error=error("worker_error", message))


def decide(current: str, result: RunResult) -> tuple[ExecutionStatus, dict[str, Any]]:
    """The terminal status and stored result for a run that ended while `current`."""
    doc = result.to_result()
    if current == S.CANCELING:
        if doc["error"] is None:
            doc["error"] = error("canceled", "Execution canceled")
        return S.CANCELED, doc
    if result.outcome is Outcome.CANCELED:
        # Stopped while the database still says running: this worker is going away.
        doc["error"] = error("worker_lost", "The worker stopped while the action was running")
        return S.FAILED, doc
    return _TARGETS[result.outcome], doc


def record(
    engine: Engine, worker: str, execution_id: int, result: RunResult
) -> dict[str, Any] | None:
    """running|canceling → terminal with the result; None if it was ended elsewhere.

    Tried first as still `running` (one statement); only when that finds nothing is the
    status read under a row lock, to end a `canceling` run as canceled.
    """
    for attempt in range(1, RECORD_ATTEMPTS + 1):
        try:
            with transaction(engine) as conn:
                final = _finish(conn, worker, execution_id, S.RUNNING, result)
                if final is not None:
                    return final
                current = repository.lock_status(conn, execution_id)
                if current != S.CANCELING:
                    log.info("execution %s already %s; result dropped", execution_id, current,
                             extra={"execution_id": execution_id})
                    return None
                return _finish(conn, worker, execution_id, S.CANCELING, result)
        except DBAPIError:
            if attempt == RECORD_ATTEMPTS:
                raise
            log.warning("recording execution %s failed (attempt %s); retrying", execution_id,
                        attempt, exc_info=True, extra={"execution_id": execution_id})
            time.sleep(0.2 * 2**attempt)
    return None


def _finish(
    conn: Connection, worker: str, execution_id: int, current: ExecutionStatus,
    result: RunResult,
) -> dict[str, Any] | None:
    """The terminal transition of a run that ended while `current`, if it still is."""
    target, doc = decide(current, result)
    return executions.transition(
        conn, execution_id, target, expected=[current],
        actor_type="worker", actor=worker, result=storable(doc),
        details={
            "exit_code": doc["exit_code"],
            "error_type": (doc["error"] or {}).get("type"),
            "duration_ms": doc["duration_ms"],
        },
    )


def storable(value: Any) -> Any:
    """A JSON value PostgreSQL jsonb accepts: no NUL characters, no NaN/Infinity."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {storable(str(k)): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    return storable(str(value))


def _publish(dispatch: Dispatch, row: Mapping[str, Any]) -> None:
    """News after commit; a broker hiccup must not leave the execution half-done."""
    try:
        dispatch(
            messages.EXECUTION_STATUS_CHANGED,
            executions.status_message(row, row.get("previous")),
            source=messages.EXECUTIONS,
        )
    except Exception:
        log.exception("could not publish status of execution %s", row["id"],
                      extra={"execution_id": row["id"]})
