"""T1.3 — a six-field cron (seconds first) fires exactly at its second marks, in its timezone."""

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.support.e2e import wait_for_execution, wait_until
from tests.support.flows import list_all, make_rule, make_trigger, register_pack, ts

TZ = "Asia/Kathmandu"  # UTC+05:45: an hour field read in UTC instead would never match


@pytest.mark.parametrize("expression", ["*/5 * * * * *", "0,3,6,12 * * * * *", "0 * * * * *",
                                        "*/2 * * * *"])
def test_cron_expressions_of_the_plan_are_accepted(api, expression):
    trigger = make_trigger(api, "cron", {"expression": expression, "timezone": "UTC"})
    assert trigger["parameters"]["expression"] == expression


def test_bad_cron_expressions_and_timezones_are_422(api):
    for parameters in ({"expression": "61 * * * * *"}, {"expression": "* * *"},
                       {"expression": "*/5 * * * * *", "timezone": "Mars/Olympus"}):
        response = api.post("/api/v1/triggers", json={"name": "bad_cron", "type": "cron",
                                                      "parameters": parameters})
        assert response.status_code == 422, (parameters, response.text)


def test_cron_fires_only_at_its_second_marks_in_its_timezone(api):
    register_pack(api)
    zone = ZoneInfo(TZ)
    local = datetime.now(UTC).astimezone(zone)
    if local.minute == 59 and local.second > 20:  # keep the whole window inside one local hour
        time.sleep(61 - local.second)
    now = datetime.now(UTC)
    start = now.replace(microsecond=0) + timedelta(seconds=3)
    marks = sorted({(start.second + offset) % 60 for offset in (1, 4, 7, 13)})
    hour = start.astimezone(zone).hour
    expression = f"{','.join(map(str, marks))} * {hour} * * *"
    trigger = make_trigger(api, "cron", {"expression": expression, "timezone": TZ})
    rule = make_rule(api, trigger, "test_pack.echo",
                     parameters={"message": "{{ trigger.data.scheduled_at }}"})
    window_end = start + timedelta(seconds=16)
    expected = [start + timedelta(seconds=s) for s in range(0, 16)
                if (start + timedelta(seconds=s)).second in marks
                and (start + timedelta(seconds=s)).astimezone(zone).hour == hour]
    assert len(expected) >= 3

    def fired():
        events = list_all(api, "/api/v1/events", trigger_id=trigger["id"])
        return events if len(events) >= len(expected) else None

    wait_until(fired, timeout=40, message=f"{len(expected)} cron events")
    wait_until(lambda: datetime.now(UTC) > window_end + timedelta(seconds=2), timeout=30)
    api.data(api.patch(f"/api/v1/rules/{rule['id']}", json={"enabled": False}))
    events = list_all(api, "/api/v1/events", trigger_id=trigger["id"])
    in_window = sorted(ts(e["payload"]["scheduled_at"]) for e in events
                       if ts(e["payload"]["scheduled_at"]) <= window_end.timestamp())
    # Executions occur at exactly the listed seconds and at no other second mark.
    assert in_window == [m.timestamp() for m in expected]
    for event in events:
        assert datetime.fromtimestamp(ts(event["payload"]["scheduled_at"]), UTC).second in marks

    runs = [wait_for_execution(api, f["execution_id"])
            for f in list_all(api, "/api/v1/enforcements", rule_id=rule["id"])]
    assert runs and all(r["status"] == "succeeded" for r in runs)
    assert {r["result"]["output"] for r in runs} == {e["payload"]["scheduled_at"] for e in events}
