"""WorkerService in a real nameko container: claim, run, record, news."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import jwt
import pytest
from nameko.testing.services import entrypoint_hook, entrypoint_waiter
from sqlalchemy import select

from nameko_services.domain import audit, execution_control, models
from nameko_services.domain import secrets as secrets_repo
from nameko_services.domain.crypto import Cipher
from nameko_services.worker import preparation
from nameko_services.worker.runtime import WorkerRuntime
from tests.integration import rows
from tests.unit.runners.processes import marker_seconds, processes_with

pytestmark = pytest.mark.integration


def test_a_scheduled_python_action_runs_and_succeeds(
    worker, write, make_action, make_execution, schedule, finished, news
):
    entry = write("actions/greet.py", """
        def run(name):
            print("greeting", name)
            return {"greeting": f"hello {name}"}
    """)
    action = make_action(entry_point=entry, parameters={"name": {"type": "string"}})
    execution = make_execution(action, parameters={"name": "ada"})
    schedule(execution)
    row = finished(execution["id"])
    assert row["status"] == "succeeded"
    result = row["result"]
    assert result["output"] == {"greeting": "hello ada"}
    assert result["stdout"] == "greeting ada\n"
    assert (result["exit_code"], result["error"], result["truncated"]) == (0, None, False)
    assert result["stderr"] == ""
    assert result["duration_ms"] >= 0
    assert row["worker"]
    assert row["started_at"] and row["finished_at"]
    statuses = rows.wait_until(lambda: [
        p["status"] for _, _, p in news if p["execution_id"] == execution["id"]
    ] if len([p for _, _, p in news if p["execution_id"] == execution["id"]]) >= 2 else None)
    assert statuses == ["running", "succeeded"]


def test_a_failing_action_ends_failed_with_exit_code_stderr_and_error(
    worker, write, make_action, make_execution, schedule, finished
):
    entry = write("actions/fail.py", """
        #!/usr/bin/env python3
        import sys
        print("Starting action...", file=sys.stderr)
        sys.exit(1)  # Force failure
    """)
    execution = make_execution(make_action(entry_point=entry))
    schedule(execution)
    row = finished(execution["id"])
    assert row["status"] == "failed"
    assert row["result"]["exit_code"] == 1
    assert row["result"]["stderr"] == "Starting action...\n"
    assert row["result"]["error"]["type"] == "nonzero_exit"
    assert row["attempt"] == 1


def test_an_inline_code_action_runs_from_a_private_folder(
    worker, make_action, make_execution, schedule, finished
):
    code = "import os\ndef run():\n    return os.getcwd()\n"
    execution = make_execution(make_action(code=code))
    schedule(execution)
    row = finished(execution["id"])
    assert row["status"] == "succeeded"
    folder = Path(row["result"]["output"])
    assert folder.name.startswith(f"exec-{execution['id']}-")
    assert folder.parent.name == str(execution["tenant_id"])  # the tenant's own code folder
    assert not folder.exists()  # removed after the run


def test_a_redelivered_work_message_does_not_run_the_action_twice(
    worker, write, make_action, make_execution, schedule, finished, engine, api_server
):
    entry = write("actions/count.py", """
        import attune
        def run():
            attune.datastore.set("ran", attune.context["execution_id"])
            return "ok"
    """)
    execution = make_execution(make_action(entry_point=entry))
    handled = []

    def count(worker_ctx, result, exc_info):
        handled.append(1)
        return len(handled) == 2

    with entrypoint_waiter(worker, "on_execution_scheduled", callback=count, timeout=30):
        schedule(execution)
        schedule(execution)
    assert finished(execution["id"])["status"] == "succeeded"
    runs = [body for method, _, _, body in api_server["calls"] if method == "POST"]
    assert runs == [{"key": "ran", "value": execution["id"], "encrypted": False}]
    with engine.connect() as conn:
        entries, _ = audit.list_entries(conn, execution["tenant_id"], "execution",
                                        str(execution["id"]), 50, 0)
    assert [e["action"] for e in entries] == ["execution.started", "execution.succeeded"]


def test_a_canceled_execution_is_not_run(
    worker, write, make_action, make_execution, schedule, current, pack
):
    marker = Path(pack["source_path"]) / "ran"
    entry = write("actions/touch.py", f"open({str(marker)!r}, 'w').close()\n")
    execution = make_execution(make_action(entry_point=entry), status="canceled")
    with entrypoint_waiter(worker, "on_execution_scheduled", timeout=30):
        schedule(execution)
    assert current(execution["id"])["status"] == "canceled"
    assert not marker.exists()


def test_declared_secrets_reach_the_action_and_are_masked(
    worker, write, make_action, make_execution, schedule, finished, engine, settings, tenant
):
    cipher = Cipher(settings.encryption_keys, settings.active_key_id)
    with engine.begin() as conn:
        secrets_repo.put(conn, cipher, tenant, "api_key", "sk-very-secret", actor_type="user",
                         actor="test")
    entry = write("actions/secret.py", """
        import attune
        def run(password):
            key = attune.secrets.get("api_key")
            print("using", key, password)
            return {"key": key, "length": len(key)}
    """)
    action = make_action(entry_point=entry, secrets=["api_key"],
                         parameters={"password": {"type": "string", "secret": True}})
    execution = make_execution(action, parameters={"password": "pw-123456"},
                               secret_parameters=["password"])
    schedule(execution)
    row = finished(execution["id"])
    assert row["status"] == "succeeded"
    assert row["result"]["stdout"] == "using *** ***\n"
    assert row["result"]["output"] == {"key": "***", "length": len("sk-very-secret")}


def test_a_missing_secret_fails_clearly(
    worker, write, make_action, make_execution, schedule, finished
):
    entry = write("actions/x.py", "def run():\n    return 1\n")
    execution = make_execution(make_action(entry_point=entry, secrets=["not_there"]))
    schedule(execution)
    row = finished(execution["id"])
    assert row["status"] == "failed"
    assert row["result"]["error"]["type"] == "secret_missing"
    assert "not_there" in row["result"]["error"]["message"]


def test_the_sdk_datastore_calls_the_gateway_with_the_execution_token(
    worker, write, make_action, make_execution, schedule, finished, api_server, settings,
    tenant,
):
    entry = write("actions/store.py", """
        import attune
        def run():
            before = attune.datastore.get("counter")
            fallback = attune.datastore.get("missing", default="dflt")
            attune.datastore.set("counter", {"n": 1}, encrypted=True, ttl_seconds=60)
            after = attune.datastore.get("counter")
            deleted = attune.datastore.delete("counter")
            again = attune.datastore.delete("counter")
            return [before, fallback, after, deleted, again]
    """)
    execution = make_execution(make_action(entry_point=entry))
    schedule(execution)
    row = finished(execution["id"])
    assert row["status"] == "succeeded", row["result"]
    assert row["result"]["output"] == [None, "dflt", {"n": 1}, True, False]
    calls = api_server["calls"]
    assert [(method, path) for method, path, _, _ in calls] == [
        ("GET", "/api/v1/datastore/counter"),
        ("GET", "/api/v1/datastore/missing"),
        ("POST", "/api/v1/datastore"),
        ("GET", "/api/v1/datastore/counter"),
        ("DELETE", "/api/v1/datastore/counter"),
        ("DELETE", "/api/v1/datastore/counter"),
    ]
    assert calls[2][3] == {"key": "counter", "value": {"n": 1}, "encrypted": True,
                           "ttl_seconds": 60}
    scheme, token = calls[0][2]["Authorization"].split(" ", 1)
    assert scheme == "Bearer"
    claims = jwt.decode(token, settings.jwt_secret, algorithms=["HS256"])
    assert claims["type"] == "execution"
    assert claims["tenant_id"] == tenant
    assert claims["execution_id"] == execution["id"]


def test_an_action_past_its_timeout_fails_with_timeout(
    worker, write, make_action, make_execution, schedule, finished
):
    entry = write("actions/slow.py", "import time\nprint('start', flush=True)\ntime.sleep(300)\n")
    execution = make_execution(make_action(entry_point=entry, timeout=0.5))
    schedule(execution)
    row = finished(execution["id"])
    assert row["status"] == "failed"
    assert row["result"]["error"]["type"] == "timeout"
    assert row["result"]["stdout"] == "start\n"


def test_canceling_a_running_execution_stops_the_process(
    worker, write, make_action, make_execution, schedule, finished, current, engine, tenant,
):
    marker = marker_seconds()
    entry = write("actions/wait.sh", f"""
        echo before-cancel
        sleep {marker}
    """)
    execution = make_execution(make_action(runner_type="shell", entry_point=entry))
    schedule(execution)
    rows.wait_until(lambda: processes_with(marker), 30)
    assert current(execution["id"])["status"] == "running"
    with engine.begin() as conn:
        execution_control.cancel(conn, tenant_id=tenant, execution_id=execution["id"],
                                 actor="user:1")
    row = finished(execution["id"])
    assert row["status"] == "canceled"
    assert row["result"]["stdout"] == "before-cancel\n"
    assert row["result"]["error"]["type"] == "canceled"
    rows.wait_until(lambda: not processes_with(marker), 10)


@pytest.mark.parametrize("values", [
    {"runner_type": "workflow", "workflow": {"tasks": []}},
    {"runner_type": "inquiry"},
    {"runner_type": "python", "code": "def run(item):\n    return item\n",
     "with_items": "{{ items }}"},
])
def test_executions_the_executor_owns_are_failed_not_run(
    values, worker, make_action, make_execution, schedule, finished
):
    execution = make_execution(make_action(**values))
    schedule(execution)
    row = finished(execution["id"])
    assert row["status"] == "failed"
    assert row["result"]["error"]["type"] == "unsupported_runner"


def test_an_execution_whose_action_is_gone_fails_action_missing(
    worker, engine, make_action, make_execution, schedule, finished
):
    """The claim reads the action with it (repository.claim); a deleted one leaves the
    execution's action_id NULL, and the run fails clearly instead of running anything."""
    action = make_action(code="def run():\n    return 1\n")
    execution = make_execution(action)
    with engine.begin() as conn:
        conn.execute(models.actions.delete().where(models.actions.c.id == action["id"]))
    schedule(execution)
    row = finished(execution["id"])
    assert row["status"] == "failed"
    assert row["result"]["error"] == {
        "type": "action_missing", "message": f"Action {execution['action_ref']} no longer exists"}


