"""T2.5 — a rule fires only when its criteria match the event (and the datastore)."""

import pytest

from tests.support.e2e import wait_for_execution, wait_until
from tests.support.flows import fire_webhook, list_all, make_rule, make_trigger


def events_of(api, trigger):
    return list_all(api, "/api/v1/events", trigger_id=trigger["id"])


def test_only_the_critical_webhook_creates_an_enforcement_and_an_execution(api):
    trigger = make_trigger(api, "webhook")
    rule = make_rule(api, trigger, "core.echo",
                     criteria='{{ trigger.data.status == "critical" }}',
                     parameters={"message": "{{ trigger.data.status }}"})

    info = fire_webhook(api, trigger, {"status": "info"})
    critical = fire_webhook(api, trigger, {"status": "critical"})

    # Both webhooks made events; only the matching one an enforcement and an execution.
    wait_until(lambda: len(events_of(api, trigger)) == 2, timeout=15, message="2 events")
    enforcement = wait_until(
        lambda: list_all(api, "/api/v1/enforcements", event_id=critical["event_id"]),
        timeout=15, message="the enforcement")[0]
    execution = wait_for_execution(api, enforcement["execution_id"])
    assert execution["status"] == "succeeded"
    assert execution["result"]["output"] == "critical"
    assert list_all(api, "/api/v1/enforcements", event_id=info["event_id"]) == []
    assert [e["id"] for e in list_all(api, "/api/v1/executions", rule_id=rule["id"])] == [
        execution["id"]]


@pytest.mark.parametrize(("criteria", "payloads", "matching"), [
    ("{{ trigger.data.severity == 'high' }}",
     [{"severity": "low"}, {"severity": "high"}], [1]),
    ("{{ trigger.data.count > 100 }}", [{"count": 5}, {"count": 101}], [1]),
    ("{{ trigger.data.environment in ['prod', 'staging'] }}",
     [{"environment": "dev"}, {"environment": "staging"}, {"environment": "prod"}], [1, 2]),
    ("{{ trigger.data.value > datastore.threshold }}", [{"value": 10}, {"value": 90}], [1]),
])
def test_complex_criteria_select_the_matching_events(api, criteria, payloads, matching):
    api.data(api.post("/api/v1/datastore", json={"key": "threshold", "value": 50}), (200, 201))
    trigger = make_trigger(api, "webhook")
    make_rule(api, trigger, "core.noop", criteria=criteria)

    receipts = [fire_webhook(api, trigger, payload) for payload in payloads]
    wait_until(lambda: len(events_of(api, trigger)) == len(payloads), timeout=15,
               message="every event")
    matched = wait_until(lambda: [i for i, r in enumerate(receipts) if list_all(
        api, "/api/v1/enforcements", event_id=r["event_id"])] == matching or None,
        timeout=15, message=f"enforcements for events {matching}")
    assert matched
