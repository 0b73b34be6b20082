"""The workflow engine (`runner_type: workflow`): tasks as child executions, in dependency order.

The workflow execution never reaches a worker: requested → running with
`state = {"workflow": {"spec", "skipped", "abort"}}` (the block is snapshotted, so editing the
action does not change a run in flight). Each task is a child execution (`task_name`) created
only once its dependencies are done, with its parameters rendered from what they produced.
Every step runs under the workflow's row lock (parents.refresh), re-reading the children from
the database, so duplicated news or several executors cannot start a task twice.

A task whose action is itself a workflow nests; one with `with_items` is a with-items parent
(the with-items engine, started with the rendered items); one with a retry policy is a retry
parent (retry.py). The workflow is
`paused` while its only unfinished children are paused (inquiries), `running` otherwise.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from ..domain import actions as actions_repo
from ..domain import datastore, executions, messages, rules, templating, workflows
from ..domain import secrets as secrets_repo
from ..domain.crypto import Cipher
from ..domain.states import ACTIVE_STATES, TERMINAL_STATES, ExecutionStatus
from ..domain.workflows import SKIPPED, TaskView, Workflow, WorkflowError
from . import engines, lifecycle, parents, repository, scheduling, timers
from .news import Outgoing, created, status_changed

S = ExecutionStatus
STATE_KEY = engines.WORKFLOW
MAX_DEPTH = 32
BUSY = frozenset({S.REQUESTED, S.SCHEDULED, S.RUNNING})
ACTOR = {"actor_type": "service", "actor": "executor"}


def start(
    conn: Connection, cipher: Cipher, row: Mapping[str, Any], action: Mapping[str, Any]
) -> list[Outgoing]:
    """requested → running, arm the workflow timeout, start the tasks without dependencies."""
    block = action.get("workflow")
    try:
        spec = workflows.parse(block)
    except WorkflowError as exc:
        return lifecycle.fail(conn, row, "invalid_workflow", f"Workflow {action['ref']}: {exc}")
    if repository.depth(conn, row["id"], MAX_DEPTH + 1) > MAX_DEPTH:
        return lifecycle.fail(conn, row, "invalid_workflow",
                              f"Workflows nest deeper than {MAX_DEPTH} levels "
                              f"(does {action['ref']} call itself?)")
    state = {STATE_KEY: {"spec": block, "skipped": [], "abort": None}}
    running = lifecycle.to_running(conn, row, state)
    if running is None:
        return []
    out = [status_changed(running)]
    timeout = row.get("timeout_seconds") or spec.timeout
    if timeout:
        out += timers.schedule(conn, kind=timers.WORKFLOW_TIMEOUT, entity_id=running["id"],
                               tenant_id=running["tenant_id"], delay_seconds=float(timeout),
                               payload={"timeout": timeout})
    return out + advance(conn, cipher, running)


def on_timeout(conn: Connection, cipher: Cipher, timer: Mapping[str, Any]) -> list[Outgoing]:
    """The whole-workflow timeout is over: abort (cancel what runs), then fail as `timeout`."""
    wf = repository.lock_execution(conn, timer["tenant_id"], timer["entity_id"])
    if wf is None or wf["status"] not in (S.RUNNING, S.PAUSED):
        return []
    wstate = (wf["state"] or {}).get(STATE_KEY)
    if wstate is None or wstate.get("abort"):
        return []
    timeout = timer["payload"].get("timeout")
    wstate = {**wstate, "abort": {"type": "timeout",
                                  "message": f"Workflow timed out after {timeout:g} s"}}
    wf = _save(conn, wf, wstate)
    return advance(conn, cipher, wf)


def advance(conn: Connection, cipher: Cipher, wf: Mapping[str, Any]) -> list[Outgoing]:
    """One step of a locked workflow: abort, start ready tasks, pause/resume, or finish."""
    wstate = (wf.get("state") or {}).get(STATE_KEY)
    if wstate is None or wf["status"] not in (S.RUNNING, S.PAUSED, S.CANCELING):
        return []
    spec = _spec(wf, wstate["spec"])
    if wf["status"] == S.CANCELING:
        out = parents.cancel_children(conn, cipher, wf, f"Canceled with workflow {wf['id']}")
        if not parents.unfinished(conn, wf):
            out += _finish_canceled(conn, wf, spec)
        return out
    out: list[Outgoing] = []
    for _ in range(len(spec.tasks) + 1):  # each round settles at least one task, or stops
        latest = _latest(repository.children_summary(conn, wf["tenant_id"], wf["id"]))
        states = {name: row["status"] for name, row in latest.items()}
        states.update(dict.fromkeys(wstate["skipped"], SKIPPED))
        if wstate.get("abort") is None:
            failing = workflows.blocking_failure(spec, states)
            if failing is not None:
                wstate = {**wstate, "abort": _task_failure(failing.name, latest[failing.name])}
                wf = _save(conn, wf, wstate)
        if wstate.get("abort") is not None:
            out += parents.cancel_children(conn, cipher, wf, wstate["abort"]["message"])
            if parents.unfinished(conn, wf):
                return out + _follow_children(conn, wf)
            return out + _finish(conn, cipher, wf, spec, wstate)
        if workflows.all_done(spec, states):
            return out + _finish(conn, cipher, wf, spec, wstate)
        ready = workflows.ready(spec, states)
        if not ready:
            break
        if wf["status"] == S.PAUSED:  # an answer came: resume visibly, then maybe pause again
            resumed = executions.transition(conn, wf["id"], S.RUNNING, expected=[S.PAUSED],
                                            details={"starting": [t.name for t in ready]},
                                            **ACTOR)
            if resumed is None:
                return out
            out.append(status_changed(resumed))
            wf = resumed
        ctx = _context(conn, cipher, wf, spec, latest, wstate)
        settled = busy = False
        for task in ready:
            step, status = _start_task(conn, cipher, wf, spec, task, ctx)
            if status == SKIPPED:
                wstate = {**wstate, "skipped": [*wstate["skipped"], task.name]}
                wf = _save(conn, wf, wstate)
            out += step
            settled = settled or status == SKIPPED or status in TERMINAL_STATES
            busy = busy or status in BUSY
        if not settled:
            if busy and wf["status"] == S.RUNNING:  # a task is under way: nothing to follow
                return out
            break
    return out + _follow_children(conn, wf)


_SPECS: OrderedDict[tuple[int, Any], Workflow] = OrderedDict()
SPEC_CACHE_SIZE = 512


def _spec(wf: Mapping[str, Any], block: Any) -> Workflow:
    """The parsed block of a run, cached per execution (the snapshot never changes)."""
    key = (wf["id"], wf.get("created_at"))
    spec = _SPECS.get(key)
    if spec is None:
        spec = _SPECS[key] = workflows.parse(block)
        while len(_SPECS) > SPEC_CACHE_SIZE:
            _SPECS.popitem(last=False)
    return spec


def _latest(children: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The newest child execution of each task."""
    latest: dict[str, dict[str, Any]] = {}
    for child in children:  # oldest first
        if child["task_name"] is not None:
            latest[child["task_name"]] = child
    return latest