def test_a_crash_in_the_worker_fails_the_execution_with_worker_error(
    worker, make_action, make_execution, schedule, finished, monkeypatch
):
    def broken(*args, **kwargs):
        raise RuntimeError("something broke")

    monkeypatch.setattr(preparation, "prepare", broken)
    execution = make_execution(make_action(code="def run():\n    return 1\n"))
    schedule(execution)
    row = finished(execution["id"])
    assert row["status"] == "failed"
    assert row["result"]["error"] == {"type": "worker_error",
                                      "message": "RuntimeError: something broke"}


def test_an_http_action_renders_its_config_with_params_and_secrets(
    worker, make_action, make_execution, schedule, finished, api_server, engine, settings,
    tenant,
):
    cipher = Cipher(settings.encryption_keys, settings.active_key_id)
    with engine.begin() as conn:
        secrets_repo.put(conn, cipher, tenant, "api_token", "tok-abc-123", actor_type="user",
                         actor="test")
    api_server["store"]["thing"] = {"x": 1}
    action = make_action(
        runner_type="http", secrets=["api_token"],
        http_config={
            "method": "GET",
            "url": f"http://127.0.0.1:{api_server['port']}/api/v1/datastore/{{{{ params.key }}}}",
            "headers": {"Authorization": "Bearer {{ secret.api_token }}"},
        },
    )
    execution = make_execution(action, parameters={"key": "thing"})
    schedule(execution)
    row = finished(execution["id"])
    assert row["status"] == "succeeded", row["result"]
    assert row["result"]["status_code"] == 200
    assert row["result"]["output"] == {"data": {"key": "thing", "value": {"x": 1}}}
    assert api_server["calls"][-1][2]["Authorization"] == "Bearer tok-abc-123"


