"""T2.6 — core.ask pauses the execution until someone answers; the answer becomes the result."""

import pytest

from tests.support.e2e import wait_for_execution
from tests.support.flows import make_action, ts
from tests.support.orchestration import (
    execute,
    inquiry_for,
    make_workflow,
    respond,
    tasks,
    wait_for_task,
)

YES_NO = {"type": "object", "properties": {"approved": {"type": "boolean"}},
          "required": ["approved"]}
FORM = {"type": "object", "required": ["name", "replicas"],
        "properties": {"name": {"type": "string", "minLength": 1},
                       "replicas": {"type": "integer", "minimum": 1}}}
CHOICE = {"type": "object", "required": ["environment"],
          "properties": {"environment": {"enum": ["dev", "staging", "prod"]}}}


@pytest.mark.parametrize(("schema", "bad", "good"), [
    (YES_NO, {"approved": "yes"}, {"approved": True}),
    (FORM, {"name": "", "replicas": 0}, {"name": "web", "replicas": 3}),
    (CHOICE, {"environment": "moon"}, {"environment": "staging"}),
])
def test_the_execution_pauses_the_answer_is_validated_and_becomes_the_output(
    api, schema, bad, good
):
    started = execute(api, "core.ask", {"prompt": "Deploy?", "schema": schema,
                                        "ttl_seconds": 300})
    paused = wait_for_execution(api, started["id"], ("paused",), timeout=30)
    assert paused["paused_at"] is not None

    inquiry = inquiry_for(api, started["id"])
    assert (inquiry["status"], inquiry["prompt"], inquiry["schema"]) == (
        "pending", "Deploy?", schema)
    assert inquiry["ttl_seconds"] == 300
    assert 299 <= ts(inquiry["expires_at"]) - ts(inquiry["created_at"]) <= 301
    pending = api.data(api.get("/api/v1/inquiries", params={"status": "pending"}))
    assert inquiry["id"] in [i["id"] for i in pending]

    rejected = respond(api, inquiry["id"], bad, status=422)
    assert rejected["error"]["code"] == "validation_error"
    assert api.data(api.get(f"/api/v1/executions/{started['id']}"))["status"] == "paused"

    answered = respond(api, inquiry["id"], good)["data"]
    assert (answered["status"], answered["response"]) == ("responded", good)
    assert answered["responded_by"] == api.user["username"]

    done = wait_for_execution(api, started["id"])
    assert done["status"] == "succeeded"
    assert done["result"]["output"] == good
    assert api.data(api.get(f"/api/v1/inquiries/{inquiry['id']}"))["status"] == "responded"
    respond(api, inquiry["id"], good, status=409)  # a second answer


def test_a_workflow_pauses_then_the_next_task_receives_the_structured_response(api, make_ws):
    show = make_action(api, "approval", "deploy", "def run(**kw):\n    return kw\n")
    workflow = make_workflow(api, "approval", "gated", [
        {"name": "approve", "action": "core.ask",
         "parameters": {"prompt": "Deploy to prod?", "schema": FORM, "ttl_seconds": 600}},
        {"name": "deploy", "action": show["ref"], "depends_on": ["approve"],
         "parameters": {"name": "{{ approve.result.name }}",
                        "replicas": "{{ approve.result.replicas }}"}},
    ])
    feed = make_ws(api)
    feed.subscribe("inquiry")

    started = execute(api, workflow["ref"])
    wait_for_execution(api, started["id"], ("paused",), timeout=30)
    ask = wait_for_task(api, started["id"], "approve", ("paused",))
    inquiry = inquiry_for(api, ask["id"])
    created = feed.collect_until(lambda m: m["event"] == "inquiry.created",
                                 keep=lambda m: m.get("entity_id") == inquiry["id"])
    assert created[-1]["data"]["inquiry"]["prompt"] == "Deploy to prod?"

    respond(api, inquiry["id"], {"name": "web", "replicas": 2})
    answered = feed.collect_until(lambda m: m["event"] == "inquiry.responded",
                                  keep=lambda m: m.get("entity_id") == inquiry["id"])
    assert answered[-1]["data"]["inquiry"]["response"] == {"name": "web", "replicas": 2}

    done = wait_for_execution(api, started["id"])
    assert done["status"] == "succeeded", done
    assert tasks(api, done["id"])["deploy"]["result"]["output"] == {"name": "web",
                                                                   "replicas": 2}


def test_an_unanswered_inquiry_takes_its_default_when_the_ttl_runs_out(api):
    started = execute(api, "core.ask", {"prompt": "Proceed?", "schema": YES_NO,
                                        "ttl_seconds": 2, "default": {"approved": False}})
    done = wait_for_execution(api, started["id"], timeout=30)
    assert done["status"] == "succeeded"
    assert done["result"]["output"] == {"approved": False}
    assert inquiry_for(api, started["id"])["status"] == "expired"


def test_only_allowed_roles_may_answer(api, make_api):
    executor = make_api("executor", admin=api)
    viewer = make_api("viewer", admin=api)
    editor = make_api("editor", admin=api)
    started = execute(api, "core.ask", {"prompt": "Ops only", "schema": YES_NO,
                                        "roles": ["executor"]})
    inquiry = inquiry_for(api, started["id"])
    respond(viewer, inquiry["id"], {"approved": True}, status=403)
    respond(editor, inquiry["id"], {"approved": True}, status=403)
    respond(executor, inquiry["id"], {"approved": True})
    assert wait_for_execution(api, started["id"])["result"]["output"] == {"approved": True}
