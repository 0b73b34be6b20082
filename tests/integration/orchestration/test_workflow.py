"""The workflow engine with a real executor and worker: order, data flow, nesting, policies."""

from __future__ import annotations

import pytest

from nameko_services.domain import execution_control
from tests.integration import rows

pytestmark = pytest.mark.integration

ECHO = """
def run(**kw):
    return kw
"""
STEP = """
def run(step, previous=None):
    return {"step": step, "previous": previous}
"""
FAIL = """
def run(**kw):
    raise RuntimeError("task failed on purpose")
"""
SLEEP = """
import time

def run(seconds=1, **kw):
    time.sleep(seconds)
    return {"slept": seconds}
"""


def test_dependent_tasks_run_in_order_and_each_reads_the_previous_result(flow):
    step = flow.action(code=STEP, parameters={"step": {"type": "integer", "required": True},
                                              "previous": {}})
    wf = flow.workflow([
        {"name": "task_a", "action": step["ref"], "parameters": {"step": 1}},
        {"name": "task_b", "action": step["ref"], "depends_on": ["task_a"],
         "parameters": {"step": 2, "previous": "{{ task_a.result.step }}"}},
        {"name": "task_c", "action": step["ref"], "depends_on": ["task_b"],
         "parameters": {"step": 3, "previous": "{{ task_b.result }}"}},
    ])
    done = flow.wait(flow.run(wf)["id"])

    assert done["status"] == "succeeded", done["result"]
    tasks = flow.tasks(done["id"])
    assert tasks["task_b"]["parameters"] == {"step": 2, "previous": 1}
    assert tasks["task_c"]["parameters"]["previous"] == {"step": 2, "previous": 1}
    a, b, c = tasks["task_a"], tasks["task_b"], tasks["task_c"]
    assert a["finished_at"] <= b["created_at"] and b["finished_at"] <= c["created_at"]
    assert done["result"]["output"] == {
        "task_a": {"step": 1, "previous": None},
        "task_b": {"step": 2, "previous": 1},
        "task_c": {"step": 3, "previous": {"step": 2, "previous": 1}},
    }
    assert done["result"]["tasks"] == dict.fromkeys(("task_a", "task_b", "task_c"), "succeeded")


def test_independent_tasks_run_in_parallel_and_the_output_block_is_rendered(flow):
    sleep = flow.action(code=SLEEP, parameters={"seconds": {"type": "number"}})
    echo = flow.action(code=ECHO, parameters={"total": {}})
    wf = flow.workflow(
        [{"name": "left", "action": sleep["ref"], "parameters": {"seconds": 1}},
         {"name": "right", "action": sleep["ref"], "parameters": {"seconds": 1}},
         {"name": "join", "action": echo["ref"], "depends_on": ["left", "right"],
          "parameters": {"total": "{{ left.result.slept + right.result.slept }}"}}],
        output={"total": "{{ join.result.total }}", "text": "sum={{ join.result.total }}",
                "missing": "{{ nothing.result.here }}"},
    )
    done = flow.wait(flow.run(wf)["id"])

    assert done["status"] == "succeeded", done["result"]
    assert done["result"]["output"] == {"total": 2, "text": "sum=2", "missing": None}
    tasks = flow.tasks(done["id"])
    left, right = tasks["left"], tasks["right"]
    assert left["started_at"] < right["finished_at"] and right["started_at"] < left["finished_at"]


def test_a_nested_workflow_keeps_the_parent_chain_and_passes_results_up(flow):
    step = flow.action(code=STEP, parameters={"step": {"type": "integer"}, "previous": {}})
    child = flow.workflow(
        [{"name": "first", "action": step["ref"], "parameters": {"step": "{{ params.base }}"}},
         {"name": "second", "action": step["ref"], "depends_on": ["first"],
          "parameters": {"step": "{{ first.result.step + 1 }}"}}],
        parameters={"base": {"type": "integer", "required": True}},
        output={"last": "{{ second.result.step }}"},
    )
    parent = flow.workflow(
        [{"name": "inner", "action": child["ref"], "parameters": {"base": 10}},
         {"name": "after", "action": step["ref"], "depends_on": ["inner"],
          "parameters": {"step": "{{ inner.result.last }}"}}],
        output={"from_grandchildren": "{{ inner.result.last }}"},
    )
    done = flow.wait(flow.run(parent)["id"])

    assert done["status"] == "succeeded", done["result"]
    assert done["result"]["output"] == {"from_grandchildren": 11}
    inner = flow.tasks(done["id"])["inner"]
    assert inner["parent_execution_id"] == done["id"] and inner["status"] == "succeeded"
    grandchildren = flow.tasks(inner["id"])
    assert set(grandchildren) == {"first", "second"}
    assert all(g["parent_execution_id"] == inner["id"] for g in grandchildren.values())
    assert max(g["finished_at"] for g in grandchildren.values()) <= inner["finished_at"]
    assert inner["finished_at"] <= done["finished_at"]
    assert flow.tasks(done["id"])["after"]["parameters"]["step"] == 11


