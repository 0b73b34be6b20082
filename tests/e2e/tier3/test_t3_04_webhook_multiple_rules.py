"""T3.4 — one webhook call, three rules: one event, one enforcement and one execution per rule,
each rule seeing the same payload; a disabled rule on the same trigger does nothing."""

from __future__ import annotations

from tests.support.e2e import wait_for_execution, wait_until
from tests.support.flows import fire_webhook, list_all, make_action, make_rule, make_trigger

CODE = '''
def run(rule, payload):
    return {"rule": rule, "payload": payload}
'''


def test_one_webhook_event_fires_every_enabled_rule_once_with_the_same_payload(api):
    action = make_action(api, "multi", "record", CODE,
                         parameters={"rule": {"type": "string"}, "payload": {"type": "object"}})
    trigger = make_trigger(api, "webhook")
    rules = [make_rule(api, trigger, action["ref"],
                       parameters={"rule": f"r{i}", "payload": "{{ trigger.data }}"})
             for i in range(3)]
    disabled = make_rule(api, trigger, action["ref"], enabled=False,
                         parameters={"rule": "off", "payload": "{{ trigger.data }}"})
    payload = {"service": "billing", "count": 3, "tags": ["a", "b"]}

    receipt = fire_webhook(api, trigger, payload)

    events = list_all(api, "/api/v1/events", trigger_id=trigger["id"])
    assert [e["id"] for e in events] == [receipt["event_id"]]
    def three_enforcements() -> list[dict] | None:
        found = list_all(api, "/api/v1/enforcements", event_id=receipt["event_id"])
        return found if len(found) >= 3 else None

    enforcements = wait_until(three_enforcements, timeout=30, message="three enforcements")
    assert sorted(e["rule_id"] for e in enforcements) == sorted(r["id"] for r in rules)
    outputs = {}
    for rule in rules:
        runs = list_all(api, "/api/v1/executions", rule_id=rule["id"])
        assert len(runs) == 1 and runs[0]["event_id"] == receipt["event_id"]
        done = wait_for_execution(api, runs[0]["id"])
        assert done["status"] == "succeeded"
        outputs[done["result"]["output"]["rule"]] = done["result"]["output"]["payload"]
    assert outputs == {f"r{i}": payload for i in range(3)}
    assert list_all(api, "/api/v1/executions", rule_id=disabled["id"]) == []
    assert len(list_all(api, "/api/v1/enforcements", event_id=receipt["event_id"])) == 3
