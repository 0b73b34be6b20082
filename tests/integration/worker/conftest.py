"""Fixtures for worker tests: a tenant, a pack folder, a running WorkerService container."""

from __future__ import annotations

import copy
import textwrap
from pathlib import Path
from typing import Any

import pytest
from nameko.standalone.events import event_dispatcher
from sqlalchemy import select

from nameko_services.domain import messages, models
from nameko_services.worker.service import WorkerService
from tests.integration import rows
from tests.support.datastore_stub import datastore_stub

pytestmark = pytest.mark.integration


@pytest.fixture
def pack(engine, tenant, tmp_path) -> dict[str, Any]:
    """A pack row whose folder is tmp_path (with an actions/ folder)."""
    (tmp_path / "actions").mkdir()
    return rows.insert_row(engine, models.packs, tenant_id=tenant, ref=rows.unique("pack"),
                           source_path=str(tmp_path))


@pytest.fixture
def write(pack):
    def write_file(relative: str, source: str) -> str:
        path = Path(pack["source_path"]) / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source).lstrip())
        return relative

    return write_file


@pytest.fixture
def make_action(engine, tenant, pack):
    def make(**values: Any) -> dict[str, Any]:
        name = values.pop("name", rows.unique("act"))
        defaults = {"runner_type": "python", "parameters": {}}
        return rows.insert_row(engine, models.actions, tenant_id=tenant, pack_id=pack["id"],
                               name=name, ref=f"{pack['ref']}.{name}", **{**defaults, **values})

    return make


@pytest.fixture
def make_execution(engine, tenant):
    """An execution row as the executor leaves it for a worker: `scheduled`."""

    def make(action: dict[str, Any], **values: Any) -> dict[str, Any]:
        defaults = {"status": "scheduled", "parameters": {}}
        return rows.insert_row(engine, models.executions, tenant_id=tenant,
                               action_id=action["id"], action_ref=action["ref"],
                               **{**defaults, **values})

    return make


@pytest.fixture
def news():
    return []


@pytest.fixture
def api_server(config):
    """The stand-in datastore routes (tests.support.datastore_stub), also on the unix socket
    the worker's sandboxes show as the API (<run_dir>/api/api.sock)."""
    run_dir = Path(config["ATTUNE"]["run_dir"]).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    with datastore_stub(run_dir / "api" / "api.sock") as server:
        yield server


@pytest.fixture
def worker_config(config, api_server):
    """The test config, with the gateway URL pointing at the stand-in server."""
    cfg = copy.deepcopy(config)
    cfg["ATTUNE"]["api_host"] = "127.0.0.1"
    cfg["ATTUNE"]["api_port"] = api_server["port"]
    # What an operator would open for an http action's destination (the stand-in server).
    cfg["ATTUNE"]["http_runner"] = {"allow": [f"127.0.0.1:{api_server['port']}"]}
    cfg["max_workers"] = 4
    return cfg


@pytest.fixture
def worker(tenant, container_factory, worker_config, news):
    """A started WorkerService, plus a listener for the execution news it publishes."""
    subscriptions = [(messages.EXECUTIONS, messages.EXECUTION_STATUS_CHANGED)]
    container_factory(rows.listener(subscriptions, news), worker_config).start()
    container = container_factory(WorkerService, worker_config)
    container.start()
    return container


@pytest.fixture
def schedule(config):
    """Send the executor's work message for an execution row."""
    dispatch = event_dispatcher(config)

    def send(execution: dict[str, Any]) -> None:
        dispatch(messages.EXECUTOR, messages.EXECUTION_SCHEDULED,
                 {"execution_id": execution["id"], "tenant_id": execution["tenant_id"]})

    return send


@pytest.fixture
def current(engine):
    def read(execution_id: int) -> dict[str, Any]:
        with engine.connect() as conn:
            row = conn.execute(
                select(models.executions).where(models.executions.c.id == execution_id)
            ).mappings().one()
        return dict(row)

    return read


@pytest.fixture
def finished(current):
    """Wait until the execution reached a terminal status; returns the row."""

    def wait(execution_id: int, deadline: float = 30.0) -> dict[str, Any]:
        terminal = {"succeeded", "failed", "canceled", "succeeded_with_errors"}
        return rows.wait_until(
            lambda: (row := current(execution_id))["status"] in terminal and row, deadline
        )

    return wait