@pytest.mark.parametrize(("policy", "status", "third"), [
    ("abort", "failed", None),
    ("continue", "succeeded_with_errors", "succeeded"),
])
def test_a_failing_task_aborts_or_continues_by_policy(flow, policy, status, third):
    echo = flow.action(code=ECHO, parameters={"n": {}})
    fail = flow.action(code=FAIL)
    wf = flow.workflow(
        [{"name": "first", "action": echo["ref"], "parameters": {"n": 1}},
         {"name": "second", "action": fail["ref"], "depends_on": ["first"]},
         {"name": "third", "action": echo["ref"], "depends_on": ["second"],
          "parameters": {"n": "{{ second.status }}"}}],
        on_failure=policy,
    )
    done = flow.wait(flow.run(wf)["id"])

    assert done["status"] == status
    tasks = flow.tasks(done["id"])
    assert tasks["first"]["status"] == "succeeded"
    assert tasks["second"]["status"] == "failed"
    assert (tasks["third"]["status"] if "third" in tasks else None) == third
    error = done["result"]["error"]
    if policy == "abort":
        assert error["type"] == "RuntimeError" and error["task"] == "second"
        assert "Task 'second' failed: task failed on purpose" in error["message"]
    else:
        assert error["type"] == "task_failed" and error["tasks"] == ["second"]
        assert tasks["third"]["parameters"] == {"n": "failed"}


def test_abort_cancels_running_siblings_and_starts_nothing_new(flow):
    sleep = flow.action(code=SLEEP, parameters={"seconds": {"type": "number"}})
    fail = flow.action(code=FAIL)
    wf = flow.workflow([
        {"name": "slow", "action": sleep["ref"], "parameters": {"seconds": 60}},
        {"name": "boom", "action": fail["ref"]},
        {"name": "never", "action": sleep["ref"], "depends_on": ["boom"]},
    ])
    done = flow.wait(flow.run(wf)["id"], deadline=45)

    assert done["status"] == "failed"
    tasks = flow.tasks(done["id"])
    assert "never" not in tasks
    assert tasks["slow"]["status"] == "canceled"
    assert tasks["boom"]["status"] == "failed"


def test_when_false_skips_a_task_and_its_dependents_still_run(flow):
    echo = flow.action(code=ECHO, parameters={"v": {}})
    wf = flow.workflow(
        [{"name": "check", "action": echo["ref"], "parameters": {"v": 5}},
         {"name": "big", "action": echo["ref"], "depends_on": ["check"],
          "when": "{{ check.result.v > 10 }}", "parameters": {"v": "big"}},
         {"name": "small", "action": echo["ref"], "depends_on": ["check"],
          "when": "{{ check.result.v <= 10 }}", "parameters": {"v": "small"}},
         {"name": "last", "action": echo["ref"], "depends_on": ["big", "small"],
          "parameters": {"v": "{{ big.status }}/{{ small.result.v }}"}}],
    )
    done = flow.wait(flow.run(wf)["id"])

    assert done["status"] == "succeeded", done["result"]
    tasks = flow.tasks(done["id"])
    assert "big" not in tasks
    assert tasks["last"]["parameters"] == {"v": "skipped/small"}
    assert done["result"]["tasks"]["big"] == "skipped"
    assert done["result"]["output"]["big"] is None


def test_an_invalid_template_fails_the_task_naming_the_task_and_the_expression(flow):
    echo = flow.action(code=ECHO, parameters={"v": {}})
    wf = flow.workflow([
        {"name": "first", "action": echo["ref"], "parameters": {"v": 1}},
        {"name": "broken", "action": echo["ref"], "depends_on": ["first"],
         "parameters": {"v": "{{ first.result.v | no_such_filter }}"}},
    ])
    done = flow.wait(flow.run(wf)["id"])

    assert done["status"] == "failed"
    broken = flow.tasks(done["id"])["broken"]
    assert broken["status"] == "failed"
    error = broken["result"]["error"]
    assert error["type"] == "template"
    assert "Task 'broken'" in error["message"]
    assert "first.result.v | no_such_filter" in error["message"]
    assert done["result"]["error"]["type"] == "template"


