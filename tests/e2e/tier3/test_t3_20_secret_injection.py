"""T3.20 secrets reach the action on stdin only: never in any process's environment or command
line, and masked as *** everywhere they could surface (output, API, audit, service logs)."""

from __future__ import annotations

import hashlib
import os
import tempfile
import uuid
from pathlib import Path

from tests.support.e2e import unique_name, wait_for_execution, wait_until
from tests.support.flows import make_action

CODE = '''
import hashlib, os, sys, time
import attune


def run(pidfile, token, hold=4.0):
    value = attune.secrets.get("api_key")
    with open(pidfile, "w") as handle:
        handle.write(str(os.getpid()))
    print("stdout has", value, "and", token)
    print("stderr has", value, file=sys.stderr)
    time.sleep(hold)
    return {"sha256": hashlib.sha256(value.encode()).hexdigest(), "echo": value,
            "token": token, "argv": sys.argv, "env_has_it": value in repr(dict(os.environ))}
'''


def proc_text(pid: int, name: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/{name}").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return b""


def ancestors(pid: int) -> list[int]:
    """pid, its parent, grandparent... up to (not including) init."""
    chain = []
    while pid > 1 and len(chain) < 20:
        chain.append(pid)
        stat = proc_text(pid, "stat").decode(errors="replace")
        if not stat:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return chain


def test_secrets_travel_on_stdin_and_are_masked_everywhere(api, platform):
    secret = f"secret123-{uuid.uuid4().hex}"
    token = f"tok-{uuid.uuid4().hex}"
    api.data(api.post("/api/v1/secrets", json={"key": "api_key", "value": secret}), 201)
    action = make_action(api, unique_name("sec").replace("-", "_"), "use_secret", CODE,
                         secrets=["api_key"], parameters={
                             "pidfile": {"type": "string", "required": True},
                             "token": {"type": "string", "secret": True},
                             "hold": {"type": "number"}})
    pidfile = Path(tempfile.gettempdir()) / f"attune-t320-{uuid.uuid4().hex}.pid"
    execution = api.data(api.post("/api/v1/executions", json={
        "action": action["ref"], "parameters": {"pidfile": str(pidfile), "token": token}}), 201)
    assert execution["parameters"]["token"] == "***"

    pid = int(wait_until(lambda: pidfile.is_file() and pidfile.read_text().strip(), timeout=60,
                         message="the action to write its pid"))
    worker_pid = int((platform.run_dir / "pids" / "worker.pid").read_text().split()[0])
    inspected = {*ancestors(pid), worker_pid}
    assert pid in inspected and len(inspected) >= 2
    for number in inspected:
        for where in ("environ", "cmdline"):
            raw = proc_text(number, where)
            assert secret.encode() not in raw, f"secret in /proc/{number}/{where}"
            assert token.encode() not in raw, f"secret parameter in /proc/{number}/{where}"
    assert proc_text(pid, "environ"), "the running action's environment was not readable"

    done = wait_for_execution(api, execution["id"])
    pidfile.unlink(missing_ok=True)
    assert done["status"] == "succeeded", done
    output = done["result"]["output"]
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
