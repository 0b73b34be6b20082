"""T1.1 — an interval timer runs its action repeatedly, each firing a full event → result flow."""

import itertools

from tests.support.e2e import wait_until
from tests.support.flows import LogWatch, list_all, make_rule, make_trigger, register_pack, ts

INTERVAL = 5.0


def test_interval_timer_fires_every_interval_and_each_event_runs_the_action(api, platform):
    logs = LogWatch(platform.run_dir)
    pack = register_pack(api)
    assert "test_pack.echo" in pack["actions"]
    trigger = make_trigger(api, "interval", {"seconds": INTERVAL})
    rule = make_rule(api, trigger, "test_pack.echo",
                     parameters={"message": "tick {{ trigger.data.fire_count }}"})

    events = wait_until(
        lambda: (e := list_all(api, "/api/v1/events", trigger_id=trigger["id"])) and len(e) >= 3
        and e, timeout=4 * INTERVAL + 10, message="3 timer events")
    events = sorted(events, key=lambda e: e["id"])[:3]
    api.data(api.patch(f"/api/v1/rules/{rule['id']}", json={"enabled": False}))

    # Timer fires every 5 seconds: each firing is scheduled on the grid created_at + k·interval,
    # so consecutive scheduled times are exactly one interval apart (no drift).
    assert all(e["source"] == "timer" for e in events)
    scheduled = [ts(e["payload"]["scheduled_at"]) for e in events]
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(scheduled)]
    assert gaps == [INTERVAL, INTERVAL], gaps
    assert all(ts(e["payload"]["fired_at"]) >= ts(e["payload"]["scheduled_at"]) for e in events)
    created = ts(trigger["created_at"])
    assert abs((scheduled[0] - created) / INTERVAL - round((scheduled[0] - created) / INTERVAL)) \
        < 1e-3

    # Each timer event creates an enforcement, and each enforcement an execution.
    event_ids = {e["id"] for e in events}
    enforcements = [f for f in list_all(api, "/api/v1/enforcements", rule_id=rule["id"])
                    if f["event_id"] in event_ids]
    assert sorted(f["event_id"] for f in enforcements) == sorted(event_ids)
    assert all(f["execution_id"] for f in enforcements)

    def finished():
        runs = [api.data(api.get(f"/api/v1/executions/{f['execution_id']}")) for f in enforcements]
        return runs if all(r["finished_at"] for r in runs) else None

    executions = wait_until(finished, timeout=60, message="the 3 executions to finish")
    for execution, event in zip(sorted(executions, key=lambda x: x["event_id"]),
                                sorted(events, key=lambda e: e["id"]), strict=True):
        assert execution["status"] == "succeeded", execution
        assert execution["rule_id"] == rule["id"] and execution["event_id"] == event["id"]
        # Action output captured in the execution result.
        expected = f"tick {event['payload']['fire_count']}"
        assert execution["result"]["output"] == expected
        assert expected in execution["result"]["stdout"]
        assert execution["result"]["exit_code"] == 0
    assert all(f["status"] == "scheduled" for f in
               (api.data(api.get(f"/api/v1/enforcements/{f['id']}")) for f in enforcements))

    # No errors in any service log during the flow.
    assert logs.new_errors() == []
