"""T3.13 — a missing required parameter fails the execution at once, before any worker."""

from tests.support.e2e import wait_until
from tests.support.flows import fire_webhook, list_all, make_action, make_rule, make_trigger
from tests.support.orchestration import audit

CODE = '''
def run(url):
    return url
'''


def test_a_rule_without_the_required_url_fails_the_execution_with_a_clear_message(api):
    action = make_action(api, "strict", "fetch", CODE,
                         parameters={"url": {"type": "string", "required": True}})
    trigger = make_trigger(api, "webhook")
    rule = make_rule(api, trigger, action["ref"], parameters={"other": "x"})

    receipt = fire_webhook(api, trigger, {"anything": 1})
    execution = wait_until(lambda: list_all(api, "/api/v1/executions", rule_id=rule["id"]),
                           timeout=30, message="the rule's execution")[0]

    assert execution["status"] == "failed"
    assert execution["result"]["error"]["type"] == "validation"
    assert execution["result"]["error"]["message"] == "Missing required parameter: url"
    # It never reached a worker: no worker, never started, no output.
    assert execution["worker"] is None and execution["started_at"] is None
    assert execution["scheduled_at"] is None and execution["finished_at"] is not None
    actions = [e["action"] for e in audit(api, execution["id"])]
    assert actions[-1] == "execution.failed"
    assert not any(a in actions for a in ("execution.scheduled", "execution.started"))
    enforcement = list_all(api, "/api/v1/enforcements", event_id=receipt["event_id"])[0]
    assert enforcement["status"] == "failed"


def test_the_api_rejects_the_same_way_and_the_schema_checks_types_too(api):
    action = make_action(api, "strict_api", "fetch", CODE,
                         parameters={"url": {"type": "string", "required": True},
                                     "retries": {"type": "integer", "minimum": 0}})
    missing = api.data(api.post("/api/v1/executions", json={"action": action["ref"]}), 201)
    assert missing["status"] == "failed"
    assert missing["result"]["error"]["message"] == "Missing required parameter: url"
    assert missing["result"]["fields"] == {"parameters.url": "required"}

    wrong = api.data(api.post("/api/v1/executions", json={
        "action": action["ref"], "parameters": {"url": "http://x", "retries": "two"}}), 201)
    assert wrong["status"] == "failed" and wrong["result"]["error"]["type"] == "validation"
    assert "retries" in wrong["result"]["error"]["message"]
    assert wrong["worker"] is None
