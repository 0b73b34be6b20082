"""T2.7 — an inquiry nobody answers expires after its TTL; the default (or a failure) follows."""

from tests.support.e2e import wait_for_execution
from tests.support.flows import list_all, make_action, ts
from tests.support.orchestration import execute, inquiry_for, make_workflow, respond, tasks

SCHEMA = {"type": "object", "properties": {"approved": {"type": "boolean"}}}


def test_the_inquiry_expires_and_the_workflow_proceeds_with_the_default(api, make_ws):
    show = make_action(api, "timeout_pack", "after", "def run(**kw):\n    return kw\n")
    workflow = make_workflow(api, "timeout_pack", "wait_for_ok", [
        {"name": "ask", "action": "core.ask",
         "parameters": {"prompt": "Continue?", "schema": SCHEMA, "ttl_seconds": 5,
                        "default": {"approved": False}}},
        {"name": "after", "action": show["ref"], "depends_on": ["ask"],
         "parameters": {"approved": "{{ ask.result.approved }}"}},
    ])
    feed = make_ws(api)
    feed.subscribe("inquiry")
    started = execute(api, workflow["ref"])
    wait_for_execution(api, started["id"], ("paused",), timeout=30)
    ask = tasks(api, started["id"])["ask"]
    inquiry = inquiry_for(api, ask["id"])
    assert inquiry["status"] == "pending" and inquiry["ttl_seconds"] == 5

    # Nobody answers: pending → expired after the TTL, and the execution goes on.
    expired = feed.collect_until(lambda m: m["event"] == "inquiry.expired", timeout=30,
                                 keep=lambda m: m.get("entity_id") == inquiry["id"])
    assert expired[-1]["data"]["status"] == "expired"
    done = wait_for_execution(api, started["id"], timeout=30)
    assert done["status"] == "succeeded", done
    after = api.data(api.get(f"/api/v1/inquiries/{inquiry['id']}"))
    assert after["status"] == "expired" and after["response"] is None
    assert after["default_response"] == {"approved": False}
    assert tasks(api, done["id"])["ask"]["result"]["output"] == {"approved": False}
    assert tasks(api, done["id"])["after"]["parameters"] == {"approved": False}
    ask_done = tasks(api, done["id"])["ask"]
    assert ts(ask_done["finished_at"]) - ts(inquiry["created_at"]) >= 5
    respond(api, inquiry["id"], {"approved": True}, status=409)
    # The timeout is logged: the audit trail records the expiry.
    entries = list_all(api, "/api/v1/audit", entity_type="inquiry", entity_id=inquiry["id"])
    assert [e["action"] for e in entries] == ["inquiry.created", "inquiry.expired"]


def test_without_a_default_the_execution_fails_as_inquiry_expired(api):
    started = execute(api, "core.ask", {"prompt": "Anyone?", "schema": SCHEMA,
                                        "ttl_seconds": 2})
    done = wait_for_execution(api, started["id"], timeout=30)
    assert done["status"] == "failed"
    assert done["result"]["error"]["type"] == "inquiry_expired"
    assert inquiry_for(api, started["id"])["status"] == "expired"
