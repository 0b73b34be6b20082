"""e2e helpers for workflows, retries and inquiries (HTTP only)."""

from __future__ import annotations

from typing import Any

from tests.support.e2e import ApiClient, wait_for_execution, wait_until
from tests.support.flows import list_all


def ensure_pack(api: ApiClient, pack: str) -> None:
    created = api.post("/api/v1/packs", json={"ref": pack, "version": "1.0.0"})
    assert created.status_code in (201, 409), created.text


def make_workflow(api: ApiClient, pack: str, name: str, tasks: list[dict[str, Any]],
                  parameters: dict[str, Any] | None = None, **block: Any) -> dict[str, Any]:
    """A `runner_type: workflow` action created through the API."""
    ensure_pack(api, pack)
    body = {"pack": pack, "name": name, "runner_type": "workflow",
            "parameters": parameters or {}, "workflow": {"tasks": tasks, **block}}
    return api.data(api.post("/api/v1/actions", json=body), 201)


def execute(api: ApiClient, action: str, parameters: dict[str, Any] | None = None
            ) -> dict[str, Any]:
    """POST /api/v1/executions; returns the created execution."""
    return api.data(api.post("/api/v1/executions",
                             json={"action": action, "parameters": parameters or {}}), 201)


def run_to_end(api: ApiClient, action: str, parameters: dict[str, Any] | None = None,
               timeout: float = 60.0) -> dict[str, Any]:
    """Execute and wait for a terminal status."""
    return wait_for_execution(api, execute(api, action, parameters)["id"], timeout=timeout)


def children(api: ApiClient, parent_id: int) -> list[dict[str, Any]]:
    """Child executions, oldest first."""
    return sorted(list_all(api, "/api/v1/executions", parent_execution_id=parent_id),
                  key=lambda e: e["id"])


def tasks(api: ApiClient, workflow_id: int) -> dict[str, dict[str, Any]]:
    """The newest execution of each task of a workflow, by task name."""
    return {c["task_name"]: c for c in children(api, workflow_id)}


def wait_for_task(api: ApiClient, workflow_id: int, name: str,
                  statuses: tuple[str, ...] = ("running", "paused"),
                  timeout: float = 60.0) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        task = tasks(api, workflow_id).get(name)
        return task if task is not None and task["status"] in statuses else None

    return wait_until(reached, timeout, message=f"task {name} of workflow {workflow_id} "
                                               f"to reach {statuses}")


def inquiry_for(api: ApiClient, execution_id: int, timeout: float = 30.0) -> dict[str, Any]:
    """The inquiry created by an execution (waits until it exists)."""
    def found() -> dict[str, Any] | None:
        matches = [i for i in list_all(api, "/api/v1/inquiries")
                   if i["execution_id"] == execution_id]
        return matches[0] if matches else None

    return wait_until(found, timeout, message=f"the inquiry of execution {execution_id}")


def respond(api: ApiClient, inquiry_id: int, response: Any, status: int = 200) -> Any:
    r = api.post(f"/api/v1/inquiries/{inquiry_id}/respond", json={"response": response})
    assert r.status_code == status, r.text
    return r.json()


def audit(api: ApiClient, execution_id: int) -> list[dict[str, Any]]:
    return list_all(api, "/api/v1/audit", entity_type="execution", entity_id=execution_id)
