"""T3.9 — one workflow, two approvals: it pauses at each and later tasks read both answers."""

from tests.support.e2e import wait_for_execution
from tests.support.flows import make_action
from tests.support.orchestration import (
    execute,
    inquiry_for,
    make_workflow,
    respond,
    tasks,
    wait_for_task,
)

SCHEMA = {"type": "object", "required": ["approved"],
          "properties": {"approved": {"type": "boolean"}, "comment": {"type": "string"}}}


def two_approvals(api, pack):
    release = make_action(api, pack, "release", "def run(**kw):\n    return kw\n")
    return make_workflow(api, pack, "release_flow", [
        {"name": "manager", "action": "core.ask",
         "parameters": {"prompt": "Manager approval?", "schema": SCHEMA, "roles": ["admin"]}},
        {"name": "security", "action": "core.ask", "depends_on": ["manager"],
         "when": "{{ manager.result.approved }}",
         "parameters": {"prompt": "Security approval (manager said: "
                                  "{{ manager.result.comment }})", "schema": SCHEMA}},
        {"name": "release", "action": release["ref"], "depends_on": ["security"],
         "when": "{{ security.result.approved }}",
         "parameters": {"manager": "{{ manager.result }}", "security": "{{ security.result }}"}},
    ], output={"released": "{{ release.status == 'succeeded' }}"})


def answer_task(api, workflow_id, name, response):
    wait_for_execution(api, workflow_id, ("paused",), timeout=30)
    task = wait_for_task(api, workflow_id, name, ("paused",))
    inquiry = inquiry_for(api, task["id"])
    assert inquiry["status"] == "pending"
    respond(api, inquiry["id"], response)
    wait_for_execution(api, task["id"], ("succeeded",), timeout=30)
    return inquiry


def test_the_workflow_pauses_twice_and_both_answers_reach_the_last_task(api):
    workflow = two_approvals(api, "approvals")
    started = execute(api, workflow["ref"])

    answer_task(api, started["id"], "manager", {"approved": True, "comment": "ship it"})
    security = answer_task(api, started["id"], "security", {"approved": True})
    assert security["prompt"] == "Security approval (manager said: ship it)"
    done = wait_for_execution(api, started["id"], timeout=60)

    assert done["status"] == "succeeded", done
    assert done["result"]["output"] == {"released": True}
    release = tasks(api, done["id"])["release"]
    assert release["result"]["output"] == {
        "manager": {"approved": True, "comment": "ship it"}, "security": {"approved": True}}
    audit = [e["action"] for e in api.data(api.get(
        "/api/v1/audit", params={"entity_type": "execution", "entity_id": done["id"]}))]
    assert audit.count("execution.paused") == 2 and audit.count("execution.resumed") == 2


def test_a_rejection_at_the_first_step_skips_the_second(api):
    workflow = two_approvals(api, "approvals_no")
    started = execute(api, workflow["ref"])
    answer_task(api, started["id"], "manager", {"approved": False})
    done = wait_for_execution(api, started["id"], timeout=60)

    assert done["status"] == "succeeded"
    assert done["result"]["output"] == {"released": False}
    assert done["result"]["tasks"]["security"] == "skipped"
    assert set(tasks(api, done["id"])) == {"manager"}
