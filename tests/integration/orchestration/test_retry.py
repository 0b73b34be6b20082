"""Retry policy: attempts as child executions, exponential backoff on durable timers."""

from __future__ import annotations

import pytest

from nameko_services.domain import models
from tests.integration import rows

pytestmark = pytest.mark.integration

FLAKY = """
import attune

def run(succeed_on=3):
    attempt = attune.context["attempt"]
    if attempt < succeed_on:
        raise RuntimeError(f"attempt {attempt} fails")
    return {"attempt": attempt}
"""
RETRY = {"max_attempts": 3, "delay_seconds": 1, "backoff_multiplier": 2.0,
         "max_delay_seconds": 60}


def gap(earlier, later) -> float:
    return (later - earlier).total_seconds()


def test_an_action_retries_with_exponential_backoff_and_succeeds_on_the_third_attempt(flow):
    flaky = flow.action(code=FLAKY, parameters={"succeed_on": {"type": "integer"}},
                        retry=RETRY)
    started = flow.run(flaky, {"succeed_on": 3})
    done = flow.wait(started["id"])

    assert done["status"] == "succeeded", done["result"]
    assert (done["attempt"], done["max_attempts"]) == (3, 3)
    assert done["result"]["output"] == {"attempt": 3}
    assert [a["status"] for a in done["result"]["attempts"]] == ["failed", "failed",
                                                                 "succeeded"]
    attempts = sorted(flow.children(done["id"]), key=lambda a: a["attempt"])
    assert [(a["attempt"], a["max_attempts"], a["status"]) for a in attempts] == [
        (1, 3, "failed"), (2, 3, "failed"), (3, 3, "succeeded")]
    assert all(a["parameters"] == {"succeed_on": 3} for a in attempts)
    assert {a["trace_id"] for a in attempts} == {done["trace_id"]}  # a retry stays in the trace
    assert attempts[0]["result"]["error"]["message"] == "attempt 1 fails"
    # attempt n + 1 is created no earlier than delay * multiplier^(n-1) after attempt n ended
    assert gap(attempts[0]["finished_at"], attempts[1]["created_at"]) >= 1.0
    assert gap(attempts[1]["finished_at"], attempts[2]["created_at"]) >= 2.0

    audit = flow.audit(done["id"])
    scheduled = [e["details"] for e in audit if e["action"] == "execution.retry_scheduled"]
    assert [(d["attempt"], d["delay_seconds"]) for d in scheduled] == [(2, 1.0), (3, 2.0)]
    assert [e["details"]["attempt"] for e in audit
            if e["action"] == "execution.attempt_started"] == [1, 2, 3]
    for attempt in attempts:
        assert any(e["action"] == "execution.failed" or e["action"] == "execution.succeeded"
                   for e in flow.audit(attempt["id"]))


def test_retries_stop_at_max_attempts_and_the_execution_fails_with_the_last_error(flow):
    flaky = flow.action(code=FLAKY, parameters={"succeed_on": {"type": "integer"}},
                        retry={"max_attempts": 2, "delay_seconds": 0})
    done = flow.wait(flow.run(flaky, {"succeed_on": 9})["id"])

    assert done["status"] == "failed"
    assert done["attempt"] == 2 and len(flow.children(done["id"])) == 2
    assert done["result"]["error"]["type"] == "RuntimeError"
    assert done["result"]["error"]["message"] == "attempt 2 fails (attempt 2 of 2)"


def test_a_pending_retry_survives_an_executor_restart(flow, platform, start_executor, engine):
    flaky = flow.action(code=FLAKY, parameters={"succeed_on": {"type": "integer"}},
                        retry={"max_attempts": 2, "delay_seconds": 3})
    started = flow.run(flaky, {"succeed_on": 2})
    rows.wait_until(lambda: rows.rows(engine, models.timers,
                                      models.timers.c.entity_id == started["id"],
                                      models.timers.c.kind == "retry"), 30)
    platform["executor"].stop()  # the only executor goes away while the timer is pending
    assert flow.get(started["id"])["status"] == "running"

    start_executor()
    done = flow.wait(started["id"])
    assert done["status"] == "succeeded" and done["attempt"] == 2
    assert not rows.rows(engine, models.timers, models.timers.c.entity_id == started["id"],
                         models.timers.c.kind == "retry")


def test_a_workflow_task_retry_policy_wraps_the_task(flow):
    flaky = flow.action(code=FLAKY, parameters={"succeed_on": {"type": "integer"}})
    wf = flow.workflow([{"name": "flaky", "action": flaky["ref"], "on_failure": "retry",
                         "retry": {"max_attempts": 3, "delay_seconds": 0.2},
                         "parameters": {"succeed_on": 2}}],
                       output={"attempt": "{{ flaky.result.attempt }}"})
    done = flow.wait(flow.run(wf)["id"])

    assert done["status"] == "succeeded", done["result"]
    assert done["result"]["output"] == {"attempt": 2}
    task = flow.tasks(done["id"])["flaky"]
    assert (task["attempt"], task["max_attempts"]) == (2, 3)
    assert [a["status"] for a in sorted(flow.children(task["id"]), key=lambda a: a["id"])] == [
        "failed", "succeeded"]


def test_on_failure_retry_aborts_the_workflow_once_attempts_run_out(flow):
    flaky = flow.action(code=FLAKY, parameters={"succeed_on": {"type": "integer"}})
    echo = flow.action(code="def run(**kw):\n    return kw\n")
    wf = flow.workflow([
        {"name": "flaky", "action": flaky["ref"], "on_failure": "retry",
         "retry": {"max_attempts": 2, "delay_seconds": 0}, "parameters": {"succeed_on": 5}},
        {"name": "after", "action": echo["ref"], "depends_on": ["flaky"]},
    ])
    done = flow.wait(flow.run(wf)["id"])

    assert done["status"] == "failed"
    tasks = flow.tasks(done["id"])
    assert "after" not in tasks and tasks["flaky"]["attempt"] == 2
