"""Inquiries (core.ask's runner): pause, answer, expire — alone and inside workflows."""

from __future__ import annotations

import pytest

from nameko_services.domain import inquiries, messages, models
from nameko_services.domain.errors import ConflictError, ValidationError
from tests.integration import rows

pytestmark = pytest.mark.integration

SCHEMA = {"type": "object", "properties": {"approved": {"type": "boolean"}},
          "required": ["approved"]}
ASK_PARAMETERS = {"prompt": {"type": "string", "required": True},
                  "schema": {"type": "object", "default": {"type": "object"}},
                  "ttl_seconds": {"type": "integer", "default": 3600},
                  "default": {}, "roles": {"type": "array"}}


@pytest.fixture
def ask(flow):
    return flow.action(runner_type="inquiry", parameters=ASK_PARAMETERS)


def inquiry_of(engine, execution_id):
    found = rows.rows(engine, models.inquiries, models.inquiries.c.execution_id == execution_id)
    return found[0] if found else None


def answer(flow, engine, inquiry, response, role="admin"):
    """What POST /inquiries/{id}/respond does: store the answer, then tell the executor."""
    with engine.begin() as conn:
        answered = inquiries.respond(conn, tenant_id=inquiry["tenant_id"],
                                     inquiry_id=inquiry["id"], response=response, role=role,
                                     user_id=0, actor="user:0")
    flow.dispatch(messages.GATEWAY, messages.INQUIRY_RESPONDED,
                  {"inquiry_id": inquiry["id"], "tenant_id": inquiry["tenant_id"],
                   "execution_id": inquiry["execution_id"]})
    return answered


def test_an_inquiry_pauses_until_answered_then_succeeds_with_the_response(flow, ask, engine):
    started = flow.run(ask, {"prompt": "Deploy?", "schema": SCHEMA, "ttl_seconds": 600})
    paused = flow.wait(started["id"], "paused")
    inquiry = rows.wait_until(lambda: inquiry_of(engine, started["id"]))
    assert (inquiry["status"], inquiry["prompt"], inquiry["ttl_seconds"]) == (
        "pending", "Deploy?", 600)
    assert 590 < (inquiry["expires_at"] - inquiry["created_at"]).total_seconds() <= 600
    assert paused["paused_at"] is not None

    with engine.begin() as conn, pytest.raises(ValidationError) as bad:
        inquiries.respond(conn, tenant_id=flow.tenant, inquiry_id=inquiry["id"],
                          response={"approved": "yes"}, role="admin", user_id=0, actor="t")
    assert "response.approved" in bad.value.fields

    answer(flow, engine, inquiry, {"approved": True})
    done = flow.wait(started["id"])
    assert done["status"] == "succeeded"
    assert done["result"]["output"] == {"approved": True}
    rows.wait_until(lambda: [p["status"] for p in flow.news(messages.EXECUTION_STATUS_CHANGED)
                             if p["execution_id"] == started["id"]]
                    == ["running", "paused", "running", "succeeded"])
    # Exactly one message each for this inquiry (other tests' news may share the queue).
    def mine(event_type):
        return [p["inquiry_id"] for p in flow.news(event_type) if p["inquiry_id"] == inquiry["id"]]

    rows.wait_until(lambda: mine(messages.INQUIRY_RESPONDED) == [inquiry["id"]])
    assert mine(messages.INQUIRY_CREATED) == [inquiry["id"]]

    with engine.begin() as conn, pytest.raises(ConflictError):
        inquiries.respond(conn, tenant_id=flow.tenant, inquiry_id=inquiry["id"],
                          response={"approved": False}, role="admin", user_id=0, actor="t")


def test_an_expired_inquiry_applies_its_default(flow, ask, engine):
    started = flow.run(ask, {"prompt": "Go?", "schema": SCHEMA, "ttl_seconds": 1,
                             "default": {"approved": False}})
    done = flow.wait(started["id"], deadline=30)

    assert done["status"] == "succeeded"
    assert done["result"]["output"] == {"approved": False}
    assert inquiry_of(engine, started["id"])["status"] == "expired"
    rows.wait_until(lambda: flow.news(messages.INQUIRY_EXPIRED))


def test_an_expired_inquiry_without_default_fails_the_execution(flow, ask, engine):
    started = flow.run(ask, {"prompt": "Go?", "schema": SCHEMA, "ttl_seconds": 1})
    done = flow.wait(started["id"], deadline=30)

    assert done["status"] == "failed"
    assert done["result"]["error"]["type"] == "inquiry_expired"
    inquiry = inquiry_of(engine, started["id"])
    assert inquiry["status"] == "expired"
    with engine.begin() as conn, pytest.raises(ConflictError):
        inquiries.respond(conn, tenant_id=flow.tenant, inquiry_id=inquiry["id"],
                          response={"approved": True}, role="admin", user_id=0, actor="t")


def test_a_workflow_pauses_at_each_inquiry_and_later_tasks_read_the_answers(flow, ask, engine):
    echo = flow.action(code="def run(**kw):\n    return kw\n",
                       parameters={"manager": {}, "security": {}})
    wf = flow.workflow(
        [{"name": "manager", "action": ask["ref"],
          "parameters": {"prompt": "Manager?", "schema": SCHEMA}},
         {"name": "security", "action": ask["ref"], "depends_on": ["manager"],
          "when": "{{ manager.result.approved }}",
          "parameters": {"prompt": "Security?", "schema": SCHEMA}},
         {"name": "deploy", "action": echo["ref"], "depends_on": ["security"],
          "parameters": {"manager": "{{ manager.result.approved }}",
                         "security": "{{ security.result.approved }}"}}],
        output={"approved": "{{ manager.result.approved and security.result.approved }}"},
    )
    started = flow.run(wf)
    for name in ("manager", "security"):
        flow.wait(started["id"], "paused")
        task = rows.wait_until(lambda n=name: flow.tasks(started["id"]).get(n))
        assert flow.wait(task["id"], "paused")
        answer(flow, engine, rows.wait_until(lambda t=task: inquiry_of(engine, t["id"])),
               {"approved": True})
    done = flow.wait(started["id"])

    assert done["status"] == "succeeded", done["result"]
    assert done["result"]["output"] == {"approved": True}
    assert flow.tasks(done["id"])["deploy"]["parameters"] == {"manager": True,
                                                               "security": True}
    expected = ["running", "paused", "running", "paused", "running", "succeeded"]
    rows.wait_until(lambda: [p["status"] for p in flow.news(messages.EXECUTION_STATUS_CHANGED)
                             if p["execution_id"] == started["id"]] == expected)


def test_canceling_a_paused_workflow_cancels_its_inquiry_task(flow, ask, engine, tenant):
    from nameko_services.domain import execution_control

    wf = flow.workflow([{"name": "approve", "action": ask["ref"],
                         "parameters": {"prompt": "?", "schema": SCHEMA}}])
    started = flow.run(wf)
    flow.wait(started["id"], "paused")
    with engine.begin() as conn:
        outcome = execution_control.cancel(conn, tenant_id=tenant, execution_id=started["id"],
                                           actor="test")
    for source, event_type, payload in outcome.messages:
        flow.dispatch(source, event_type, payload)

    assert flow.wait(started["id"])["status"] == "canceled"
    task = flow.tasks(started["id"])["approve"]
    assert flow.wait(task["id"])["status"] == "canceled"
    rows.wait_until(lambda: inquiry_of(engine, task["id"])["status"] == "expired")