def test_a_task_with_invalid_parameters_fails_validation_without_reaching_a_worker(flow):
    needs_url = flow.action(code=ECHO, parameters={"url": {"type": "string", "required": True}})
    wf = flow.workflow([{"name": "call", "action": needs_url["ref"], "parameters": {}}])
    done = flow.wait(flow.run(wf)["id"])

    call = flow.tasks(done["id"])["call"]
    assert (call["status"], call["worker"], call["started_at"]) == ("failed", None, None)
    assert call["result"]["error"]["type"] == "validation"
    assert call["result"]["error"]["message"] == "Missing required parameter: url"
    assert done["status"] == "failed"


def test_with_items_in_a_task_respects_concurrency_and_collects_outputs_in_order(flow):
    square = flow.action(code="""
        import time

        def run(value):
            time.sleep(0.3)
            return value * value
    """, parameters={"value": {"type": "integer", "required": True}})
    echo = flow.action(code=ECHO, parameters={"squares": {}})
    wf = flow.workflow(
        [{"name": "squares", "action": square["ref"], "with_items": "{{ params.numbers }}",
          "concurrency": 2, "parameters": {"value": "{{ item }}"}},
         {"name": "report", "action": echo["ref"], "depends_on": ["squares"],
          "parameters": {"squares": "{{ squares.result }}"}}],
        parameters={"numbers": {"type": "array", "required": True}},
    )
    done = flow.wait(flow.run(wf, {"numbers": [1, 2, 3, 4, 5]})["id"])

    assert done["status"] == "succeeded", done["result"]
    task = flow.tasks(done["id"])["squares"]
    items = sorted(flow.children(task["id"]), key=lambda c: c["item_index"])
    assert [(c["item"], c["parameters"]) for c in items] == [
        (n, {"value": n}) for n in [1, 2, 3, 4, 5]]
    spans = [(c["started_at"], c["finished_at"]) for c in items]
    for start, _ in spans:  # never more than 2 running at any start
        assert sum(s <= start < f for s, f in spans) <= 2
    assert flow.tasks(done["id"])["report"]["parameters"] == {"squares": [1, 4, 9, 16, 25]}


def test_a_workflow_timeout_cancels_what_runs_and_fails_as_timeout(flow):
    sleep = flow.action(code=SLEEP, parameters={"seconds": {"type": "number"}})
    wf = flow.workflow([{"name": "slow", "action": sleep["ref"],
                         "parameters": {"seconds": 60}}], timeout=2)
    done = flow.wait(flow.run(wf)["id"], deadline=45)

    assert done["status"] == "failed"
    assert done["result"]["error"]["type"] == "timeout"
    assert "timed out after 2 s" in done["result"]["error"]["message"]
    assert flow.tasks(done["id"])["slow"]["status"] == "canceled"


def test_a_task_timeout_overrides_the_actions_and_fails_the_task_as_timeout(flow):
    sleep = flow.action(code=SLEEP, parameters={"seconds": {"type": "number"}}, timeout=600)
    wf = flow.workflow([{"name": "slow", "action": sleep["ref"], "timeout": 1,
                         "parameters": {"seconds": 60}}])
    done = flow.wait(flow.run(wf)["id"], deadline=45)

    slow = flow.tasks(done["id"])["slow"]
    assert (slow["status"], slow["result"]["error"]["type"]) == ("failed", "timeout")
    assert done["status"] == "failed" and done["result"]["error"]["type"] == "timeout"


def test_canceling_a_running_workflow_cancels_its_tasks(flow, engine, tenant):
    sleep = flow.action(code=SLEEP, parameters={"seconds": {"type": "number"}})
    wf = flow.workflow([{"name": "slow", "action": sleep["ref"],
                         "parameters": {"seconds": 60}},
                        {"name": "next", "action": sleep["ref"], "depends_on": ["slow"]}])
    started = flow.run(wf)
    flow.wait(started["id"], "running")
    rows.wait_until(lambda: flow.tasks(started["id"]).get("slow", {}).get("status")
                    == "running", 30)
    with engine.begin() as conn:
        outcome = execution_control.cancel(conn, tenant_id=tenant, execution_id=started["id"],
                                           actor="test")
    for source, event_type, payload in outcome.messages:
        flow.dispatch(source, event_type, payload)
    done = flow.wait(started["id"], deadline=45)

    assert done["status"] == "canceled"
    tasks = flow.tasks(done["id"])
    assert tasks["slow"]["status"] == "canceled" and "next" not in tasks
