"""T3.8 — an action fires a webhook of its tenant with its execution token; the event records
the execution that caused it, the downstream rule runs, and a rule that triggers itself is
stopped by the chain-depth limit (default 10) with a clear error on the refused event."""

from __future__ import annotations

from tests.support.e2e import wait_for_execution, wait_until
from tests.support.flows import list_all, make_action, make_rule, make_trigger

MAX_CHAIN_DEPTH = 10  # config.e2e.yaml: ATTUNE.max_chain_depth (the default)

POST_WEBHOOK = '''
import attune


def run(trigger_id):
    """Fire a webhook of this tenant through the SDK, which authenticates with the execution's
    own token (the sandbox's only way back into the platform: the gateway's unix socket)."""
    return attune.webhooks.fire(trigger_id, {"sent_by": attune.context["execution_id"]})
'''


def events_of(api, trigger) -> list[dict]:
    return sorted(list_all(api, "/api/v1/events", trigger_id=trigger["id"]), key=lambda e: e["id"])


def test_an_action_fires_a_webhook_whose_rule_runs_the_next_action(api):
    poster = make_action(api, "chain", "post_webhook", POST_WEBHOOK,
                         parameters={"trigger_id": {"type": "integer", "required": True}})
    webhook_b = make_trigger(api, "webhook")
    rule_b = make_rule(api, webhook_b, "core.echo",
                       parameters={"message": "from {{ trigger.data.sent_by }}"})

    a = api.data(api.post("/api/v1/executions", json={
        "action": poster["ref"], "parameters": {"trigger_id": webhook_b["id"]}}), 201)
    a = wait_for_execution(api, a["id"])
    assert a["status"] == "succeeded", a["result"]
    receipt = a["result"]["output"]
    assert receipt["trigger_id"] == webhook_b["id"]

    event = api.data(api.get(f"/api/v1/events/{receipt['event_id']}"), 200)
    assert event["source"] == "webhook"
    assert event["payload"] == {"sent_by": a["id"]}
    assert event["caused_by_execution_id"] == a["id"]
    assert event["chain_depth"] == 1 and event["error"] is None

    b = wait_until(lambda: list_all(api, "/api/v1/executions", rule_id=rule_b["id"]),
                   timeout=30, message="rule B's execution")
    assert len(b) == 1 and b[0]["event_id"] == event["id"]
    b = wait_for_execution(api, b[0]["id"])
    assert b["status"] == "succeeded"
    assert b["result"]["output"] == f"from {a['id']}"


def test_a_rule_that_triggers_itself_stops_at_the_chain_depth_limit(api):
    poster = make_action(api, "loop", "post_webhook", POST_WEBHOOK,
                         parameters={"trigger_id": {"type": "integer", "required": True}})
    loop = make_trigger(api, "webhook")
    rule = make_rule(api, loop, poster["ref"], parameters={"trigger_id": loop["id"]})

    api.data(api.post(loop["webhook_url"], json={"start": True},
                      headers={"X-Attune-Webhook-Token": loop["webhook_token"]}), 202)

    refused = wait_until(lambda: [e for e in events_of(api, loop) if e["error"]], timeout=120,
                         message="the event refused for its depth")
    assert len(refused) == 1
    refused = refused[0]
    depth = MAX_CHAIN_DEPTH + 1
    assert refused["chain_depth"] == depth
    assert f"chain depth {depth} exceeds the limit of {MAX_CHAIN_DEPTH}" in refused["error"]

    runs = sorted(list_all(api, "/api/v1/executions", rule_id=rule["id"]), key=lambda e: e["id"])
    for run in runs:
        wait_for_execution(api, run["id"])
    events = events_of(api, loop)
    # The external event (depth 0) plus one per run; one run per accepted depth 0..limit.
    assert [e["chain_depth"] for e in events] == list(range(depth + 1))
    assert len(runs) == MAX_CHAIN_DEPTH + 1
    for event, run in zip(events[1:], runs, strict=True):
        assert event["caused_by_execution_id"] == run["id"]
    assert [r["event_id"] for r in runs] == [e["id"] for e in events[:-1]]
    assert list_all(api, "/api/v1/enforcements", event_id=refused["id"]) == []
    assert list_all(api, "/api/v1/executions", rule_id=rule["id"]) != [] and len(
        list_all(api, "/api/v1/executions", rule_id=rule["id"])) == len(runs)  # no more ran
