"""T2.8 — a flaky action is retried with exponential backoff until its third attempt succeeds.

Each attempt is its own child execution (attempt n of max_attempts) under the execution that
was asked for, which ends with the final attempt's status and result. (That a pending retry
survives an executor restart is proven in tests/integration/orchestration/test_retry.py.)
"""

from tests.support.e2e import wait_for_execution
from tests.support.flows import make_action, ts
from tests.support.orchestration import audit, children, execute

FLAKY = '''
import attune

def run():
    attempt = attune.context["attempt"]
    if attempt < 3:
        raise RuntimeError(f"attempt {attempt} failed")
    return {"succeeded_on": attempt}
'''
POLICY = {"max_attempts": 3, "delay_seconds": 2, "backoff_multiplier": 2.0,
          "max_delay_seconds": 60}


def test_two_failures_then_success_with_2s_then_4s_backoff(api):
    action = make_action(api, "retry_pack", "flaky", FLAKY, retry=POLICY)
    started = execute(api, action["ref"])
    assert started["max_attempts"] == 3

    done = wait_for_execution(api, started["id"], timeout=60)

    assert done["status"] == "succeeded", done
    assert done["result"]["output"] == {"succeeded_on": 3}
    assert (done["attempt"], done["max_attempts"]) == (3, 3)  # retry count in the metadata
    attempts = children(api, done["id"])
    assert [(a["attempt"], a["max_attempts"], a["status"]) for a in attempts] == [
        (1, 3, "failed"), (2, 3, "failed"), (3, 3, "succeeded")]
    assert [a["result"]["error"]["message"] for a in attempts[:2]] == [
        "attempt 1 failed", "attempt 2 failed"]
    # Exponential backoff: 2 s after the first failure, 4 s after the second.
    first_wait = ts(attempts[1]["created_at"]) - ts(attempts[0]["finished_at"])
    second_wait = ts(attempts[2]["created_at"]) - ts(attempts[1]["finished_at"])
    assert first_wait >= 2.0 and second_wait >= 4.0
    # Each retry is logged separately, with its delay.
    entries = audit(api, done["id"])
    scheduled = [e["details"] for e in entries if e["action"] == "execution.retry_scheduled"]
    assert [(d["attempt"], d["delay_seconds"]) for d in scheduled] == [(2, 2.0), (3, 4.0)]
    assert [e["details"]["attempt"] for e in entries
            if e["action"] == "execution.attempt_started"] == [1, 2, 3]
    for attempt in attempts:
        actions = [e["action"] for e in audit(api, attempt["id"])]
        assert actions[-1] == f"execution.{attempt['status']}"


def test_max_attempts_is_honoured_and_the_last_error_is_reported(api):
    action = make_action(api, "retry_pack2", "always_fails",
                         "def run():\n    raise RuntimeError('never works')\n",
                         retry={"max_attempts": 3, "delay_seconds": 0.5})
    done = wait_for_execution(api, execute(api, action["ref"])["id"], timeout=60)

    assert done["status"] == "failed"
    assert len(children(api, done["id"])) == 3 and done["attempt"] == 3
    assert done["result"]["error"]["type"] == "RuntimeError"
    assert "never works" in done["result"]["error"]["message"]
    assert "attempt 3 of 3" in done["result"]["error"]["message"]
