"""Execution triggers through the gateway: docs/packs.md's chat notification recipe — a rule on
an `execution` trigger (status failed) posts to a chat webhook whose URL is in the datastore —
fires once for a failed run of the watched action, not for a success nor for another tenant."""

from __future__ import annotations

import json

from tests.support.e2e import unique_name, wait_until
from tests.support.flows import list_all, make_action, make_rule, make_trigger
from tests.support.pack_envs import execute, recording_server

FLAKY = '''
def run(fail):
    if fail:
        raise RuntimeError("deploy broke")
    return {"deployed": True}
'''


def test_a_failed_run_posts_to_the_chat_webhook_once_and_a_success_does_not(api, make_api):
    pack = unique_name("ops").replace("-", "_")
    deploy = make_action(api, pack, "deploy", FLAKY,
                         parameters={"fail": {"type": "boolean", "required": True}})
    refused = api.post("/api/v1/triggers", json={
        "name": "bad_filter", "type": "execution", "parameters": {"status": ["exploded"]}})
    assert refused.status_code == 422
    assert "parameters.status" in refused.json()["error"]["details"]["fields"]
    trigger = make_trigger(api, "execution", {"action": deploy["ref"], "status": ["failed"]})
    other = make_api()
    their_deploy = make_action(other, pack, "deploy", FLAKY,
                               parameters={"fail": {"type": "boolean", "required": True}})
    with recording_server() as server:
        api.data(api.post("/api/v1/datastore", json={
            "key": "chat_webhook_url", "value": f"{server.url}/hooks/chat"}), 201)
        rule = make_rule(api, trigger, "core.http", parameters={
            "url": "{{ datastore.chat_webhook_url }}", "method": "POST",
            "body": {"text": "{{ trigger.data.action_ref }} #{{ trigger.data.execution_id }} "
                             "{{ trigger.data.status }}: "
                             "{{ trigger.data.result.error.message }}"}})

        succeeded = execute(api, deploy["ref"], {"fail": False})
        theirs = execute(other, their_deploy["ref"], {"fail": True})
        failed = execute(api, deploy["ref"], {"fail": True})
        [post] = wait_until(lambda: list_all(api, "/api/v1/executions", rule_id=rule["id"]),
                            timeout=60, message="the rule's core.http run")
        post = wait_until(
            lambda: (row := api.data(api.get(f"/api/v1/executions/{post['id']}")))["status"]
            in ("succeeded", "failed") and row, timeout=60, message="the post's end")
        received = list(server.received)

    assert (succeeded["status"], theirs["status"], failed["status"]) == (
        "succeeded", "failed", "failed")
    assert post["status"] == "succeeded", post["result"]
    [sent] = received
    assert (sent.method, sent.path) == ("POST", "/hooks/chat")
    text = json.loads(sent.body)["text"]
    assert text.startswith(f"{deploy['ref']} #{failed['id']} failed: ")
    assert "deploy broke" in text
    events = list_all(api, "/api/v1/events", trigger_id=trigger["id"])
    assert [(e["source"], e["caused_by_execution_id"]) for e in events] == [
        ("execution", failed["id"])]
    assert events[0]["payload"]["finished_at"] == failed["finished_at"]
    assert len(list_all(api, "/api/v1/executions", rule_id=rule["id"])) == 1
