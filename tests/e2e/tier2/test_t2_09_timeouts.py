"""T2.9 — timeouts per action, per workflow task, per workflow, and the system default.

The action's whole process group is killed (SIGTERM, then SIGKILL after the grace), the
execution ends `failed` with `error.type: "timeout"`, nothing is left behind, and the worker
keeps working. Actions run in a sandbox with its own PID namespace, so the test finds their
processes from the host by a marker in their command line.
"""

from pathlib import Path

import requests

from tests.support.e2e import wait_for_execution, wait_until
from tests.support.flows import make_action, ts
from tests.support.orchestration import execute, make_workflow, run_to_end, tasks
from tests.unit.runners.processes import marker_seconds, processes_with

SLEEPER = '''
import subprocess, time

def run(marker, seconds=60):
    # `sleep <marker>`: a duration no other process uses, so the test finds this helper from the
    # host in /proc (the sandbox's own pids mean nothing there).
    subprocess.Popen(["sleep", marker])
    print("helper started", flush=True)
    time.sleep(seconds)
    return "finished"
'''
SLEEPER_PARAMETERS = {"marker": {"type": "string", "required": True},
                      "seconds": {"type": "number"}}


def _helper_and_leader(marker: str) -> tuple[int, int] | None:
    """The host pids of the action's `sleep <marker>` helper and of its parent, the action's
    own process (None until the helper runs)."""
    helpers = processes_with(marker)
    if len(helpers) != 1:
        return None
    status = _status(helpers[0])
    return (helpers[0], int(status["PPid"])) if status else None


def _status(pid: int) -> dict[str, str] | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def reaped(pid: int) -> bool:
    """The process no longer exists: it exited and its parent collected it (no zombie)."""
    return _status(pid) is None


def test_an_action_over_its_timeout_is_killed_with_its_children_and_the_worker_goes_on(
    api, platform
):
    action = make_action(api, "timeouts", "sleeper", SLEEPER, timeout=5,
                         parameters=SLEEPER_PARAMETERS)
    marker = marker_seconds()
    started = execute(api, action["ref"], {"marker": marker, "seconds": 60})
    # Found while the run is in flight (it has 5 s): the helper and the action that started it.
    helper, leader = wait_until(lambda: _helper_and_leader(marker), timeout=30,
                                message="the action's helper process to run")
    assert "python" in Path(f"/proc/{leader}/cmdline").read_bytes().decode(errors="replace")
    wait_for_execution(api, started["id"], ("running",), timeout=30)

    done = wait_for_execution(api, started["id"], timeout=40)

    assert done["status"] == "failed"
    assert done["result"]["error"]["type"] == "timeout"
    assert "timed out after 5 s" in done["result"]["error"]["message"]
    assert done["result"]["exit_code"] in (-15, -9)  # SIGTERM, or SIGKILL after the grace
    assert 5 <= ts(done["finished_at"]) - ts(done["started_at"]) < 60
    assert "helper started" in done["result"]["stdout"]  # its output up to the kill is kept
    wait_until(lambda: reaped(leader) and reaped(helper) and not processes_with(marker),
               timeout=15, message="the action and the process it started to be gone (no zombies)")

    # The worker stays healthy: the next execution runs normally.
    after = run_to_end(api, "core.echo", {"message": "still alive"})
    assert after["status"] == "succeeded" and after["result"]["output"] == "still alive"
    health = requests.get(f"{platform.api_url}/health", timeout=10).json()
    assert health["checks"]["worker"] == "ok"


def test_a_task_timeout_overrides_the_actions_own(api):
    workflow = make_workflow(api, "timeouts_task", "slow_task", [
        {"name": "nap", "action": "core.sleep", "timeout": 2,
         "parameters": {"seconds": 30}}])  # core.sleep itself allows an hour

    done = run_to_end(api, workflow["ref"], timeout=40)

    nap = tasks(api, done["id"])["nap"]
    assert nap["status"] == "failed" and nap["result"]["error"]["type"] == "timeout"
    assert done["status"] == "failed" and done["result"]["error"]["type"] == "timeout"


def test_a_workflow_over_its_timeout_fails_and_its_running_task_is_canceled(api):
    workflow = make_workflow(api, "timeouts_wf", "slow_workflow", [
        {"name": "nap", "action": "core.sleep", "parameters": {"seconds": 30}},
        {"name": "never", "action": "core.noop", "depends_on": ["nap"]},
    ], timeout=3)

    done = run_to_end(api, workflow["ref"], timeout=40)

    assert done["status"] == "failed"
    assert done["result"]["error"]["type"] == "timeout"
    assert "Workflow timed out after 3 s" in done["result"]["error"]["message"]
    assert 3 <= ts(done["finished_at"]) - ts(done["started_at"]) < 30
    by_name = tasks(api, done["id"])
    assert by_name["nap"]["status"] == "canceled" and "never" not in by_name


def test_an_action_without_a_timeout_gets_the_system_default(api):
    """config.e2e.yaml sets worker.default_timeout_seconds to 60."""
    action = make_action(api, "timeouts_default", "sleeper", SLEEPER,
                         parameters=SLEEPER_PARAMETERS)
    marker = marker_seconds()
    done = run_to_end(api, action["ref"], {"marker": marker, "seconds": 600}, timeout=120)

    assert done["status"] == "failed"
    assert done["result"]["error"]["type"] == "timeout"
    assert "timed out after 60 s" in done["result"]["error"]["message"]
    wait_until(lambda: not processes_with(marker), timeout=15,
               message="the process the action started to be gone")