def _save(conn: Connection, wf: Mapping[str, Any], wstate: dict[str, Any]) -> dict[str, Any]:
    state = {**(wf.get("state") or {}), STATE_KEY: wstate}
    repository.set_state(conn, wf["id"], state)
    return {**wf, "state": state}


def _task_failure(name: str, child: Mapping[str, Any]) -> dict[str, Any]:
    """The workflow's error when task `name` failed under abort: its error type, named."""
    error = child.get("error") or {}
    reason = error.get("message") or f"ended {child['status']}"
    return {"type": error.get("type") or "task_failed",
            "message": f"Task '{name}' failed: {reason}",
            "task": name, "task_execution_id": child["id"]}


def _views(spec: Workflow, latest: Mapping[str, Mapping[str, Any]],
           wstate: Mapping[str, Any]) -> dict[str, TaskView]:
    views: dict[str, TaskView] = {}
    for task in spec.tasks:
        if task.name in wstate["skipped"]:
            views[task.name] = TaskView(status=SKIPPED)
        elif (row := latest.get(task.name)) is not None:
            views[task.name] = TaskView(status=row["status"], result=row["output"],
                                        error=row["error"], execution_id=row["id"])
    return views


def _context(conn: Connection, cipher: Cipher, wf: Mapping[str, Any], spec: Workflow,
             latest: Mapping[str, Mapping[str, Any]], wstate: Mapping[str, Any]
             ) -> dict[str, Any]:
    tenant_id = wf["tenant_id"]
    return workflows.context(
        params=dict(wf["parameters"] or {}),
        execution_id=wf["id"],
        trigger_data=wf["trigger_data"],
        tasks=_views(spec, latest, wstate),
        datastore=templating.DatastoreView(lambda: datastore.get_all(conn, cipher, tenant_id)),
        now=datetime.now(UTC),
    )


