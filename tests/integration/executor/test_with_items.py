"""with-items: one child per element, bounded concurrency, the parent finishes with its children."""

import pytest
from nameko.testing.services import entrypoint_waiter

from nameko_services.domain import execution_control, executions, messages, models
from nameko_services.domain.states import ExecutionStatus as S
from tests.integration import rows

pytestmark = pytest.mark.integration

FRUIT = ["apple", "banana", "cherry"]
ITEMS_PARAMS = {"items": {"type": "array", "required": True}}


def request(engine, dispatch, executor, action, parameters):
    """Create a requested execution as the gateway does and hand it to the executor."""
    with engine.begin() as conn:
        parent = executions.create(conn, tenant_id=action["tenant_id"], action=action,
                                   parameters=parameters, actor_type="user", actor="test")
    with entrypoint_waiter(executor, "on_execution_requested", timeout=15,
                           callback=lambda ctx, *_: ctx.args[0]["execution_id"] == parent["id"]):
        dispatch(messages.GATEWAY, messages.EXECUTION_REQUESTED,
                 {"execution_id": parent["id"], "tenant_id": parent["tenant_id"]})
    return parent


def execution(engine, execution_id):
    return rows.rows(engine, models.executions, models.executions.c.id == execution_id)[0]


def children(engine, parent_id):
    return rows.rows(engine, models.executions,
                     models.executions.c.parent_execution_id == parent_id,
                     order_by=models.executions.c.item_index)


def finish(engine, dispatch, child, status=S.SUCCEEDED, output=None):
    """Play the worker: claim, finish, publish the status change (as the worker would)."""
    with engine.begin() as conn:
        executions.transition(conn, child["id"], S.RUNNING, actor_type="worker", actor="test")
        result = {**executions.empty_result(), "output": output}
        if status is S.FAILED:
            result["error"] = {"type": "RuntimeError", "message": "boom"}
        row = executions.transition(conn, child["id"], status, actor_type="worker",
                                    actor="test", result=result)
    dispatch(messages.EXECUTIONS, messages.EXECUTION_STATUS_CHANGED,
             executions.status_message(row, S.RUNNING.value))
    return row


def statuses(engine, parent_id):
    return [c["status"] for c in children(engine, parent_id)]


def test_three_items_make_three_children_and_the_parent_collects_their_outputs(
    executor, dispatch, engine, tenant, received
):
    action = rows.make_action(engine, tenant, parameters=ITEMS_PARAMS, with_items="{{ items }}")
    parent = request(engine, dispatch, executor, action, {"items": FRUIT})

    assert execution(engine, parent["id"])["status"] == "running"
    kids = children(engine, parent["id"])
    assert [(c["item"], c["item_index"]) for c in kids] == list(zip(FRUIT, range(3), strict=True))
    assert all(c["parameters"] == {"items": FRUIT, "item": c["item"]} for c in kids)
    assert all(c["status"] == "scheduled" and c["task_name"] is None for c in kids)
    assert len(parent["trace_id"]) == 32  # each item is in its parent's trace
    assert {c["trace_id"] for c in kids} == {parent["trace_id"]}

    def work_messages():
        return {p["execution_id"] for _, t, p in received if t == messages.EXECUTION_SCHEDULED}

    rows.wait_until(lambda: work_messages() >= {c["id"] for c in kids})
    assert parent["id"] not in work_messages()  # the parent itself never goes to a worker
    assert {p["trace_id"] for _, t, p in received if t == messages.EXECUTION_SCHEDULED
            and p["execution_id"] in {c["id"] for c in kids}} == {parent["trace_id"]}

    for child in reversed(kids):  # finishing out of order still gives outputs in item order
        finish(engine, dispatch, child, output=f"out-{child['item']}")

    done = rows.wait_until(lambda: (row := execution(engine, parent["id"]))["status"]
                           == "succeeded" and row)
    assert done["result"]["output"] == ["out-apple", "out-banana", "out-cherry"]
    assert done["result"]["error"] is None
    rows.wait_until(lambda: any(
        t == messages.EXECUTION_STATUS_CHANGED and p["execution_id"] == parent["id"]
        and p["status"] == "succeeded" for _, t, p in received))


