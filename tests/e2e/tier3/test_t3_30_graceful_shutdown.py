"""T3.30 — SIGTERM drains a service: the worker finishes its in-flight execution, takes nothing
new (the work stays queued for the next worker), marks itself offline and exits 0; executor,
sensor and notifier leave their queues and exit 0; a gateway closes its WebSockets with 1001
and exits 0.

Exit codes are only visible to a process's parent, so each check SIGTERMs a second instance
this test starts itself (the same command `attune up` uses), next to the session's platform.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
import requests
from sqlalchemy import text

from nameko_services.cli import command_for
from tests.support.e2e import PROJECT_ROOT, NotificationSocket, service_log_errors, wait_until
from tests.support.flows import make_action
from tests.support.orchestration import execute
from tests.support.readiness import flag_key, wait_for_flag
from tests.support.services import bring_up, kill, wait_gone

SLOW = '''
import time
import attune

def run(seconds=6, ready=""):
    attune.datastore.set(ready, "ready")
    time.sleep(seconds)
    print("done sleeping", flush=True)
    return "finished"
'''
PARAMS = {"seconds": {"type": "number"}, "ready": {"type": "string"}}
WORK_QUEUE = "evt-executor-execution.scheduled--worker.on_execution_scheduled"


def start_extra(platform, name: str, **env: str) -> subprocess.Popen:
    """A second instance of a service, logging to <run_dir>/logs/<name>-t330.log."""
    log = open(Path(platform.run_dir, "logs", f"{name}-t330.log"), "ab")  # noqa: SIM115
    return subprocess.Popen(command_for(name, Path(platform.config)), cwd=PROJECT_ROOT,
                            env={**platform.env, "PYTHONUNBUFFERED": "1", **env},
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def consumers(platform, queue: str) -> int:
    """attune_queue_consumers of `queue`, read from GET /metrics."""
    body = requests.get(f"{platform.api_url}/metrics", timeout=10).text
    prefix = f'attune_queue_consumers{{queue="{queue}"}} '
    lines = [line for line in body.splitlines() if line.startswith(prefix)]
    return int(float(lines[0].split()[-1])) if lines else 0


def stop(proc: subprocess.Popen, timeout: float = 60.0) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def test_a_worker_finishes_its_run_takes_nothing_new_and_exits_zero(api, platform, database):
    kill(platform, "worker", signal.SIGTERM)  # the session's worker drains (it is idle)...
    wait_gone(int(Path(platform.run_dir, "pids", "worker.pid").read_text()))
    extra = start_extra(platform, "worker")  # ...so the run goes to this one
    try:
        code, inflight, untouched, name = _drain_extra_worker(api, platform, database, extra)
    finally:
        if extra.poll() is None:
            extra.kill()
        bring_up(platform)  # the session's worker again, whatever happened
    assert code == 0
    done = api.data(api.get(f"/api/v1/executions/{inflight['id']}"), 200)
    assert done["status"] == "succeeded"  # in-flight work completed and its result saved
    assert done["worker"] == name
    assert "done sleeping" in done["result"]["stdout"]
    assert untouched["status"] == "scheduled" and untouched["worker"] is None  # nothing new
    assert _worker_row(database, extra.pid).status == "offline"  # last write, after draining
    errors = [line for line in service_log_errors(platform.run_dir)
              if line.startswith("worker-t330")]
    assert not errors, errors

    # The session's worker is back (bring_up above): the queued message was kept for it.
    wait_until(lambda: api.data(api.get(f"/api/v1/executions/{untouched['id']}"))["status"]
               == "succeeded", timeout=60, message="the queued execution to run on the new worker")


def _worker_row(database, pid):
    with database.connect() as conn:
        return conn.execute(text("SELECT name, status FROM workers WHERE pid = :pid"
                                 " ORDER BY heartbeat_at DESC LIMIT 1"), {"pid": pid}).one_or_none()


def _drain_extra_worker(api, platform, database, extra):
    """Run a slow action on `extra`, SIGTERM it mid-run, queue more work; its exit code."""
    name = wait_until(lambda: _worker_row(database, extra.pid), timeout=60,
                      message="the extra worker's heartbeat").name
    action = make_action(api, "shutdown", "slow", SLOW, parameters=PARAMS)
    ready = flag_key("t3-30")  # set by the action through the SDK once it runs
    inflight = execute(api, action["ref"], {"seconds": 10, "ready": ready})
    wait_for_flag(api, ready, timeout=60, message="the action to start")

    extra.send_signal(signal.SIGTERM)
    wait_until(lambda: consumers(platform, WORK_QUEUE) == 0, timeout=30,
               message="the draining worker to leave its work queue")
    assert extra.poll() is None  # still finishing the run in flight
    later = execute(api, "core.echo", {"message": "after SIGTERM"})
    code = extra.wait(timeout=90)
    untouched = api.data(api.get(f"/api/v1/executions/{later['id']}"), 200)
    return code, inflight, untouched, name


@pytest.mark.parametrize("name", ["executor", "sensor", "notifier"])
def test_a_service_leaves_its_queue_and_exits_zero_on_sigterm(platform, name):
    queue = f"rpc-{name}"
    before = consumers(platform, queue)
    assert before >= 1
    extra = start_extra(platform, name)
    try:
        wait_until(lambda: consumers(platform, queue) == before + 1, timeout=60,
                   message=f"a second {name} consuming {queue}")
        assert stop(extra) == 0
    finally:
        if extra.poll() is None:
            extra.kill()
    wait_until(lambda: consumers(platform, queue) == before, timeout=30,
               message=f"{queue} back to {before} consumer(s)")
    health = requests.get(f"{platform.api_url}/health", timeout=10).json()
    assert health["status"] == "ok"


def test_a_gateway_closes_websockets_with_1001_and_exits_zero(platform, api, tmp_path):
    port = int(os.environ.get("ATTUNE_T330_GATEWAY_PORT", "0")) or _free_port()
    # A run dir of its own: a gateway binds <run_dir>/api/api.sock, and taking over the
    # session's would leave the session's sandboxes with no way to the API after it exits.
    extra = start_extra(platform, "gateway", ATTUNE_API_PORT=str(port),
                        ATTUNE_RUN_DIR=str(tmp_path / "run"))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(f"{base}/health"), timeout=60, message="the extra gateway")
        sock = NotificationSocket.connect(f"ws://127.0.0.1:{port}/ws", api.token)
        sock.send({"action": "ping"})
        assert sock.recv()["event"] == "pong"
        extra.send_signal(signal.SIGTERM)
        assert sock.close_code(timeout=30) == 1001
        sock.close()
        assert extra.wait(timeout=60) == 0
    finally:
        if extra.poll() is None:
            extra.kill()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=3).status_code in (200, 503)
    except requests.RequestException:
        return False


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
