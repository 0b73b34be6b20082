"""T1.8 — a failing action ends `failed` with its exit code, stderr and error, without retry."""

import requests

from tests.support.e2e import wait_for_execution, wait_until
from tests.support.flows import fire_webhook, list_all, make_action, make_rule, make_trigger

FAILING = '''#!/usr/bin/env python3
import sys
print("Starting action...", file=sys.stderr)
sys.exit(1)  # Force failure
'''


def test_a_failing_action_is_recorded_failed_with_its_evidence_and_not_retried(api, platform):
    action = make_action(api, "failing", "always_fail", FAILING)
    trigger = make_trigger(api, "webhook")
    rule = make_rule(api, trigger, action["ref"])
    ws = api.notifications()
    try:
        ws.subscribe("execution")
        receipt = fire_webhook(api, trigger, {"go": True})
        enforcement = wait_until(
            lambda: list_all(api, "/api/v1/enforcements", event_id=receipt["event_id"]),
            timeout=15, message="the enforcement")[0]
        execution = wait_for_execution(api, enforcement["execution_id"])
        updates = ws.collect_until(
            lambda m: m.get("data", {}).get("status") == "failed",
            keep=lambda m: m.get("event") == "execution.status_changed"
            and m.get("entity_id") == execution["id"], timeout=30)
    finally:
        ws.close()

    assert execution["status"] == "failed"
    result = execution["result"]
    assert result["exit_code"] == 1
    assert "Starting action..." in result["stderr"]
    assert result["error"] and result["error"]["message"]
    assert result["error"]["type"]

    # requested → scheduled → running → failed, in order, both in the audit trail and live.
    trail = api.data(api.get("/api/v1/audit", params={"entity_type": "execution",
                                                      "entity_id": execution["id"]}))
    actions = [entry["action"] for entry in trail]
    assert actions == ["execution.created", "execution.scheduled", "execution.started",
                       "execution.failed"], actions
    assert [entry["details"].get("from") for entry in trail[1:]] == [
        "requested", "scheduled", "running"]
    assert [m["data"]["status"] for m in updates] == ["scheduled", "running", "failed"]
    # The worker recorded it; the executor's enforcement points at it.
    assert execution["worker"]
    assert enforcement["rule_id"] == rule["id"]
    enforcement_now = api.data(api.get(f"/api/v1/enforcements/{enforcement['id']}"))
    assert enforcement_now["status"] == "scheduled"
    assert enforcement_now["execution_id"] == execution["id"]

    # No retry without a retry policy: one attempt, one execution for the rule.
    assert execution["attempt"] == 1 and execution["max_attempts"] == 1
    assert len(list_all(api, "/api/v1/executions", rule_id=rule["id"])) == 1

    # The system stays healthy and keeps running work.
    health = requests.get(f"{platform.api_url}/health", timeout=10).json()
    assert health["status"] == "ok", health
    ok = api.data(api.post("/api/v1/executions", json={"action": "core.echo",
                                                       "parameters": {"message": "still here"}}),
                  201)
    assert wait_for_execution(api, ok["id"])["status"] == "succeeded"