def test_an_http_action_outside_the_configured_allow_list_fails_destination_refused(
    worker, make_action, make_execution, schedule, finished, api_server
):
    # worker_config opens 127.0.0.1:<api_server port> only; the next port is not opened.
    url = f"http://127.0.0.1:{api_server['port'] + 1}/anything"
    execution = make_execution(make_action(runner_type="http", http_config={"url": url}))
    schedule(execution)
    row = finished(execution["id"])
    assert row["status"] == "failed"
    assert row["result"]["error"] == {
        "type": "destination_refused",
        "message": f"{url} resolves to 127.0.0.1, a loopback address; refused"
                   " (ATTUNE.http_runner.allow opens a destination)"}


def test_the_worker_heartbeats_in_the_workers_table(worker, engine):
    name = next(d for d in worker.dependencies if isinstance(d, WorkerRuntime)).runtime.name

    def beat():
        with engine.connect() as conn:
            return conn.execute(
                select(models.workers).where(models.workers.c.name == name)
            ).mappings().one_or_none()

    row = rows.wait_until(beat)
    assert row["status"] == "online"
    assert row["pid"] == os.getpid()


def test_executions_run_concurrently_without_blocking_each_other(
    worker, write, make_action, make_execution, schedule, finished, api_server
):
    # Each action waits until all three have started: this only finishes if they overlap.
    # They meet in the (stand-in) datastore, the one place their sandboxes share.
    entry = write("actions/barrier.py", """
        import time, attune
        def run(n):
            attune.datastore.set(f"started-{n}", True)
            for _ in range(3000):
                if all(attune.datastore.get(f"started-{i}") for i in range(3)):
                    return n
                time.sleep(0.01)
            raise TimeoutError("the others never started")
    """)
    action = make_action(entry_point=entry)
    executions = [make_execution(action, parameters={"n": n}) for n in range(3)]
    for execution in executions:
        schedule(execution)
    results = [finished(e["id"], deadline=60) for e in executions]
    assert [r["status"] for r in results] == ["succeeded"] * 3
    assert sorted(r["result"]["output"] for r in results) == [0, 1, 2]


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_a_node_action_runs_through_the_worker(
    worker, write, make_action, make_execution, schedule, finished
):
    entry = write("actions/hello.js", """
        exports.run = async ({ name }) => ({ hello: name });
    """)
    execution = make_execution(make_action(runner_type="node", entry_point=entry),
                               parameters={"name": "js"})
    schedule(execution)
    row = finished(execution["id"])
    assert row["status"] == "succeeded", row["result"]
    assert row["result"]["output"] == {"hello": "js"}


def test_ping_answers_with_the_worker_name(worker):
    with entrypoint_hook(worker, "ping") as ping:
        reply = ping()
    assert reply["status"] == "ok"
    assert reply["worker"]
