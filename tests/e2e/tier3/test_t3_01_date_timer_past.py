"""T3.1 — a date timer in the past fires once, at once, when a rule starts using it (documented in
api.md: "a date in the past fires at once; afterwards status: expired"), never again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.support.e2e import wait_for_execution, wait_until
from tests.support.flows import list_all, make_rule, make_trigger, ts


def test_a_date_in_the_past_fires_exactly_once_at_once_and_expires(api):
    past = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
    trigger = make_trigger(api, "date", {"date": past.isoformat().replace("+00:00", "Z")})
    assert trigger["status"] == "active"
    rule = make_rule(api, trigger, "core.echo", parameters={"message": "late but here"})

    execution = wait_until(lambda: list_all(api, "/api/v1/executions", rule_id=rule["id"]),
                           timeout=30, message="the past date's execution")[0]
    assert wait_for_execution(api, execution["id"])["status"] == "succeeded"
    events = list_all(api, "/api/v1/events", trigger_id=trigger["id"])
    assert len(events) == 1 and events[0]["source"] == "timer"
    # It fired for its own (past) date point, and right after the rule made it runnable.
    assert ts(events[0]["payload"]["scheduled_at"]) == past.timestamp()
    assert ts(events[0]["payload"]["fired_at"]) >= ts(rule["created_at"])
    assert execution["event_id"] == events[0]["id"]
    assert api.data(api.get(f"/api/v1/triggers/{trigger['id']}"), 200)["status"] == "expired"

    # Disabling and re-enabling the rule does not fire an expired date again; a control timer's
    # fires prove the sensor has had time to act on it.
    api.data(api.patch(f"/api/v1/rules/{rule['id']}", json={"enabled": False}), 200)
    api.data(api.patch(f"/api/v1/rules/{rule['id']}", json={"enabled": True}), 200)
    control = make_trigger(api, "interval", {"seconds": 0.5})
    control_rule = make_rule(api, control, "core.noop")
    wait_until(lambda: len(list_all(api, "/api/v1/events", trigger_id=control["id"])) >= 3,
               timeout=30, message="three control fires")
    assert len(list_all(api, "/api/v1/events", trigger_id=trigger["id"])) == 1
    assert len(list_all(api, "/api/v1/executions", rule_id=rule["id"])) == 1
    api.data(api.patch(f"/api/v1/rules/{control_rule['id']}", json={"enabled": False}), 200)
