"""T3.20 secrets reach the action on stdin only: never in any process's environment or command
line, and masked as *** everywhere they could surface (output, API, audit, service logs)."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

from tests.support.e2e import unique_name, wait_for_execution, wait_until
from tests.support.flows import make_action
from tests.unit.runners.processes import marker_seconds, processes_with

CODE = '''
import hashlib, os, subprocess, sys, time
import attune


def run(marker, token, hold=4.0):
    value = attune.secrets.get("api_key")
    # A child whose command line is the test's marker: from the host, the test finds it, and
    # this process as its parent (the sandbox shows the action none of the test's files).
    child = subprocess.Popen(["sleep", marker])
    print("stdout has", value, "and", token)
    print("stderr has", value, file=sys.stderr)
    time.sleep(hold)
    child.kill()
    child.wait()
    return {"sha256": hashlib.sha256(value.encode()).hexdigest(), "echo": value,
            "token": token, "argv": sys.argv, "env_has_it": value in repr(dict(os.environ)),
            "pid": os.getpid(), "child_pid": child.pid}
'''


def proc_text(pid: int, name: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/{name}").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return b""


def parent_of(pid: int) -> int:
    """The parent of host process `pid`, as the host sees it."""
    return int(proc_text(pid, "stat").decode(errors="replace").rsplit(")", 1)[1].split()[1])


def inner_pid(pid: int) -> int:
    """Host process `pid`'s pid in its innermost PID namespace (the sandbox's, for an action)."""
    for line in proc_text(pid, "status").decode(errors="replace").splitlines():
        if line.startswith("NSpid:"):
            return int(line.split()[-1])
    raise AssertionError(f"no NSpid for {pid}")


def ancestors(pid: int) -> list[int]:
    """pid, its parent, grandparent... up to (not including) init."""
    chain = []
    while pid > 1 and len(chain) < 20:
        chain.append(pid)
        stat = proc_text(pid, "stat").decode(errors="replace")
        if not stat:
            break
        pid = parent_of(pid)
    return chain


def test_secrets_travel_on_stdin_and_are_masked_everywhere(api, platform):
    secret = f"secret123-{uuid.uuid4().hex}"
    token = f"tok-{uuid.uuid4().hex}"
    api.data(api.post("/api/v1/secrets", json={"key": "api_key", "value": secret}), 201)
    action = make_action(api, unique_name("sec").replace("-", "_"), "use_secret", CODE,
                         secrets=["api_key"], parameters={
                             "marker": {"type": "string", "required": True},
                             "token": {"type": "string", "secret": True},
                             "hold": {"type": "number"}})
    marker = marker_seconds()
    execution = api.data(api.post("/api/v1/executions", json={
        "action": action["ref"], "parameters": {"marker": marker, "token": token}}), 201)
    assert execution["parameters"]["token"] == "***"

    # The action's child carries the marker; its parent (host pid) is the running action.
    child = wait_until(lambda: processes_with(marker), timeout=60,
                       message="the action's marked child")
    assert len(child) == 1, child
    pid = parent_of(child[0])
    seen_as = (inner_pid(pid), inner_pid(child[0]))  # checked against what the action reports
    worker_pid = int((platform.run_dir / "pids" / "worker.pid").read_text().split()[0])
    inspected = {*ancestors(child[0]), worker_pid}
    assert {pid, child[0]} <= inspected and len(inspected) >= 3
    assert worker_pid in ancestors(pid), "the action is not a descendant of the worker"
    for number in inspected:
        for where in ("environ", "cmdline"):
            raw = proc_text(number, where)
            assert secret.encode() not in raw, f"secret in /proc/{number}/{where}"
            assert token.encode() not in raw, f"secret parameter in /proc/{number}/{where}"
    assert proc_text(pid, "environ"), "the running action's environment was not readable"

    done = wait_for_execution(api, execution["id"])
    assert done["status"] == "succeeded", done
    output = done["result"]["output"]
    # The processes inspected above were this action and its child.
    assert (output["pid"], output["child_pid"]) == seen_as
    # The action really received the value...
    assert output["sha256"] == hashlib.sha256(secret.encode()).hexdigest()
    assert output["env_has_it"] is False and secret not in " ".join(output["argv"])
    # ...and every copy of it that came back is masked.
    assert output["echo"] == "***" and output["token"] == "***"
    assert "stdout has *** and ***" in done["result"]["stdout"]
    assert "stderr has ***" in done["result"]["stderr"]
    for path in (f"/api/v1/executions/{execution['id']}", "/api/v1/executions",
                 "/api/v1/secrets", "/api/v1/secrets/api_key",
                 f"/api/v1/audit?entity_type=execution&entity_id={execution['id']}",
                 "/api/v1/audit?limit=200"):
        body = api.get(path).text
        assert secret not in body and token not in body, path
    logs = sorted((platform.run_dir / "logs").glob("*.log"))
    assert logs
    for log in logs:
        text = log.read_text(errors="replace")
        assert secret not in text and token not in text, log


def test_the_worker_process_holds_no_tenant_secret_in_its_environment(api, platform):
    secret = f"idle-{uuid.uuid4().hex}"
    api.data(api.post("/api/v1/secrets", json={"key": "idle_key", "value": secret}), 201)
    for name in ("worker", "executor", "gateway"):
        pid = int((platform.run_dir / "pids" / f"{name}.pid").read_text().split()[0])
        assert os.path.exists(f"/proc/{pid}"), name
        for where in ("environ", "cmdline"):
            assert secret.encode() not in proc_text(pid, where), (name, where)