def _with_secrets(conn: Connection, cipher: Cipher, tenant_id: int, action: Mapping[str, Any],
                  task: workflows.Task, ctx: dict[str, Any]) -> dict[str, Any]:
    """`secret.<name>` only for actions that declare the secret, and only if a template asks."""
    declared = action.get("secrets") or []
    if not declared or "secret" not in json.dumps(task.parameters, default=str):
        return ctx
    return {**ctx, "secret": secrets_repo.get_values(conn, cipher, tenant_id, declared)}


def _start_task(
    conn: Connection, cipher: Cipher, wf: Mapping[str, Any], spec: Workflow,
    task: workflows.Task, ctx: dict[str, Any],
) -> tuple[list[Outgoing], str | None]:
    """Create (and plan) a task's execution; returns the news and the status it reached in
    this transaction (SKIPPED when its `when` was false)."""
    if task.when is not None:
        try:
            if not templating.evaluate(str(task.when), ctx):
                return [], SKIPPED
        except templating.TemplateError as exc:
            return _failed_task(conn, wf, task, None, "template", f"Task '{task.name}': {exc}")
    action = actions_repo.find(conn, wf["tenant_id"], task.action)
    if action is None:
        return _failed_task(conn, wf, task, None, "action_missing",
                            f"Task '{task.name}': action {task.action} not found")
    ctx = _with_secrets(conn, cipher, wf["tenant_id"], action, task, ctx)
    policy = workflows.retry_policy(spec, task, action.get("retry"))
    links: dict[str, Any] = {"max_attempts": policy.max_attempts if policy else 1,
                             "timeout_seconds": task.timeout}
    if policy is not None and policy.max_attempts > 1:
        links["state"] = {engines.RETRY_POLICY_KEY: policy.to_dict()}
    try:
        if task.with_items is not None:
            out = _start_with_items(conn, cipher, wf, task, action, ctx, links)
        else:
            parameters = rules.render_parameters(task.parameters, ctx)
            child = executions.create(
                conn, tenant_id=wf["tenant_id"], action=action, parameters=parameters,
                actor_type="service", actor="executor", parent_execution_id=wf["id"],
                task_name=task.name, trigger_data=wf["trigger_data"], trace_id=wf["trace_id"],
                **links,
            )
            out = [created(child), *scheduling.plan(conn, child, cipher, action)]
    except templating.TemplateError as exc:
        return _failed_task(conn, wf, task, action, "template", f"Task '{task.name}': {exc}")
    return out, _reached(out)


def _start_with_items(
    conn: Connection, cipher: Cipher, wf: Mapping[str, Any], task: workflows.Task,
    action: Mapping[str, Any], ctx: dict[str, Any], links: dict[str, Any],
) -> list[Outgoing]:
    """The task row is a with-items parent; each item is a child with its own parameters."""
    items = templating.render(task.with_items, ctx)
    if not isinstance(items, list):
        raise templating.TemplateError(
            str(task.with_items), f"with_items must render to a list, got {type(items).__name__}")
    wants_item = "item" in (action.get("parameters") or {}) or not task.parameters
    children = []
    for index, item in enumerate(items):
        parameters = rules.render_parameters(
            task.parameters, {**ctx, "item": item, "item_index": index})
        if wants_item:
            parameters.setdefault("item", item)
        children.append((parameters, item))
    row = executions.create(
        conn, tenant_id=wf["tenant_id"], action={**action, "parameters": {}},
        parameters={}, actor_type="service", actor="executor", parent_execution_id=wf["id"],
        task_name=task.name, trigger_data=wf["trigger_data"], max_attempts=1,
        trace_id=wf["trace_id"],
    )
    fan_out = engines.get(engines.WITH_ITEMS).start
    return [created(row), *fan_out(conn, cipher, row, action, children=children,
                                   concurrency=task.concurrency, **links)]


def _failed_task(
    conn: Connection, wf: Mapping[str, Any], task: workflows.Task,
    action: Mapping[str, Any] | None, error_type: str, message: str,
) -> tuple[list[Outgoing], str | None]:
    """A task that fails before it can run still gets its execution row, failed, with why."""
    stub = {"id": action["id"] if action else None, "ref": task.action, "parameters": {}}
    row = executions.create(
        conn, tenant_id=wf["tenant_id"], action=stub, parameters={}, actor_type="service",
        actor="executor", parent_execution_id=wf["id"], task_name=task.name,
        trigger_data=wf["trigger_data"], max_attempts=1, trace_id=wf["trace_id"],
    )
    out = [created(row), *lifecycle.fail(conn, row, error_type, message, task=task.name)]
    return out, S.FAILED.value


