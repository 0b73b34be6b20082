"""Executions: request, list, get, rerun, cancel (api.md "Executions")."""

from __future__ import annotations

import time

from flask import Blueprint, request

from nameko_services import tracing
from nameko_services.domain import execution_control, executions, listings, messages
from nameko_services.domain.db import transaction
from nameko_services.domain.errors import BadRequestError
from nameko_services.domain.states import TERMINAL_STATES, ExecutionStatus

from .. import request_log
from ..app import ctx
from ..auth import permission, principal
from ..definitions import REF_OR_ID
from ..http import accepts, int_arg, json_body, one, page, page_args, path_id
from ..query_args import created_range, json_object_arg, text_arg, trace_id_arg
from ..waiters import wait_seconds
from .openapi import (
    BACKLOG_FULL,
    TRACE_ID,
    TRACE_ID_SCHEMA,
    WAIT,
    query_parameter,
    responds,
    returns,
)

bp = Blueprint("executions", __name__)

MAX_ID = 2**63 - 1
_STATUSES = frozenset(s.value for s in ExecutionStatus)


def _publish(outcome: execution_control.Outcome, span_id: str | None = None) -> None:
    """The outcome's news; its work message names `span_id` as the next span's parent."""
    for source, event_type, payload in outcome.messages:
        if event_type in messages.PRIORITISED:
            payload = tracing.linked(payload, span_id)
        ctx().publish(source, event_type, payload)


def _statuses() -> tuple[str, ...] | None:
    raw = request.args.get("status")
    if not raw:
        return None
    wanted = tuple(s.strip() for s in raw.split(","))
    unknown = [s for s in wanted if s not in _STATUSES]
    if unknown:
        raise BadRequestError(f"Unknown status {unknown[0]!r}",
                              {"fields": {"status": f"one of {sorted(_STATUSES)}"}})
    return wanted


def _top_level() -> bool | None:
    raw = request.args.get("top_level")
    if raw in (None, ""):
        return None
    if raw.lower() not in ("true", "false", "1", "0"):
        raise BadRequestError("Query parameter 'top_level' must be true or false",
                              {"fields": {"top_level": "must be true or false"}})
    return raw.lower() in ("true", "1")


@bp.post("/api/v1/executions")
@permission("execute")
@responds(503, BACKLOG_FULL)
@query_parameter("wait", WAIT)
@accepts({"action": REF_OR_ID,
          "parameters": {"type": "object", "additionalProperties": True}}, {"action"})
@returns("Execution")
def create_execution():
    """Run an action (ref or id); invalid parameters fail the execution at once.

    201 with the new execution; with `?wait=S`, 200 with the execution once it has ended
    (succeeded, failed, ...) within S seconds, else 202 with it as it is then (it runs on).
    """
    started = time.monotonic()
    body = json_body()
    wait = wait_seconds(ctx().settings.api.max_wait_seconds)
    who = principal()
    ctx().backlog.admit(who.tenant_id)
    with ctx().waiters.slot() as slot:
        if wait is not None:
            slot.reserve(who.tenant_id)
        with request_log.span("receive", action=str(body["action"])) as span_id:
            with transaction(ctx().engine) as conn:
                outcome = execution_control.request(
                    conn, tenant_id=who.tenant_id, action=body["action"],
                    parameters=body.get("parameters"), actor=who.actor,
                    trace_id=request_log.trace_id(),
                )
                if wait is not None:  # before the commit: its news cannot pass unheard
                    slot.watch_execution(outcome.execution["id"])
            _publish(outcome, span_id)
        if wait is None:
            return one(executions.to_api(outcome.execution), 201)
        row, ended = slot.wait_for(
            lambda: _read(who.tenant_id, outcome.execution["id"]),
            lambda row: row["status"] in TERMINAL_STATES, started + wait)
    return one(executions.to_api(row), 200 if ended else 202)


def _read(tenant_id: int, execution_id: int) -> dict:
    with transaction(ctx().engine) as conn:
        return executions.get(conn, tenant_id, execution_id)


@bp.get("/api/v1/executions")
@permission("read")
@query_parameter("trace_id", TRACE_ID, TRACE_ID_SCHEMA)
@returns("Execution", many=True)
def list_executions():
    """List executions, newest first, filtered by status, action, pack, trigger, parent, rule,
    time (`since`, `until`), contents (`parameters`, `result`: JSON objects they contain) and
    trace (`trace_id`: every execution a webhook or API call caused)."""
    limit, offset = page_args()
    filters = listings.ExecutionFilter(
        statuses=_statuses(),
        action_ref=text_arg("action"),
        pack=text_arg("pack", 200),
        trigger=text_arg("trigger"),
        created=created_range(),
        parameters=json_object_arg("parameters"),
        result=json_object_arg("result"),
        parent_execution_id=int_arg("parent_execution_id", minimum=1, maximum=MAX_ID),
        rule_id=int_arg("rule_id", minimum=1, maximum=MAX_ID),
        enforcement_id=int_arg("enforcement_id", minimum=1, maximum=MAX_ID),
        event_id=int_arg("event_id", minimum=1, maximum=MAX_ID),
        trace_id=trace_id_arg(),
        top_level=_top_level(),
        max_id=int_arg("max_id", minimum=1, maximum=MAX_ID),
    )
    with transaction(ctx().engine) as conn:
        items, total = listings.list_executions(conn, principal().tenant_id, filters,
                                                limit=limit, offset=offset)
    return page(items, total, limit, offset)


@bp.get("/api/v1/executions/<execution_id>")
@permission("read")
@returns("Execution")
def get_execution(execution_id: str):
    """One execution with its result."""
    eid = path_id(execution_id, "Execution")
    with transaction(ctx().engine) as conn:
        return one(executions.to_api(executions.get(conn, principal().tenant_id, eid)))


@bp.post("/api/v1/executions/<execution_id>/rerun")
@permission("execute")
@responds(503, BACKLOG_FULL)
@returns("Execution")
def rerun_execution(execution_id: str):
    """Run the same action again with the same parameters."""
    eid = path_id(execution_id, "Execution")
    who = principal()
    ctx().backlog.admit(who.tenant_id)
    with transaction(ctx().engine) as conn:
        outcome = execution_control.rerun(conn, tenant_id=who.tenant_id, execution_id=eid,
                                          actor=who.actor, trace_id=request_log.trace_id())
    _publish(outcome)
    return one(executions.to_api(outcome.execution), 201)


@bp.post("/api/v1/executions/<execution_id>/cancel")
@permission("execute")
@returns("Execution")
def cancel_execution(execution_id: str):
    """Cancel: at once if not yet running, else via the worker (202)."""
    eid = path_id(execution_id, "Execution")
    who = principal()
    with transaction(ctx().engine) as conn:
        outcome = execution_control.cancel(conn, tenant_id=who.tenant_id, execution_id=eid,
                                           actor=who.actor)
    _publish(outcome)
    return one(executions.to_api(outcome.execution), 202)
