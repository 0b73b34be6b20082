"""T2.2 — the second of three tasks fails; abort, continue and retry decide what follows."""

import pytest

from tests.support.e2e import wait_for_execution
from tests.support.flows import make_action
from tests.support.orchestration import children, execute, make_workflow, tasks

OK = '''
def run(n):
    return {"n": n}
'''
FAIL = '''
def run():
    raise RuntimeError("second child fails")
'''
FLAKY = '''
import attune

def run():
    if attune.context["attempt"] < 2:
        raise RuntimeError(f"attempt {attune.context['attempt']} fails")
    return {"attempt": attune.context["attempt"]}
'''


def three_tasks(api, pack, second_code, **policy):
    ok = make_action(api, pack, "ok", OK, parameters={"n": {"type": "integer"}})
    second = make_action(api, pack, "second", second_code)
    return make_workflow(api, pack, "three", [
        {"name": "first", "action": ok["ref"], "parameters": {"n": 1}},
        {"name": "second", "action": second["ref"], "depends_on": ["first"], **policy},
        {"name": "third", "action": ok["ref"], "depends_on": ["second"],
         "parameters": {"n": 3}},
    ])


@pytest.mark.parametrize(("policy", "parent_status", "third_status"), [
    ("abort", "failed", None),
    ("continue", "succeeded_with_errors", "succeeded"),
])
def test_abort_stops_before_the_third_task_and_continue_runs_it(
    api, policy, parent_status, third_status
):
    workflow = three_tasks(api, f"fh_{policy}", FAIL, on_failure=policy)

    parent = wait_for_execution(api, execute(api, workflow["ref"])["id"])

    by_name = tasks(api, parent["id"])
    assert by_name["first"]["status"] == "succeeded"
    assert by_name["first"]["result"]["output"] == {"n": 1}
    assert by_name["second"]["status"] == "failed"
    assert by_name["second"]["result"]["error"]["message"] == "second child fails"
    # abort: the third child never starts; continue: it still executes.
    assert by_name.get("third", {}).get("status") == third_status
    assert parent["status"] == parent_status
    assert parent["result"]["tasks"]["second"] == "failed"
    if policy == "abort":
        assert set(by_name) == {"first", "second"}
        assert parent["result"]["error"]["task"] == "second"
    else:
        assert parent["result"]["error"]["tasks"] == ["second"]
        assert by_name["third"]["result"]["output"] == {"n": 3}


def test_retry_retries_the_failed_task_and_the_workflow_goes_on_when_it_succeeds(api):
    workflow = three_tasks(api, "fh_retry_ok", FLAKY, on_failure="retry",
                           retry={"max_attempts": 3, "delay_seconds": 0.5})

    parent = wait_for_execution(api, execute(api, workflow["ref"])["id"])

    assert parent["status"] == "succeeded", parent
    second = tasks(api, parent["id"])["second"]
    assert (second["status"], second["attempt"], second["max_attempts"]) == ("succeeded", 2, 3)
    attempts = children(api, second["id"])
    assert [(a["attempt"], a["status"]) for a in attempts] == [(1, "failed"), (2, "succeeded")]
    assert tasks(api, parent["id"])["third"]["status"] == "succeeded"


def test_retry_gives_up_after_max_attempts_then_aborts(api):
    workflow = three_tasks(api, "fh_retry_fail", FAIL, on_failure="retry",
                           retry={"max_attempts": 3, "delay_seconds": 0.2})

    parent = wait_for_execution(api, execute(api, workflow["ref"])["id"])

    assert parent["status"] == "failed"
    by_name = tasks(api, parent["id"])
    assert "third" not in by_name
    second = by_name["second"]
    assert (second["status"], second["attempt"]) == ("failed", 3)
    attempts = children(api, second["id"])
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert all(a["status"] == "failed" and a["max_attempts"] == 3 for a in attempts)
