"""The python and node SDKs talk to the gateway's datastore routes with the execution token."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from runners.base import Outcome, RunRequest
from runners.node import NodeRunner
from runners.python import PythonRunner
from runners.sandbox import API_SOCKET
from tests.support.datastore_stub import datastore_stub
from tests.support.sandboxes import open_dir, sandbox_for


@pytest.fixture
def folder() -> Iterator[Path]:
    with open_dir() as path:
        yield path


@pytest.fixture
def datastore_server(folder: Path) -> Iterator[dict]:
    """The stand-in datastore routes, also on the unix socket the sandbox shows as the API."""
    with datastore_stub(folder / "api.sock") as server:
        yield server


def request(folder: Path, name: str, source: str, server: dict, runner: str) -> RunRequest:
    (folder / name).write_text(textwrap.dedent(source).lstrip())
    (folder / name).chmod(0o644)
    return RunRequest(
        execution_id=7, action_ref="p.sdk", runner_type=runner, working_dir=folder,
        entry_point=folder / name, timeout_s=30,
        context={"execution_id": 7, "api_url": server["url"], "api_socket": API_SOCKET,
                 "token": "exec-token-7"},
        sandbox=sandbox_for(folder / "state", folder, api_socket=server["socket"]),
    )


def expected_calls():
    return [
        ("GET", "/api/v1/datastore/cfg%2Fapi_url"),
        ("POST", "/api/v1/datastore"),
        ("GET", "/api/v1/datastore/cfg%2Fapi_url"),
        ("DELETE", "/api/v1/datastore/cfg%2Fapi_url"),
        ("DELETE", "/api/v1/datastore/cfg%2Fapi_url"),
    ]


def test_python_sdk_get_set_delete(folder, datastore_server):
    source = """
        import attune
        def run():
            missing = attune.datastore.get("cfg/api_url")
            attune.datastore.set("cfg/api_url", "https://api.example.com", ttl_seconds=30)
            value = attune.datastore.get("cfg/api_url")
            return [missing, value, attune.datastore.delete("cfg/api_url"),
                    attune.datastore.delete("cfg/api_url")]
    """
    result = PythonRunner().run(
        request(folder, "a.py", source, datastore_server, "python")
    )
    assert result.outcome is Outcome.SUCCEEDED, result
    assert result.output == [None, "https://api.example.com", True, False]
    calls = datastore_server["calls"]
    assert [(m, p) for m, p, _, _ in calls] == expected_calls()
    assert all(h["Authorization"] == "Bearer exec-token-7" for _, _, h, _ in calls)
    assert calls[1][3] == {"key": "cfg/api_url", "value": "https://api.example.com",
                           "encrypted": False, "ttl_seconds": 30}


def test_python_sdk_raises_datastore_error_on_refusal(folder, datastore_server):
    source = """
        import attune
        def run():
            attune.datastore.set("forbidden", 1)
    """
    result = PythonRunner().run(
        request(folder, "a.py", source, datastore_server, "python")
    )
    assert result.outcome is Outcome.FAILED
    assert result.error["type"] == "DatastoreError"
    assert "HTTP 403" in result.error["message"]


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_node_sdk_get_set_delete(folder, datastore_server):
    source = """
        const attune = require('attune');
        exports.run = async () => {
          const missing = await attune.datastore.get('cfg/api_url');
          await attune.datastore.set('cfg/api_url', 'https://api.example.com', { ttlSeconds: 30 });
          const value = await attune.datastore.get('cfg/api_url');
          return [missing, value, await attune.datastore.delete('cfg/api_url'),
                  await attune.datastore.delete('cfg/api_url')];
        };
    """
    result = NodeRunner().run(request(folder, "a.js", source, datastore_server, "node"))
    assert result.outcome is Outcome.SUCCEEDED, result
    assert result.output == [None, "https://api.example.com", True, False]
    calls = datastore_server["calls"]
    assert [(m, p) for m, p, _, _ in calls] == expected_calls()
    assert all(h["Authorization"] == "Bearer exec-token-7" for _, _, h, _ in calls)
    assert calls[1][3] == {"key": "cfg/api_url", "value": "https://api.example.com",
                           "encrypted": False, "ttl_seconds": 30}


def assert_fired_as_execution_7(result, server: dict) -> None:
    """The run returned the event the stub made, after one POST with the execution's token."""
    assert result.outcome is Outcome.SUCCEEDED, result
    assert result.output == {"event_id": 1012, "trigger_id": 12}
    (call,) = server["calls"]
    assert call[:2] == ("POST", "/api/v1/webhooks/12") and call[3] == {"sent_by": 7}
    assert call[2]["Authorization"] == "Bearer exec-token-7"


def test_python_sdk_fires_a_webhook_with_the_execution_token(folder, datastore_server):
    source = """
        import attune
        def run():
            return attune.webhooks.fire(12, {"sent_by": attune.context["execution_id"]})
    """
    result = PythonRunner().run(request(folder, "a.py", source, datastore_server, "python"))
    assert_fired_as_execution_7(result, datastore_server)


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_node_sdk_fires_a_webhook_with_the_execution_token(folder, datastore_server):
    source = """
        const attune = require('attune');
        exports.run = async () =>
          attune.webhooks.fire(12, { sent_by: attune.context.execution_id });
    """
    result = NodeRunner().run(request(folder, "a.js", source, datastore_server, "node"))
    assert_fired_as_execution_7(result, datastore_server)


def test_a_run_reaches_the_gateway_socket_made_again_after_its_sandbox(folder):
    """A gateway that restarts makes a new socket; runs (and warm servers) made before it must
    reach that one, not the old file their sandbox was given."""
    import dataclasses
    import threading

    from tests.integration.rows import wait_until

    sock = folder / "api" / "api.sock"
    sock.parent.mkdir()
    source = """
        import time
        import attune
        def run():
            first = attune.datastore.get("k")
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    value = attune.datastore.get("k")
                except Exception:
                    value = None
                if value == "second":
                    return [first, value]
                time.sleep(0.05)
            return [first, "never reached the new socket"]
    """
    results = []
    with datastore_stub(sock) as before:
        before["store"]["k"] = "first"
        req = dataclasses.replace(request(folder, "a.py", source, before, "python"),
                                  sandbox=sandbox_for(folder / "state", folder, api_socket=sock))
        thread = threading.Thread(target=lambda: results.append(PythonRunner().run(req)))
        thread.start()
        wait_until(lambda: before["calls"], 30)
    with datastore_stub(sock) as after:
        after["store"]["k"] = "second"
        thread.join(60)
    assert results and results[0].outcome is Outcome.SUCCEEDED, results
    assert results[0].output == ["first", "second"]
