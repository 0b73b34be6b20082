"""T3.2 — disabling a rule stops its timer within one interval, an in-flight execution finishes
normally, and re-enabling resumes the timer without a burst of the missed points."""

from __future__ import annotations

import itertools

from tests.support.e2e import TERMINAL_STATUSES, wait_for_execution, wait_until
from tests.support.flows import list_all, make_rule, make_trigger, ts

INTERVAL = 2.0


def scheduled(api, trigger) -> list[float]:
    events = list_all(api, "/api/v1/events", trigger_id=trigger["id"])
    return sorted(ts(e["payload"]["scheduled_at"]) for e in events)


def fired_at_least(api, trigger, count: int) -> list[float] | None:
    points = scheduled(api, trigger)
    return points if len(points) >= count else None


def test_disabling_a_rule_stops_its_timer_and_re_enabling_resumes_it(api):
    trigger = make_trigger(api, "interval", {"seconds": INTERVAL})
    # Each run outlives the interval, so one is in flight whenever the rule is disabled.
    rule = make_rule(api, trigger, "core.sleep", parameters={"seconds": 3})
    control = make_trigger(api, "interval", {"seconds": 1})
    control_rule = make_rule(api, control, "core.noop")

    wait_until(lambda: len(list_all(api, "/api/v1/executions", rule_id=rule["id"])) >= 2,
               timeout=30, message="two executions")
    disabled = api.data(api.patch(f"/api/v1/rules/{rule['id']}", json={"enabled": False}), 200)
    assert disabled["enabled"] is False
    off_at = ts(disabled["updated_at"])
    in_flight = [e for e in list_all(api, "/api/v1/executions", rule_id=rule["id"])
                 if e["status"] not in TERMINAL_STATUSES]
    assert in_flight, "a 3 s run should be in flight on a 2 s timer"

    # Let the scheduler run for a while (the control timer's fires are the clock).
    base = len(scheduled(api, control))
    wait_until(lambda: fired_at_least(api, control, base + 6), timeout=30,
               message="six more control fires")
    points = scheduled(api, trigger)
    assert [p for p in points if p > off_at + INTERVAL] == []  # stopped within one interval
    assert len([p for p in points if p > off_at]) <= 1
    for execution in in_flight:  # in-flight runs complete normally
        assert wait_for_execution(api, execution["id"])["status"] == "succeeded"

    before = len(points)
    enabled = api.data(api.patch(f"/api/v1/rules/{rule['id']}", json={"enabled": True}), 200)
    on_at = ts(enabled["updated_at"])
    resumed = wait_until(lambda: fired_at_least(api, trigger, before + 2), timeout=30,
                         message="the timer to resume")
    new_points = resumed[before:]
    # No burst of the points missed while disabled: at most the one within the 1 s resume
    # grace before re-enabling, then on schedule, one interval apart.
    assert len([p for p in new_points if p < on_at]) <= 1
    assert all(abs(b - a - INTERVAL) <= 0.0011 for a, b in itertools.pairwise(new_points))
    api.data(api.patch(f"/api/v1/rules/{rule['id']}", json={"enabled": False}), 200)
    api.data(api.patch(f"/api/v1/rules/{control_rule['id']}", json={"enabled": False}), 200)