def _reached(out: list[Outgoing]) -> str | None:
    """The status the first created execution reached in this transaction."""
    first = next((o for o in out if o.event_type == messages.EXECUTION_CREATED), None)
    if first is None:
        return None
    child_id = first.payload["execution_id"]
    final = None
    for item in out:
        if (item.event_type in (messages.EXECUTION_CREATED, messages.EXECUTION_STATUS_CHANGED)
                and item.payload["execution_id"] == child_id):
            final = item.payload["status"]
    return final


def _follow_children(conn: Connection, wf: Mapping[str, Any]) -> list[Outgoing]:
    """`paused` while every unfinished task waits on a person; `running` otherwise."""
    counts = repository.children_status_counts(conn, wf["tenant_id"], wf["id"])
    paused = counts.get(S.PAUSED, 0)
    busy = sum(n for status, n in counts.items() if status in ACTIVE_STATES) - paused
    if wf["status"] == S.RUNNING and paused and not busy:
        target = S.PAUSED
    elif wf["status"] == S.PAUSED and (busy or not paused):
        target = S.RUNNING
    else:
        return []
    moved = executions.transition(conn, wf["id"], target, expected=[S(wf["status"])],
                                  details={"paused_tasks": paused}, **ACTOR)
    return [status_changed(moved)] if moved is not None else []


def _finish(conn: Connection, cipher: Cipher, wf: Mapping[str, Any], spec: Workflow,
            wstate: Mapping[str, Any]) -> list[Outgoing]:
    """Every task is done (or the workflow aborted and nothing runs): end it."""
    timers.cancel(conn, timers.WORKFLOW_TIMEOUT, wf["id"])
    latest = _latest(repository.children_summary(conn, wf["tenant_id"], wf["id"]))
    views = _views(spec, latest, wstate)
    states = {name: view.status for name, view in views.items()}
    extra = {"duration_ms": _duration_ms(wf), "tasks": states}
    out: list[Outgoing] = []
    if wf["status"] == S.PAUSED:  # e.g. timed out waiting on an inquiry
        resumed = executions.transition(conn, wf["id"], S.RUNNING, expected=[S.PAUSED], **ACTOR)
        if resumed is None:
            return []
        out.append(status_changed(resumed))
        wf = resumed
    abort = wstate.get("abort")
    if abort is not None:
        fields = {k: v for k, v in abort.items() if k not in ("type", "message")}
        return out + lifecycle.fail(
            conn, wf, abort["type"], abort["message"], expected=[S.RUNNING],
            result_fields={"output": workflows.default_output(views), **extra}, **fields)
    try:
        output = (workflows.default_output(views) if spec.output is None else
                  rules.render_parameters(
                      {"output": spec.output},
                      _context(conn, cipher, wf, spec, latest, wstate))["output"])
    except templating.TemplateError as exc:
        return out + lifecycle.fail(conn, wf, "template", f"Workflow output: {exc}",
                                    expected=[S.RUNNING], result_fields=extra)
    result = {**executions.empty_result(), "output": output, **extra}
    status = workflows.final_status(spec, states)
    if status is S.SUCCEEDED_WITH_ERRORS:
        failed = workflows.failed_tasks(spec, states)
        result["error"] = {"type": "task_failed", "tasks": failed,
                           "message": f"Task(s) {', '.join(failed)} failed; the workflow "
                                      "continued (on_failure: continue)"}
    moved = executions.transition(conn, wf["id"], status, expected=[S.RUNNING],
                                  result=result, **ACTOR)
    return out + ([status_changed(moved)] if moved is not None else [])


def _finish_canceled(conn: Connection, wf: Mapping[str, Any], spec: Workflow
                     ) -> list[Outgoing]:
    timers.cancel(conn, timers.WORKFLOW_TIMEOUT, wf["id"])
    wstate = wf["state"][STATE_KEY]
    latest = _latest(repository.children_summary(conn, wf["tenant_id"], wf["id"]))
    views = _views(spec, latest, wstate)
    result = executions.error_result(
        "canceled", "Canceled; its unfinished tasks were canceled",
        output=workflows.default_output(views), duration_ms=_duration_ms(wf),
        tasks={name: view.status for name, view in views.items()},
    )
    return lifecycle.canceled(conn, wf, result)


def _duration_ms(wf: Mapping[str, Any]) -> int | None:
    started = wf.get("started_at")
    if started is None:
        return None
    return int((datetime.now(UTC) - started).total_seconds() * 1000)


ENGINE = engines.Engine(
    kind=STATE_KEY,
    claims=lambda row, action: action["runner_type"] == "workflow",
    start=start,
    advance=advance,
)
