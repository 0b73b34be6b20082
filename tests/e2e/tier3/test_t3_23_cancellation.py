"""T3.23 — cancel: not yet running → `canceled` at once; running → `canceling`, SIGTERM to the
process group, SIGKILL after the grace period (config.e2e.yaml: cancel_grace_seconds 3) →
`canceled` with the partial output kept; a workflow / with-items cancel cascades to every
running and pending child; a terminal execution answers 409.
"""

from __future__ import annotations

import signal

from tests.support.e2e import wait_for_execution, wait_until
from tests.support.flows import make_action
from tests.support.orchestration import audit, children, execute, make_workflow, run_to_end, tasks
from tests.support.readiness import flag_key, wait_for_flag
from tests.support.services import kill

POLITE = '''
import signal, sys, time
import attune

def run(seconds=60, ready=""):
    def on_term(signum, frame):
        print("got SIGTERM, cleaning up", flush=True)
        sys.exit(0)
    signal.signal(signal.SIGTERM, on_term)
    attune.datastore.set(ready, "ready")
    for n in range(seconds * 10):
        if n % 10 == 0:
            print(f"tick {n // 10}", flush=True)
        time.sleep(0.1)
    return "finished"
'''

STUBBORN = '''
import signal, time
import attune

def run(seconds=60, ready=""):
    def on_term(signum, frame):
        print("ignoring SIGTERM", flush=True)
    signal.signal(signal.SIGTERM, on_term)
    print("working", flush=True)
    attune.datastore.set(ready, "ready")
    for _ in range(seconds * 10):
        time.sleep(0.1)
    return "finished"
'''


def cancel(api, execution_id, status=202):
    return api.data(api.post(f"/api/v1/executions/{execution_id}/cancel"), status)


def start_and_wait_ready(api, action):
    """Execute and wait until the action has installed its SIGTERM handler (it then sets its
    `ready` datastore key through the SDK: the sandbox shows it none of the test's files)."""
    ready = flag_key("t3-23")
    started = execute(api, action["ref"], {"seconds": 60, "ready": ready})
    wait_for_flag(api, ready, timeout=30, message="the action to be ready")
    assert api.data(api.get(f"/api/v1/executions/{started['id']}"))["status"] == "running"
    return started


def test_an_execution_not_yet_running_is_canceled_at_once_and_never_runs(api, platform):
    worker = kill(platform, "worker", signal.SIGSTOP)  # holds its queue for a moment
    try:
        queued = execute(api, "core.echo", {"message": "never"})
        assert wait_for_execution(api, queued["id"], ("scheduled",), timeout=15)
        answer = cancel(api, queued["id"])
        assert answer["status"] == "canceled"
    finally:
        kill(platform, "worker", signal.SIGCONT)
    assert worker
    # The delivered work message finds nothing to claim: it stays canceled, never ran.
    after = run_to_end(api, "core.echo", {"message": "next"})  # the worker has drained its queue
    assert after["status"] == "succeeded"
    final = api.data(api.get(f"/api/v1/executions/{queued['id']}"), 200)
    assert final["status"] == "canceled" and final["started_at"] is None
    assert final["worker"] is None
    assert final["result"]["error"]["type"] == "canceled"


PARAMS = {"seconds": {"type": "number"}, "ready": {"type": "string"}}


def test_a_running_execution_gets_sigterm_and_ends_canceled_with_its_partial_output(api):
    action = make_action(api, "cancels", "polite", POLITE, parameters=PARAMS)
    started = start_and_wait_ready(api, action)

    answer = cancel(api, started["id"])
    assert answer["status"] == "canceling"

    done = wait_for_execution(api, started["id"], timeout=30)
    assert done["status"] == "canceled"
    stdout = done["result"]["stdout"]
    assert "tick 0" in stdout  # partial output kept
    assert "got SIGTERM, cleaning up" in stdout  # the action's own cleanup ran
    assert done["result"]["error"]["type"] == "canceled"
    actions = [entry["action"] for entry in audit(api, started["id"])]
    assert actions.index("execution.started") < actions.index("execution.canceling") \
        < actions.index("execution.canceled")
    assert actions.count("execution.canceled") == 1

    # Terminal now: a second cancel is a conflict.
    conflict = api.post(f"/api/v1/executions/{started['id']}/cancel")
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "conflict"


def test_an_action_ignoring_sigterm_is_killed_after_the_grace_period(api):
    action = make_action(api, "cancels", "stubborn", STUBBORN, parameters=PARAMS)
    started = start_and_wait_ready(api, action)

    assert cancel(api, started["id"])["status"] == "canceling"

    done = wait_for_execution(api, started["id"], timeout=30)
    assert done["status"] == "canceled"
    assert "working" in done["result"]["stdout"]
    assert "ignoring SIGTERM" in done["result"]["stdout"]  # SIGTERM came first...
    assert done["result"]["exit_code"] == -signal.SIGKILL  # ...then SIGKILL ended it


def test_canceling_a_terminal_execution_is_409(api):
    done = run_to_end(api, "core.echo", {"message": "done"})
    assert done["status"] == "succeeded"
    response = api.post(f"/api/v1/executions/{done['id']}/cancel")
    assert response.status_code == 409
    assert "succeeded" in response.json()["error"]["message"]
    again = api.data(api.get(f"/api/v1/executions/{done['id']}"), 200)
    assert again["status"] == "succeeded"


def test_a_workflow_cancel_cascades_to_running_and_pending_children(api):
    workflow = make_workflow(api, "cancels_wf", "fan", [
        {"name": "sleepers", "action": "core.sleep", "with_items": "{{ params.items }}",
         "concurrency": 1, "parameters": {"seconds": 60}},
        {"name": "after", "action": "core.noop", "depends_on": ["sleepers"]},
    ], parameters={"items": {"type": "array", "required": True}})
    started = execute(api, workflow["ref"], {"items": [1, 2, 3]})
    sleepers = wait_until(lambda: tasks(api, started["id"]).get("sleepers"), timeout=30,
                          message="the with-items task")
    kids = wait_until(
        lambda: (k := children(api, sleepers["id"])) and len(k) == 3
        and any(c["status"] == "running" for c in k) and k,
        timeout=30, message="one running item and two pending")
    assert sorted(c["status"] for c in kids) == ["requested", "requested", "running"]

    cancel(api, started["id"])

    done = wait_for_execution(api, started["id"], timeout=60)
    assert done["status"] == "canceled"
    def all_canceled():
        found = children(api, sleepers["id"])
        return found if all(c["status"] == "canceled" for c in found) else None

    items = wait_until(all_canceled, timeout=30, message="every item canceled")
    assert len(items) == 3
    pending = {c["id"] for c in kids if c["status"] == "requested"}
    assert all(c["started_at"] is None for c in items if c["id"] in pending)  # never ran
    by_name = tasks(api, started["id"])
    assert wait_for_execution(api, by_name["sleepers"]["id"], timeout=30)["status"] == "canceled"
    assert "after" not in by_name
