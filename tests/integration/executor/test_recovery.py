"""At start-up the executor resumes what the database says is unfinished."""

import pytest
from nameko.testing.services import entrypoint_waiter

from nameko_services.domain import executions, models
from nameko_services.executor.service import ExecutorService
from tests.integration import rows

pytestmark = pytest.mark.integration


def test_start_up_evaluates_unprocessed_events_and_schedules_left_over_executions(
    tenant, container_factory, config, engine
):
    action = rows.make_action(engine, tenant)
    trigger = rows.make_trigger(engine, tenant)
    rows.make_rule(engine, tenant, trigger, action, parameters={"message": "from rule"})
    event = rows.make_event(engine, tenant, trigger, {"a": 1})  # its message was lost
    with engine.begin() as conn:
        requested = executions.create(conn, tenant_id=tenant, action=action, parameters={},
                                      actor_type="user", actor="test")
    sink = []
    listener = rows.listener([("executor", "execution.scheduled")], sink)
    container_factory(listener, config).start()
    container = container_factory(ExecutorService, config)
    with entrypoint_waiter(container, "resume", timeout=60):
        container.start()

    [created] = rows.rows(engine, models.executions,
                          models.executions.c.event_id == event["id"])
    assert created["status"] == "scheduled"
    assert created["parameters"] == {"message": "from rule"}
    assert rows.rows(engine, models.executions,
                     models.executions.c.id == requested["id"])[0]["status"] == "scheduled"
    ids = {created["id"], requested["id"]}
    rows.wait_until(lambda: ids <= {p["execution_id"] for _, _, p in sink})

    # a second executor starting re-sends the work of still-scheduled executions (harmless:
    # the worker's claim is conditional) and creates nothing new
    second = container_factory(ExecutorService, config)
    with entrypoint_waiter(second, "resume", timeout=60):
        second.start()
    rows.wait_until(lambda: sum(p["execution_id"] in ids for _, _, p in sink) >= 4)
    assert len(rows.rows(engine, models.executions,
                         models.executions.c.tenant_id == tenant)) == 2


def test_start_up_finishes_a_with_items_parent_whose_last_child_news_was_lost(
    tenant, container_factory, config, engine
):
    action = rows.make_action(engine, tenant, with_items="{{ items }}",
                              parameters={"items": {"type": "array"}})
    parent = rows.insert_row(
        engine, models.executions, tenant_id=tenant, action_id=action["id"],
        action_ref=action["ref"], status="running", parameters={"items": ["a", "b"]},
        state={"with_items": {"count": 2, "concurrency": 1}},
    )
    for index, status in enumerate(["succeeded", "succeeded"]):
        rows.insert_row(
            engine, models.executions, tenant_id=tenant, action_id=action["id"],
            action_ref=action["ref"], status=status, parent_execution_id=parent["id"],
            item_index=index, item=["a", "b"][index],
            result={"output": index * 10},
        )
    container = container_factory(ExecutorService, config)
    with entrypoint_waiter(container, "resume", timeout=60):
        container.start()
    [done] = rows.rows(engine, models.executions, models.executions.c.id == parent["id"])
    assert (done["status"], done["result"]["output"]) == ("succeeded", [0, 10])
