"""T1.4 — a webhook POST becomes an event, its payload reaches the action as typed parameters."""

from tests.support.e2e import wait_for_execution, wait_until
from tests.support.flows import fire_webhook, list_all, make_action, make_rule, make_trigger

PAYLOAD = {
    "event_type": "user.signup",
    "user_id": 12345,
    "email": "test@example.com",
    "metadata": {"source": "web", "campaign": "spring2024"},
}

CODE = '''
def run(payload, user_id, email, campaign):
    print(f"signup {user_id} {email}")
    return {"payload": payload, "user_id": user_id, "email": email, "campaign": campaign}
'''


def test_webhook_payload_flows_from_event_to_action_output(api):
    action = make_action(api, "hooks", "echo_payload", CODE, parameters={
        "payload": {"type": "object", "required": True},
        "user_id": {"type": "integer", "required": True},
        "email": {"type": "string"},
        "campaign": {"type": "string"},
    })
    trigger = make_trigger(api, "webhook")
    other = make_trigger(api, "webhook")
    # The trigger has its own unique URL.
    assert trigger["webhook_url"] == f"/api/v1/webhooks/{trigger['id']}"
    assert other["webhook_url"] != trigger["webhook_url"]
    rule = make_rule(api, trigger, action["ref"], parameters={
        "payload": "{{ trigger.data }}",
        "user_id": "{{ trigger.data.user_id }}",
        "email": "{{ trigger.data.email }}",
        "campaign": "{{ trigger.data.metadata.campaign }}",
    })

    receipt = fire_webhook(api, trigger, PAYLOAD)
    # The event exists as soon as the 202 is returned, with the POST body as its payload.
    event = api.data(api.get(f"/api/v1/events/{receipt['event_id']}"))
    assert event["payload"] == PAYLOAD
    assert event["source"] == "webhook" and event["trigger_id"] == trigger["id"]

    enforcement = wait_until(
        lambda: list_all(api, "/api/v1/enforcements", event_id=event["id"]), timeout=15,
        message="the enforcement")[0]
    assert enforcement["rule_id"] == rule["id"]
    execution = wait_for_execution(api, enforcement["execution_id"])
    assert execution["status"] == "succeeded", execution
    # The execution received the webhook data as input, keeping JSON types.
    assert execution["parameters"] == {"payload": PAYLOAD, "user_id": 12345,
                                       "email": "test@example.com", "campaign": "spring2024"}
    # The action read the payload fields.
    assert execution["result"]["output"]["payload"] == PAYLOAD
    assert execution["result"]["output"]["user_id"] == 12345
    assert "signup 12345 test@example.com" in execution["result"]["stdout"]
    assert execution["event_id"] == event["id"] and execution["rule_id"] == rule["id"]


def test_webhook_needs_its_token(api):
    trigger = make_trigger(api, "webhook")
    anonymous = api.session.__class__()
    response = anonymous.post(f"{api.base_url}{trigger['webhook_url']}", json={"a": 1},
                              timeout=10)
    assert response.status_code == 401
    bad = anonymous.post(f"{api.base_url}{trigger['webhook_url']}", json={"a": 1}, timeout=10,
                         headers={"X-Attune-Webhook-Token": "wrong"})
    assert bad.status_code == 401
    assert list_all(api, "/api/v1/events", trigger_id=trigger["id"]) == []
