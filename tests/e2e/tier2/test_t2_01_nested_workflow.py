"""T2.1 — a workflow calls a workflow: three levels, the parent chain intact, results up."""

from tests.support.e2e import wait_for_execution
from tests.support.flows import make_action, ts
from tests.support.orchestration import execute, make_workflow, tasks

STEP = '''
def run(label, value=0):
    return {"label": label, "value": value}
'''


def test_parent_child_and_grandchild_tasks_complete_in_order_with_results_propagating(api):
    step = make_action(api, "nested", "step", STEP,
                       parameters={"label": {"type": "string", "required": True},
                                   "value": {"type": "integer"}})
    child = make_workflow(
        api, "nested", "child",
        [{"name": "task1", "action": step["ref"],
          "parameters": {"label": "one", "value": "{{ params.start }}"}},
         {"name": "task2", "action": step["ref"], "depends_on": ["task1"],
          "parameters": {"label": "two", "value": "{{ task1.result.value * 2 }}"}}],
        parameters={"start": {"type": "integer", "required": True}},
        output={"doubled": "{{ task2.result.value }}", "labels":
                ["{{ task1.result.label }}", "{{ task2.result.label }}"]},
    )
    parent = make_workflow(
        api, "nested", "parent",
        [{"name": "run_child", "action": child["ref"], "parameters": {"start": 21}}],
        output={"answer": "{{ run_child.result.doubled }}",
                "labels": "{{ run_child.result.labels }}"},
    )

    top = wait_for_execution(api, execute(api, parent["ref"])["id"])

    # Results propagate up from the grandchildren to the parent.
    assert top["status"] == "succeeded", top
    assert top["result"]["output"] == {"answer": 42, "labels": ["one", "two"]}
    # Three levels: parent → child workflow → grandchild tasks, parent ids chained.
    level2 = tasks(api, top["id"])
    assert list(level2) == ["run_child"]
    middle = level2["run_child"]
    assert middle["parent_execution_id"] == top["id"]
    assert middle["action_ref"] == child["ref"] and middle["status"] == "succeeded"
    level3 = tasks(api, middle["id"])
    assert sorted(level3) == ["task1", "task2"]
    assert all(t["parent_execution_id"] == middle["id"] for t in level3.values())
    assert all(t["status"] == "succeeded" for t in level3.values())
    # Correct order, and every parent waits for all of its descendants.
    first, second = level3["task1"], level3["task2"]
    assert ts(first["finished_at"]) <= ts(second["started_at"])
    assert ts(second["finished_at"]) <= ts(middle["finished_at"]) <= ts(top["finished_at"])
    assert ts(top["started_at"]) <= ts(middle["started_at"]) <= ts(first["started_at"])
    # The top-level listing shows the parent only.
    listed = api.data(api.get("/api/v1/executions", params={"top_level": "true",
                                                             "action": parent["ref"]}))
    assert [e["id"] for e in listed] == [top["id"]]


def test_a_failing_grandchild_fails_every_level_above_it(api):
    boom = make_action(api, "nested_fail", "boom",
                       "def run():\n    raise ValueError('grandchild broke')\n")
    child = make_workflow(api, "nested_fail", "child",
                          [{"name": "explode", "action": boom["ref"]}])
    parent = make_workflow(api, "nested_fail", "parent",
                           [{"name": "inner", "action": child["ref"]}])

    top = wait_for_execution(api, execute(api, parent["ref"])["id"])

    assert top["status"] == "failed"
    middle = tasks(api, top["id"])["inner"]
    assert middle["status"] == "failed"
    leaf = tasks(api, middle["id"])["explode"]
    assert leaf["status"] == "failed"
    assert leaf["result"]["error"] == {"type": "ValueError", "message": "grandchild broke"}
    assert "grandchild broke" in top["result"]["error"]["message"]
    assert top["result"]["error"]["task"] == "inner"
