"""T3.3 — 3 s, 5 s and 7 s timers run side by side: 7, 4 and 3 fires in their first 21 s, each
point exactly on its own schedule (anchor + k·interval: no drift), each fire running its rule."""

from __future__ import annotations

from tests.support.e2e import wait_for_execution, wait_until
from tests.support.flows import list_all, make_action, make_rule, make_trigger, ts

WINDOW = 21.0
EXPECTED = {3: 7, 5: 4, 7: 3}
MS = 0.001 + 1e-6  # timestamps are served with millisecond resolution

CODE = '''
def run(label):
    return label
'''


def test_three_timers_fire_independently_on_their_own_schedules(api):
    timers = {}
    for seconds in EXPECTED:
        action = make_action(api, "timers3", f"tick_{seconds}", CODE,
                             parameters={"label": {"type": "string"}})
        trigger = make_trigger(api, "interval", {"seconds": seconds})
        rule = make_rule(api, trigger, action["ref"], parameters={"label": f"every {seconds}"})
        timers[seconds] = (trigger, rule)

    def events_of(trigger):
        return sorted(list_all(api, "/api/v1/events", trigger_id=trigger["id"]),
                      key=lambda e: ts(e["payload"]["scheduled_at"]))

    # Wait until each timer has fired past the 21 s window (so the window is complete).
    for seconds, (trigger, _) in timers.items():
        wait_until(lambda t=trigger, n=EXPECTED[seconds]: len(events_of(t)) > n,
                   timeout=WINDOW + 20, message=f"the {seconds} s timer to pass 21 s")

    for seconds, (trigger, rule) in timers.items():
        anchor = ts(trigger["created_at"])
        events = events_of(trigger)
        points = [ts(e["payload"]["scheduled_at"]) for e in events]
        in_window = [p for p in points if p <= anchor + WINDOW + MS]
        assert len(in_window) == EXPECTED[seconds], (seconds, points)
        for k, point in enumerate(points, start=1):  # anchor + k·interval, whatever k
            assert abs(point - (anchor + k * seconds)) <= MS, (seconds, k, point - anchor)
        assert [e["payload"]["fire_count"] for e in events] == list(range(1, len(events) + 1))
        runs = list_all(api, "/api/v1/executions", rule_id=rule["id"])
        assert {r["event_id"] for r in runs} == {e["id"] for e in events}
        for run in runs:
            done = wait_for_execution(api, run["id"])
            assert done["status"] == "succeeded"
            assert done["result"]["output"] == f"every {seconds}"
    for _, rule in timers.values():
        api.data(api.patch(f"/api/v1/rules/{rule['id']}", json={"enabled": False}), 200)
