"""Fixtures for workflow / retry / inquiry tests: a real executor and a real worker container.

Actions are inline python (`code`), so the worker runs real processes; `flow.run(...)` asks for
an execution as the gateway does, and `flow.wait(...)` polls the database with a deadline.
"""

from __future__ import annotations

import copy
import textwrap
from collections.abc import Callable
from typing import Any

import pytest
from nameko.testing.services import entrypoint_waiter
from sqlalchemy import select

from nameko_services import green
from nameko_services.domain import executions, messages, models
from nameko_services.executor.service import ExecutorService
from nameko_services.worker.service import WorkerService
from tests.integration import rows

pytestmark = pytest.mark.integration

TERMINAL = ("succeeded", "succeeded_with_errors", "failed", "canceled")


class Flow:
    """What a test does to the platform: define actions, run them, read the results."""

    def __init__(self, engine: Any, tenant: int, dispatch: Callable[..., None],
                 received: list) -> None:
        self.engine, self.tenant, self.dispatch, self.received = engine, tenant, dispatch, received
        self.pack = rows.make_pack(engine, tenant)

    def action(self, name: str | None = None, **values: Any) -> dict[str, Any]:
        """An action in this test's pack; `code` is dedented python."""
        name = name or rows.unique("act")
        if values.get("code"):
            values["code"] = textwrap.dedent(values["code"]).lstrip()
        defaults: dict[str, Any] = {"runner_type": "python", "parameters": {}}
        return rows.insert_row(self.engine, models.actions, tenant_id=self.tenant,
                               pack_id=self.pack["id"], name=name,
                               ref=f"{self.pack['ref']}.{name}", **{**defaults, **values})

    def workflow(self, tasks: list[dict[str, Any]], **block: Any) -> dict[str, Any]:
        params = block.pop("parameters", {})
        return self.action(runner_type="workflow", code=None, parameters=params,
                           workflow={"tasks": tasks, **block})

    def run(self, action: dict[str, Any], parameters: dict[str, Any] | None = None
            ) -> dict[str, Any]:
        """Create a requested execution and hand it to the executor (as the gateway does)."""
        with self.engine.begin() as conn:
            row = executions.create(conn, tenant_id=self.tenant, action=action,
                                    parameters=parameters or {}, actor_type="user",
                                    actor="test")
        self.dispatch(messages.GATEWAY, messages.EXECUTION_REQUESTED,
                      {"execution_id": row["id"], "tenant_id": self.tenant})
        return row

    def get(self, execution_id: int) -> dict[str, Any]:
        return rows.rows(self.engine, models.executions,
                         models.executions.c.id == execution_id)[0]

    def wait(self, execution_id: int, statuses: tuple[str, ...] | str = TERMINAL,
             deadline: float = 60.0) -> dict[str, Any]:
        wanted = (statuses,) if isinstance(statuses, str) else statuses
        return rows.wait_until(
            lambda: (row := self.get(execution_id))["status"] in wanted and row, deadline)

    def children(self, parent_id: int) -> list[dict[str, Any]]:
        return rows.rows(self.engine, models.executions,
                         models.executions.c.parent_execution_id == parent_id)

    def tasks(self, parent_id: int) -> dict[str, dict[str, Any]]:
        """The newest child execution of each task, by task name."""
        return {c["task_name"]: c for c in self.children(parent_id)}

    def audit(self, execution_id: int) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            found = conn.execute(
                select(models.audit_log).where(
                    models.audit_log.c.entity_type == "execution",
                    models.audit_log.c.entity_id == str(execution_id))
                .order_by(models.audit_log.c.id)).mappings()
            return [dict(r) for r in found]

    def news(self, event_type: str) -> list[dict[str, Any]]:
        return [p for _, t, p in list(self.received) if t == event_type]


@pytest.fixture
def received():
    return []


@pytest.fixture
def worker_config(config):
    cfg = copy.deepcopy(config)
    cfg["max_workers"] = 12
    cfg["ATTUNE"]["worker"] = {**cfg["ATTUNE"]["worker"], "cancel_grace_seconds": 2,
                               "default_timeout_seconds": 30}
    return cfg


@pytest.fixture
def start_executor(container_factory, config):
    """Start (another) executor container; returns it once its start-up resume finished."""

    def start() -> Any:
        container = container_factory(ExecutorService, config)
        with entrypoint_waiter(container, "resume", timeout=60):
            container.start()
        return container

    return start


@pytest.fixture
def platform(tenant, container_factory, config, worker_config, received, start_executor):
    """A listener for the executor's and the executions' news, a worker, then an executor."""
    subscriptions = [
        (messages.EXECUTIONS, messages.EXECUTION_STATUS_CHANGED),
        (messages.EXECUTOR, messages.INQUIRY_CREATED),
        (messages.EXECUTOR, messages.INQUIRY_RESPONDED),
        (messages.EXECUTOR, messages.INQUIRY_EXPIRED),
        (messages.EXECUTOR, messages.EVENT_CREATED),
    ]
    container_factory(rows.listener(subscriptions, received), config).start()
    container_factory(WorkerService, worker_config).start()
    return {"executor": start_executor()}


@pytest.fixture
def flow(platform, engine, tenant, config, received) -> Flow:
    return Flow(engine, tenant, green.Publisher(config), received)
