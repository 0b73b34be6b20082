"""Fair share in the workers' queue: with one tenant's backlog queued, another tenant's newly
scheduled execution starts first (RabbitMQ priorities from the backlog, domain/backlog.py)."""

from __future__ import annotations

import copy

import pytest
from kombu import Connection
from sqlalchemy import func, select

from nameko_services import green
from nameko_services.domain import messages, models
from nameko_services.extensions import EventHandler
from nameko_services.worker.service import WorkerService
from tests.integration import rows

pytestmark = pytest.mark.integration

BACKLOG_OF_A = 12


@pytest.fixture
def other_tenant(engine):
    tenant_id = rows.make_tenant(engine)
    yield tenant_id
    rows.delete_tenant(engine, tenant_id)


def empty_work_queue(config) -> None:
    """Declare the workers' queue as the worker does (so messages published before it starts
    wait there) and empty it of other tests' leftovers."""
    handler = EventHandler(messages.EXECUTOR, messages.EXECUTION_SCHEDULED, prioritised=True)
    handler.container = type("Container", (), {"service_name": WorkerService.name,
                                              "config": config})()
    handler.method_name = "on_execution_scheduled"
    handler.queue_consumer = type("Consumer", (), {"register_provider": lambda *_: None})()
    handler.setup()
    with Connection(config["AMQP_URI"]) as connection:
        queue = handler.queue(connection.default_channel)
        queue.declare()
        queue.purge()


def test_another_tenants_execution_starts_before_a_flooding_tenants_backlog(
    engine, tenant, other_tenant, worker_config, container_factory
):
    cfg = copy.deepcopy(worker_config)
    cfg["max_workers"] = 1  # one run at a time, one message delivered ahead (prefetch)
    cfg["ATTUNE"]["backlog"] = {"refresh_seconds": 0}  # each priority from the current counts
    empty_work_queue(cfg)
    publish = green.Publisher(cfg)

    def schedule(tenant_id: int) -> dict:
        action = rows.make_action(engine, tenant_id)
        execution = rows.insert_row(engine, models.executions, tenant_id=tenant_id,
                                    action_id=action["id"], action_ref=action["ref"],
                                    status="scheduled", parameters={})
        return execution

    flood = [schedule(tenant) for _ in range(BACKLOG_OF_A)]
    for execution in flood:  # tenant A has BACKLOG_OF_A queued: a low priority
        publish(messages.EXECUTOR, messages.EXECUTION_SCHEDULED,
                {"execution_id": execution["id"], "tenant_id": tenant})
    light = schedule(other_tenant)  # published last, behind all of A's
    publish(messages.EXECUTOR, messages.EXECUTION_SCHEDULED,
            {"execution_id": light["id"], "tenant_id": other_tenant})

    container_factory(WorkerService, cfg).start()
    ids = [e["id"] for e in flood] + [light["id"]]

    def all_finished() -> list[dict] | None:
        found = rows.rows(engine, models.executions, models.executions.c.id.in_(ids))
        return found if all(r["finished_at"] is not None for r in found) else None

    finished = rows.wait_until(all_finished, deadline=120)
    started = {r["id"]: r["started_at"] for r in finished}
    assert {r["status"] for r in finished} == {"succeeded"}
    before_light = [i for i in ids[:-1] if started[i] < started[light["id"]]]
    assert before_light == [], "tenant B's execution waited behind tenant A's backlog"
    with engine.connect() as conn:  # and A's backlog was all there when B's started
        assert conn.execute(select(func.count()).select_from(models.executions).where(
            models.executions.c.id.in_(ids[:-1]),
            models.executions.c.started_at > started[light["id"]])).scalar_one() == BACKLOG_OF_A
