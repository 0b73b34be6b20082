"""T3.24 — a 1-second timer for 60 s gives 60 (± 5) executions, all succeeded, no backlog left
behind, while the API keeps answering."""

from __future__ import annotations

from tests.support.e2e import TERMINAL_STATUSES, wait_until
from tests.support.flows import list_all, make_rule, make_trigger, ts

RUN_SECONDS = 60
MS = 0.001 + 1e-6


def test_a_one_second_timer_runs_sixty_times_a_minute_without_backlog(api):
    trigger = make_trigger(api, "interval", {"seconds": 1})
    rule = make_rule(api, trigger, "core.echo", parameters={"message": "tick"})
    anchor = ts(trigger["created_at"])

    def events() -> list[dict]:
        return sorted(list_all(api, "/api/v1/events", trigger_id=trigger["id"]),
                      key=lambda e: ts(e["payload"]["scheduled_at"]))

    probes: list[int] = []

    def past_the_minute() -> bool:
        # While waiting, the API must keep answering (health and a list, every poll).
        probes.append(api.get("/health").status_code)
        probes.append(api.get("/api/v1/executions", params={"limit": 5}).status_code)
        return any(ts(e["payload"]["scheduled_at"]) > anchor + RUN_SECONDS for e in events())

    wait_until(past_the_minute, timeout=RUN_SECONDS + 30, interval=1.0,
               message="the timer to pass 60 s")
    api.data(api.patch(f"/api/v1/rules/{rule['id']}", json={"enabled": False}), 200)

    minute = [e for e in events() if ts(e["payload"]["scheduled_at"]) <= anchor + RUN_SECONDS + MS]
    assert 55 <= len(minute) <= 65
    assert len(minute) == RUN_SECONDS  # exactly one per second of schedule, none missed
    assert probes and set(probes) == {200}, probes

    # No backlog: every execution of the minute finishes promptly once the timer stops.
    wanted = {e["id"] for e in minute}

    def finished() -> list[dict] | None:
        runs = [r for r in list_all(api, "/api/v1/executions", rule_id=rule["id"])
                if r["event_id"] in wanted]
        done = len(runs) == len(wanted) and all(r["status"] in TERMINAL_STATUSES for r in runs)
        return runs if done else None

    runs = wait_until(finished, timeout=30, message="every execution of the minute to finish")
    assert {r["status"] for r in runs} == {"succeeded"}
    assert list_all(api, "/api/v1/executions", rule_id=rule["id"], status="scheduled") == []
    assert list_all(api, "/api/v1/executions", rule_id=rule["id"], status="requested") == []
