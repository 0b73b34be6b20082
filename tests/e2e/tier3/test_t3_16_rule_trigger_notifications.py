"""T3.16 — rule.triggered reaches the tenant's clients only for rules with notify_on_trigger,
with the event's details, and a burst of firings is coalesced (counted, never lost)."""

from __future__ import annotations

from tests.support.e2e import wait_for_execution, wait_until
from tests.support.flows import fire_webhook, list_all, make_rule, make_trigger

BURST = 15


def rule_news(m: dict) -> bool:
    return m.get("event") == "rule.triggered"


def test_only_rules_that_ask_for_it_notify_with_the_event_details(api, make_api, make_ws):
    ws = make_ws(api)
    ws.subscribe("rule")
    stranger = make_ws(make_api())
    stranger.subscribe("rule")
    trigger = make_trigger(api, "webhook")
    loud = make_rule(api, trigger, "core.noop", notify_on_trigger=True)
    quiet = make_rule(api, trigger, "core.noop")
    assert loud["notify_on_trigger"] is True and quiet["notify_on_trigger"] is False

    receipt = fire_webhook(api, trigger, {"host": "web-1", "level": "high"})
    [message] = ws.collect_until(lambda m: True, timeout=30, keep=rule_news)
    assert message["entity_type"] == "rule" and message["entity_id"] == loud["id"]
    data = message["data"]
    assert data["rule_id"] == loud["id"] and data["rule_ref"] == loud["ref"]
    assert data["event_id"] == receipt["event_id"] and data["count"] == 1
    assert data["event"]["payload"] == {"host": "web-1", "level": "high"}
    assert data["event"]["trigger_id"] == trigger["id"]
    [run] = list_all(api, "/api/v1/executions", rule_id=loud["id"])
    assert data["execution_id"] == run["id"]

    # Both rules ran; only the loud one was announced, and only to this tenant.
    for rule in (loud, quiet):
        [execution] = list_all(api, "/api/v1/executions", rule_id=rule["id"])
        wait_for_execution(api, execution["id"])
    assert [m for m in ws.sync() if rule_news(m)] == []
    assert stranger.sync() == []


def test_a_burst_of_firings_is_coalesced_into_fewer_counted_messages(api, make_ws):
    ws = make_ws(api)
    ws.subscribe("rule")
    trigger = make_trigger(api, "webhook")
    rule = make_rule(api, trigger, "core.noop", notify_on_trigger=True)

    receipts = [fire_webhook(api, trigger, {"n": n}) for n in range(BURST)]
    wait_until(lambda: len(list_all(api, "/api/v1/enforcements", rule_id=rule["id"])) == BURST,
               timeout=60, message="every firing enforced")
    counted: list[dict] = []

    def all_counted(message: dict) -> bool:
        counted.append(message)
        return sum(m["data"]["count"] for m in counted) >= BURST

    messages = ws.collect_until(all_counted, timeout=30, keep=rule_news)
    assert sum(m["data"]["count"] for m in messages) == BURST  # every firing accounted for
    assert len(messages) < BURST  # but not one message each
    assert messages[0]["data"]["count"] == 1  # the first goes out at once
    assert messages[-1]["data"]["event_id"] in {r["event_id"] for r in receipts}
    assert [m for m in ws.sync() if rule_news(m)] == []