def test_concurrency_one_runs_one_child_at_a_time_and_a_failure_fails_the_parent(
    executor, dispatch, engine, tenant
):
    action = rows.make_action(engine, tenant, parameters=ITEMS_PARAMS,
                              with_items="{{ params.items }}", concurrency=1)
    parent = request(engine, dispatch, executor, action, {"items": FRUIT})
    assert statuses(engine, parent["id"]) == ["scheduled", "requested", "requested"]

    first = children(engine, parent["id"])[0]
    finish(engine, dispatch, first, output=1)
    rows.wait_until(lambda: statuses(engine, parent["id"])
                    == ["succeeded", "scheduled", "requested"])

    # a duplicated status message must not schedule a second child
    with entrypoint_waiter(executor, "on_execution_follow_up", timeout=15,
                           callback=lambda ctx, *_: ctx.args[0]["execution_id"] == first["id"]):
        dispatch(messages.EXECUTIONS, messages.EXECUTION_STATUS_CHANGED,
                 executions.status_message(execution(engine, first["id"]), "running"))
    assert statuses(engine, parent["id"]) == ["succeeded", "scheduled", "requested"]

    finish(engine, dispatch, children(engine, parent["id"])[1], status=S.FAILED)
    rows.wait_until(lambda: statuses(engine, parent["id"])
                    == ["succeeded", "failed", "scheduled"])
    finish(engine, dispatch, children(engine, parent["id"])[2], output=3)

    done = rows.wait_until(lambda: (row := execution(engine, parent["id"]))["status"]
                           == "failed" and row)
    assert done["result"]["error"]["type"] == "child_failed"
    assert done["result"]["error"]["failed_indexes"] == [1]
    assert "1" in done["result"]["error"]["message"]
    assert done["result"]["output"] == [1, None, 3]


def test_an_empty_list_succeeds_at_once_with_no_children(executor, dispatch, engine, tenant):
    action = rows.make_action(engine, tenant, parameters=ITEMS_PARAMS, with_items="{{ items }}")
    parent = request(engine, dispatch, executor, action, {"items": []})
    done = execution(engine, parent["id"])
    assert (done["status"], done["result"]["output"]) == ("succeeded", [])
    assert children(engine, parent["id"]) == []


@pytest.mark.parametrize("with_items", ["{{ items.name }}", "{{ 1 / 0 }}"])
def test_with_items_that_is_not_a_list_fails_the_parent_as_a_template_error(
    executor, dispatch, engine, tenant, with_items
):
    action = rows.make_action(engine, tenant, parameters={"items": {"type": "object"}},
                              with_items=with_items)
    parent = request(engine, dispatch, executor, action, {"items": {"name": "x"}})
    done = execution(engine, parent["id"])
    assert done["status"] == "failed"
    assert done["result"]["error"]["type"] == "template"
    assert children(engine, parent["id"]) == []


def test_canceling_the_parent_stops_running_children_and_cancels_pending_ones(
    executor, dispatch, engine, tenant
):
    action = rows.make_action(engine, tenant, parameters=ITEMS_PARAMS,
                              with_items="{{ items }}", concurrency=1)
    parent = request(engine, dispatch, executor, action, {"items": FRUIT})
    first = children(engine, parent["id"])[0]
    with engine.begin() as conn:  # the first child is running on a worker
        executions.transition(conn, first["id"], S.RUNNING, actor_type="worker", actor="test")
        outcome = execution_control.cancel(conn, tenant_id=tenant, execution_id=parent["id"],
                                           actor="test")
    assert outcome.execution["status"] == "canceling"
    with entrypoint_waiter(executor, "on_execution_cancel_requested", timeout=15,
                           callback=lambda ctx, *_: ctx.args[0]["execution_id"] == parent["id"]):
        for source, event_type, payload in outcome.messages:
            dispatch(source, event_type, payload)
    # Cancel cascades: the running child is told to stop, the pending ones never start.
    assert statuses(engine, parent["id"]) == ["canceling", "canceled", "canceled"]
    assert execution(engine, parent["id"])["status"] == "canceling"

    with engine.begin() as conn:
        row = executions.transition(conn, first["id"], S.SUCCEEDED, actor_type="worker",
                                    actor="test", result={**executions.empty_result(),
                                                          "output": "done"})
    dispatch(messages.EXECUTIONS, messages.EXECUTION_STATUS_CHANGED,
             executions.status_message(row, "running"))
    done = rows.wait_until(lambda: (r := execution(engine, parent["id"]))["status"]
                           == "canceled" and r)
    assert done["result"]["error"]["type"] == "canceled"
    assert done["result"]["output"] == ["done", None, None]
