"""T3.34 — an action's concurrency policy through the gateway (issue 20): one run per host at a
time, the rest wait in `scheduled` (`waiting_for_concurrency`, counted in /metrics), another
host runs meanwhile, and a worker killed with SIGKILL frees its slot for the next in line.
"""

from __future__ import annotations

import signal

import requests

from tests.support.e2e import wait_for_execution, wait_until
from tests.support.flows import make_action
from tests.support.orchestration import execute
from tests.support.services import bring_up, kill, wait_gone

SLEEP = '''
import time

def run(host, seconds=1):
    time.sleep(seconds)
    return host
'''
PARAMS = {"host": {"type": "string", "required": True}, "seconds": {"type": "number"}}


def test_a_bad_policy_is_refused_with_its_path(api):
    make_action(api, "concur", "probe", SLEEP, parameters=PARAMS)  # creates the pack
    answer = api.post("/api/v1/actions", json={
        "pack": "concur", "name": "bad", "runner_type": "python", "code": SLEEP,
        "concurrency_policy": {"limit": 0, "overflow": "drop"}})
    assert answer.status_code == 422, answer.text
    fields = answer.json()["error"]["details"]["fields"]
    assert {"concurrency_policy.limit", "concurrency_policy.overflow"} <= set(fields)


def test_one_run_per_host_waits_its_turn_and_a_killed_worker_frees_the_slot(api, platform):
    action = make_action(api, "concur", "deploy", SLEEP, parameters=PARAMS,
                         concurrency_policy={"limit": 1, "key": "{{ params.host }}"})
    assert action["concurrency_policy"] == {"limit": 1, "key": "{{ params.host }}",
                                            "overflow": "queue"}
    victim = execute(api, action["ref"], {"host": "web1", "seconds": 300})
    running = wait_for_execution(api, victim["id"], ("running",), timeout=60)
    assert running["waiting_for_concurrency"] is False
    held = execute(api, action["ref"], {"host": "web1", "seconds": 0})

    def held_back():
        row = api.data(api.get(f"/api/v1/executions/{held['id']}"), 200)
        return row["status"] == "scheduled" and row["waiting_for_concurrency"] and row

    wait_until(held_back, timeout=30, message="the second web1 run to wait for its slot")
    other = wait_for_execution(api, execute(api, action["ref"], {"host": "web2"})["id"])
    assert other["status"] == "succeeded" and other["result"]["output"] == "web2"
    assert api.data(api.get(f"/api/v1/executions/{victim['id']}"), 200)["status"] == "running"
    assert held_back()  # web2 ran while web1's slot stayed taken
    gauge = "\nattune_executions_waiting_for_concurrency "
    text = requests.get(f"{platform.api_url}/metrics", timeout=10).text
    assert f"{gauge}1.0\n" in text

    pid = kill(platform, "worker", signal.SIGKILL)
    wait_gone(pid)
    lost = wait_for_execution(api, victim["id"], timeout=60)
    assert (lost["status"], lost["result"]["error"]["type"]) == ("failed", "worker_lost")
    bring_up(platform)  # restarts the missing worker only

    done = wait_for_execution(api, held["id"], timeout=90)
    assert done["status"] == "succeeded" and done["result"]["output"] == "web1"
    assert done["waiting_for_concurrency"] is False
    assert done["started_at"] >= lost["finished_at"]
    text = requests.get(f"{platform.api_url}/metrics", timeout=10).text
    assert f"{gauge}0.0\n" in text
