"""T3.12 — a worker killed with SIGKILL: its running execution ends `failed` (`worker_lost`),
work queued meanwhile is delivered to the new worker, and the platform recovers by itself
(the only operator step is the process restart `attune up` does, as a supervisor would).
"""

from __future__ import annotations

import signal

import requests

from tests.support.e2e import wait_for_execution, wait_until
from tests.support.flows import make_action
from tests.support.orchestration import execute, run_to_end
from tests.support.services import bring_up, health, kill, wait_gone

LONG = '''
import time

def run(seconds=30):
    print("started", flush=True)
    time.sleep(seconds)
    return "finished"
'''


def test_a_killed_workers_run_fails_as_worker_lost_and_queued_work_reaches_the_new_worker(
    api, platform
):
    action = make_action(api, "crash", "long", LONG, parameters={"seconds": {"type": "number"}})
    retried = make_action(api, "crash", "long_retried", LONG,
                          parameters={"seconds": {"type": "number"}},
                          retry={"max_attempts": 2, "delay_seconds": 0})
    victim = execute(api, action["ref"], {"seconds": 30})
    running = wait_for_execution(api, victim["id"], ("running",), timeout=30)
    retry_parent = execute(api, retried["ref"], {"seconds": 30})

    def first_attempt_running():
        kids = api.data(api.get("/api/v1/executions",
                                params={"parent_execution_id": retry_parent["id"]}), 200)
        return [k for k in kids if k["status"] == "running"]

    attempt = wait_until(first_attempt_running, timeout=30,
                         message="the first attempt of the retried action to run")[0]
    old_worker = running["worker"]
    assert old_worker and attempt["worker"] == old_worker

    pid = kill(platform, "worker", signal.SIGKILL)
    wait_gone(pid)
    # Still `running` in the database right after the kill: nobody has noticed yet.
    assert api.data(api.get(f"/api/v1/executions/{victim['id']}"), 200)["status"] == "running"

    # Work requested while no worker is alive waits in its queue (nothing is lost).
    queued = execute(api, "core.echo", {"message": "after the crash"})

    # /health names the failing part while the worker is gone.
    down = wait_until(lambda: (h := health(platform)).get("status") == "degraded" and h,
                      timeout=30, message="/health to turn degraded")
    assert down["checks"]["worker"] != "ok"
    assert all(down["checks"][part] == "ok" for part in ("database", "broker", "executor"))

    failed = wait_for_execution(api, victim["id"], timeout=60)
    assert failed["status"] == "failed"
    assert failed["result"]["error"]["type"] == "worker_lost"
    assert old_worker in failed["result"]["error"]["message"]
    assert failed["finished_at"] is not None

    # The retried action's attempt was lost too; its policy allows another attempt.
    lost_attempt = wait_for_execution(api, attempt["id"], timeout=60)
    assert lost_attempt["status"] == "failed"
    assert lost_attempt["result"]["error"]["type"] == "worker_lost"
    assert api.data(api.get(f"/api/v1/executions/{queued['id']}"), 200)["status"] == "scheduled"

    bring_up(platform)  # restarts the missing worker only

    delivered = wait_for_execution(api, queued["id"], timeout=60)
    assert delivered["status"] == "succeeded"
    assert delivered["result"]["output"] == "after the crash"
    assert delivered["worker"] and delivered["worker"] != old_worker

    def second_attempt():
        kids = api.data(api.get("/api/v1/executions",
                                params={"parent_execution_id": retry_parent["id"]}), 200)
        return [k for k in kids if k["attempt"] == 2]

    again = wait_until(second_attempt, timeout=60, message="a second attempt after worker_lost")
    assert again[0]["worker"] in (None, delivered["worker"])

    fresh = run_to_end(api, "core.echo", {"message": "recovered"})
    assert fresh["status"] == "succeeded" and fresh["worker"] != old_worker
    up = wait_until(lambda: (h := health(platform)).get("status") == "ok" and h, timeout=60,
                    message="/health to be ok again")
    assert set(up["checks"].values()) == {"ok"}

    text = requests.get(f"{platform.api_url}/metrics", timeout=10).text
    assert f'attune_worker_heartbeat_age_seconds{{status="lost",worker="{old_worker}"}}' in text
    assert 'attune_executions{status="failed"}' in text
