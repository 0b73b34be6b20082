"""The pure workflow decisions: parsing, readiness, failure policies, context and outcome."""

import pytest

from nameko_services.domain import workflows as wf
from nameko_services.domain.states import ExecutionStatus as S

BLOCK = {
    "on_failure": "abort",
    "tasks": [
        {"name": "a", "action": "p.x"},
        {"name": "b", "action": "p.x", "depends_on": ["a"], "on_failure": "continue"},
        {"name": "c", "action": "p.x", "depends_on": "a"},
        {"name": "d", "action": "p.x", "depends_on": ["b", "c"]},
    ],
}


def names(tasks):
    return [t.name for t in tasks]


def test_tasks_without_dependencies_are_ready_first_and_a_string_dependency_is_a_list():
    spec = wf.parse(BLOCK)
    assert spec.task("c").depends_on == ("a",)
    assert names(wf.ready(spec, {})) == ["a"]
    assert names(wf.ready(spec, {"a": "running"})) == []
    assert names(wf.ready(spec, {"a": "succeeded"})) == ["b", "c"]
    assert names(wf.ready(spec, {"a": "succeeded", "b": "skipped", "c": "succeeded"})) == ["d"]


def test_a_failure_under_continue_lets_dependents_run_and_marks_the_outcome():
    spec = wf.parse(BLOCK)
    states = {"a": "succeeded", "b": "failed", "c": "succeeded"}
    assert wf.blocking_failure(spec, states) is None
    assert names(wf.ready(spec, states)) == ["d"]
    states["d"] = "succeeded"
    assert wf.all_done(spec, states)
    assert wf.final_status(spec, states) is S.SUCCEEDED_WITH_ERRORS
    assert wf.failed_tasks(spec, states) == ["b"]


def test_a_failure_under_abort_or_retry_blocks_the_workflow():
    spec = wf.parse({**BLOCK, "tasks": [*BLOCK["tasks"][:2],
                                        {**BLOCK["tasks"][2], "on_failure": "retry"},
                                        BLOCK["tasks"][3]]})
    assert wf.blocking_failure(spec, {"a": "canceled"}).name == "a"
    assert wf.blocking_failure(spec, {"a": "succeeded", "c": "failed"}).name == "c"
    assert wf.final_status(spec, dict.fromkeys("abcd", "succeeded")) is S.SUCCEEDED


@pytest.mark.parametrize("block", [
    None, {"tasks": "x"}, {"tasks": [{"name": "a"}]},
    {"tasks": [{"name": "a", "action": "p.x"}, {"name": "a", "action": "p.y"}]},
    {"tasks": [{"name": "a", "action": "p.x", "depends_on": ["zz"]}]},
])
def test_an_unrunnable_block_is_a_workflow_error(block):
    with pytest.raises(wf.WorkflowError):
        wf.parse(block)


def test_the_retry_policy_comes_from_the_task_then_the_action_then_on_failure_retry():
    spec = wf.parse({"tasks": [
        {"name": "own", "action": "p.x", "retry": {"max_attempts": 4}},
        {"name": "plain", "action": "p.x"},
        {"name": "policy", "action": "p.x", "on_failure": "retry"},
    ]})
    assert wf.retry_policy(spec, spec.task("own"), None).max_attempts == 4
    assert wf.retry_policy(spec, spec.task("plain"), {"max_attempts": 2}).max_attempts == 2
    assert wf.retry_policy(spec, spec.task("plain"), {"max_attempts": 1}) is None
    assert wf.retry_policy(spec, spec.task("policy"), None).max_attempts == 3


def test_the_context_exposes_tasks_params_trigger_and_reserved_names_win():
    views = {"fetch": wf.TaskView("succeeded", {"api_key": "k"}, None, 7),
             "params": wf.TaskView("succeeded", "shadow")}
    ctx = wf.context(params={"url": "u"}, execution_id=1, trigger_data={"x": 1},
                     tasks=views, datastore={"k": "v"})
    assert ctx["fetch"] == {"result": {"api_key": "k"}, "status": "succeeded", "error": None,
                            "execution_id": 7}
    assert ctx["params"] == {"url": "u"} and ctx["execution"]["params"] == {"url": "u"}
    assert ctx["trigger"]["data"] == {"x": 1} and ctx["event"]["data"] == {"x": 1}
    assert wf.default_output(views) == {"fetch": {"api_key": "k"}, "params": "shadow"}
