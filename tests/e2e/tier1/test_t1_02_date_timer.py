"""T1.2 — a date timer fires exactly once, then is expired; a past date fires at once."""

import time
from datetime import UTC, datetime, timedelta

from tests.support.e2e import wait_for_execution, wait_until
from tests.support.flows import list_all, make_rule, make_trigger, register_pack, ts


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def events_of(api, trigger):
    return list_all(api, "/api/v1/events", trigger_id=trigger["id"])


def test_a_future_date_fires_once_at_its_time_and_never_again(api):
    register_pack(api)
    when = datetime.now(UTC) + timedelta(seconds=5)
    trigger = make_trigger(api, "date", {"date": iso(when)})
    marker = f"marker-{time.time_ns()}"
    rule = make_rule(api, trigger, "test_pack.echo", parameters={"message": marker})
    assert events_of(api, trigger) == []

    events = wait_until(lambda: events_of(api, trigger), timeout=30, message="the date event")
    # Fires at the scheduled time: scheduled exactly at the date, never before it.
    assert ts(events[0]["payload"]["scheduled_at"]) == ts(iso(when))
    assert ts(events[0]["payload"]["fired_at"]) >= ts(iso(when))

    enforcements = wait_until(
        lambda: list_all(api, "/api/v1/enforcements", rule_id=rule["id"]), timeout=15,
        message="the enforcement")
    execution = wait_for_execution(api, enforcements[0]["execution_id"])
    assert execution["status"] == "succeeded" and execution["result"]["output"] == marker

    # Timer marked as expired once it fired.
    trigger_now = api.data(api.get(f"/api/v1/triggers/{trigger['id']}"))
    assert trigger_now["status"] == "expired"

    # Wait past where a second firing would show (a re-enabled rule cannot revive it either).
    api.data(api.patch(f"/api/v1/rules/{rule['id']}", json={"enabled": False}))
    api.data(api.patch(f"/api/v1/rules/{rule['id']}", json={"enabled": True}))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert len(events_of(api, trigger)) == 1
        time.sleep(1)
    assert len(list_all(api, "/api/v1/enforcements", rule_id=rule["id"])) == 1
    assert len(list_all(api, "/api/v1/executions", rule_id=rule["id"])) == 1


def test_a_date_in_the_past_fires_immediately_and_only_once(api):
    register_pack(api)
    trigger = make_trigger(api, "date", {"date": iso(datetime.now(UTC) - timedelta(hours=1))})
    rule = make_rule(api, trigger, "test_pack.echo", parameters={"message": "late"})
    events = wait_until(lambda: events_of(api, trigger), timeout=15, message="the past date")
    enforcement = wait_until(
        lambda: list_all(api, "/api/v1/enforcements", rule_id=rule["id"]), timeout=15,
        message="the enforcement")[0]
    assert wait_for_execution(api, enforcement["execution_id"])["status"] == "succeeded"
    assert api.data(api.get(f"/api/v1/triggers/{trigger['id']}"))["status"] == "expired"
    # A second rule on the expired trigger does not make it fire again.
    make_rule(api, trigger, "test_pack.echo", parameters={"message": "again"})
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        assert len(events_of(api, trigger)) == len(events) == 1
        time.sleep(1)
