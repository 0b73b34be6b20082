"""The workflow language of packs.md, as pure decisions: parse, what is ready, how it ends.

Nothing here touches the database or the broker. The executor's workflow engine
(nameko_services/executor/workflow.py) feeds these functions the state of a workflow's task
executions and acts on the answers.

Task states seen by the engine: no entry (not started), an execution status, or `skipped`
(its `when` was false). A task is *done* when its execution is terminal or it was skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .retry import DEFAULT_TASK_RETRY, RetryPolicy
from .states import TERMINAL_STATES, ExecutionStatus

S = ExecutionStatus
SKIPPED = "skipped"
ABORT, CONTINUE, RETRY = "abort", "continue", "retry"
FAILED_LIKE = frozenset({S.FAILED.value, S.CANCELED.value})
DONE = frozenset({*(s.value for s in TERMINAL_STATES), SKIPPED})
# Template names reserved by the context; task names cannot shadow them (action_spec checks).
CONTEXT_NAMES = ("params", "execution", "trigger", "datastore", "item", "item_index", "secret",
                 "now")


class WorkflowError(ValueError):
    """The stored workflow block cannot be run (it should have been refused at registration)."""


@dataclass(frozen=True, slots=True)
class Task:
    """One task of a workflow block."""

    name: str
    action: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    with_items: Any = None
    concurrency: int | None = None
    on_failure: str | None = None
    retry: Mapping[str, Any] | None = None
    timeout: float | None = None
    when: str | None = None


@dataclass(frozen=True, slots=True)
class Workflow:
    """A parsed `workflow:` block: tasks in declaration order, the output block, policies."""

    tasks: tuple[Task, ...]
    output: Any = None
    timeout: float | None = None
    on_failure: str = ABORT

    def task(self, name: str) -> Task:
        for task in self.tasks:
            if task.name == name:
                return task
        raise WorkflowError(f"no task named {name!r}")

    def policy(self, task: Task) -> str:
        """The task's failure policy: its own `on_failure`, else the workflow's (default abort)."""
        return task.on_failure or self.on_failure or ABORT


def parse(block: Any) -> Workflow:
    """The stored block → Workflow; raises WorkflowError for a shape it cannot run."""
    if not isinstance(block, Mapping) or not isinstance(block.get("tasks"), list):
        raise WorkflowError("workflow needs a list of tasks")
    tasks = []
    for index, raw in enumerate(block["tasks"]):
        if not isinstance(raw, Mapping) or not raw.get("name") or not raw.get("action"):
            raise WorkflowError(f"task {index} needs a name and an action")
        deps = raw.get("depends_on") or []
        deps = [deps] if isinstance(deps, str) else list(deps)
        tasks.append(Task(
            name=str(raw["name"]),
            action=str(raw["action"]),
            parameters=dict(raw.get("parameters") or {}),
            depends_on=tuple(str(d) for d in deps),
            with_items=raw.get("with_items"),
            concurrency=raw.get("concurrency"),
            on_failure=raw.get("on_failure"),
            retry=raw.get("retry"),
            timeout=raw.get("timeout"),
            when=raw.get("when"),
        ))
    names = {t.name for t in tasks}
    if len(names) != len(tasks):
        raise WorkflowError("task names must be unique")
    for task in tasks:
        unknown = [d for d in task.depends_on if d not in names]
        if unknown:
            raise WorkflowError(f"task {task.name!r} depends on unknown task(s) {unknown}")
    return Workflow(
        tasks=tuple(tasks),
        output=block.get("output"),
        timeout=block.get("timeout"),
        on_failure=block.get("on_failure") or ABORT,
    )


def ready(workflow: Workflow, states: Mapping[str, str]) -> list[Task]:
    """Tasks not started whose dependencies are all done, in declaration order.

    A failed dependency counts as done: whether its dependents may run is the failure
    policy's business (`blocking_failure` stops everything first under abort).
    """
    return [
        task for task in workflow.tasks
        if task.name not in states and all(states.get(d) in DONE for d in task.depends_on)
    ]


def blocking_failure(workflow: Workflow, states: Mapping[str, str]) -> Task | None:
    """The first failed (or canceled) task whose policy is not `continue`: the workflow aborts."""
    for task in workflow.tasks:
        if states.get(task.name) in FAILED_LIKE and workflow.policy(task) != CONTINUE:
            return task
    return None


def all_done(workflow: Workflow, states: Mapping[str, str]) -> bool:
    return all(states.get(task.name) in DONE for task in workflow.tasks)


def final_status(workflow: Workflow, states: Mapping[str, str]) -> ExecutionStatus:
    """How a workflow whose tasks are all done ends: failures under continue leave their mark."""
    failed = [t.name for t in workflow.tasks if states.get(t.name) in FAILED_LIKE]
    return S.SUCCEEDED_WITH_ERRORS if failed else S.SUCCEEDED


def failed_tasks(workflow: Workflow, states: Mapping[str, str]) -> list[str]:
    return [t.name for t in workflow.tasks if states.get(t.name) in FAILED_LIKE]


def retry_policy(workflow: Workflow, task: Task,
                 action_retry: Mapping[str, Any] | None) -> RetryPolicy | None:
    """The attempts policy of a task: its `retry:`, else the action's, else (only under
    `on_failure: retry`) DEFAULT_TASK_RETRY. None: one attempt."""
    if task.retry:
        return RetryPolicy.from_mapping(task.retry)
    if action_retry and int(action_retry.get("max_attempts", 1)) > 1:
        return RetryPolicy.from_mapping(action_retry)
    if workflow.policy(task) == RETRY:
        return DEFAULT_TASK_RETRY
    return None


@dataclass(frozen=True, slots=True)
class TaskView:
    """What templates see of a task: `<task>.result`, `.status`, `.error`, `.execution_id`."""

    status: str
    result: Any = None
    error: Any = None
    execution_id: int | None = None

    def to_context(self) -> dict[str, Any]:
        return {"result": self.result, "status": self.status, "error": self.error,
                "execution_id": self.execution_id}


def context(
    *,
    params: Mapping[str, Any],
    execution_id: int,
    trigger_data: Any,
    tasks: Mapping[str, TaskView],
    datastore: Any,
    now: Any = None,
) -> dict[str, Any]:
    """The template context of packs.md; tasks first so reserved names always win."""
    ctx: dict[str, Any] = {name: view.to_context() for name, view in tasks.items()}
    ctx.setdefault("event", {"data": trigger_data})  # alias some authors expect
    ctx.update({
        "params": params,
        "execution": {"params": params, "id": execution_id},
        "trigger": {"data": trigger_data},
        "datastore": datastore,
        "now": now,
    })
    return ctx


def default_output(tasks: Mapping[str, TaskView]) -> dict[str, Any]:
    """Without an `output` block: every task's result by name (skipped tasks give null)."""
    return {name: view.result for name, view in tasks.items()}
