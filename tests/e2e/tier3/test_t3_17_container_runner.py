"""T3.17 — container actions run in throwaway containers of the local python:3.11-slim image
on the real Docker engine the project's script starts: pack mounted read-only, limits, no
network, no privileges, and no container left behind (success, failure, timeout, cancel).

The engine must be there: when it is down, scripts/docker.sh starts it, and if that fails the
test FAILS (it never skips)."""

from __future__ import annotations

import subprocess

import docker
import pytest
import requests
from docker.errors import DockerException

from runners.container import docker_client
from tests.support.e2e import PROJECT_ROOT, unique_name, wait_for_execution, wait_until
from tests.support.flows import register_pack
from tests.support.pack_envs import copy_fixture_pack, execute, register_folder, start

SLEEPER = """#!/usr/bin/env python3
import time
print("going to sleep", flush=True)
time.sleep(60)
"""


@pytest.fixture(scope="module")
def engine() -> docker.DockerClient:
    try:
        client = docker_client()
        client.ping()
        client.images.get("python:3.11-slim")
        return client
    except (DockerException, requests.RequestException):
        pass
    done = subprocess.run(["bash", str(PROJECT_ROOT / "scripts" / "docker.sh"), "start"],
                          capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        pytest.fail(f"the Docker engine could not be started:\n{done.stdout}{done.stderr}")
    client = docker_client()
    client.ping()
    return client


def containers_of(engine: docker.DockerClient, execution_id: int) -> list:
    return engine.containers.list(
        all=True, filters={"label": f"attune.execution_id={execution_id}"})


def test_container_actions_run_isolated_and_leave_nothing_behind(api, engine):
    pack = register_pack(api, "container_pack")
    assert pack["env_status"] == "ready"

    run = execute(api, "container_pack.inspect", {"message": "hi from the API"})
    assert run["status"] == "succeeded", run["result"]
    seen = run["result"]["output"]
    assert seen["message"] == "hi from the API"  # the stdin document arrived
    assert "token" in seen["context_keys"]
    assert seen["cwd"] == "/action" and "inspect.py" in seen["files"]  # the pack, mounted
    assert seen["python"].startswith("3.11")  # the image's interpreter
    assert seen["memory_limit"] == str(128 * 1024 * 1024) and seen["cpu_quota"] == "50000"
    assert seen["interfaces"] == ["lo"] and seen["network"] == "OSError:101"
    assert seen["cap_eff"] == "0000000000000000" and seen["no_new_privs"] == "1"
    assert seen["uid"] == 65534  # the image's USER (root) is replaced (ATTUNE.container.user)
    assert not seen["action_writable"] and not seen["root_writable"]
    assert run["result"]["stderr"] == "message: hi from the API\n"
    assert containers_of(engine, run["id"]) == []

    failed = execute(api, "container_pack.fail", {"exit_code": 3})
    assert failed["status"] == "failed"
    assert failed["result"]["exit_code"] == 3
    assert failed["result"]["stderr"] == "failing with 3\n"
    assert containers_of(engine, failed["id"]) == []


def test_a_canceled_container_action_is_stopped_and_removed(api, engine):
    register_pack(api, "container_pack")
    running = start(api, "container_pack.sleep", {"seconds": 60})
    # cancel only once the action has printed, so there is partial output to keep
    # (the engine keeps no logs, so the action's marker file in its /tmp says it printed)
    wait_until(lambda: any(box.exec_run(["sh", "-c", "test -e /tmp/printed"]).exit_code == 0
                           for box in containers_of(engine, running["id"])
                           if box.status == "running"),
               timeout=60, message="the action's first line")
    response = api.post(f"/api/v1/executions/{running['id']}/cancel")
    assert response.status_code == 202, response.text
    canceled = wait_for_execution(api, running["id"], timeout=60)
    assert canceled["status"] == "canceled"
    assert "sleeping 60" in canceled["result"]["stdout"]  # partial output kept
    assert containers_of(engine, running["id"]) == []


def test_a_container_action_that_times_out_is_removed(api, engine):
    pack = unique_name("boxes").replace("-", "_")
    api.data(api.post("/api/v1/packs", json={"ref": pack, "version": "1.0.0"}), 201)
    action = api.data(api.post("/api/v1/actions", json={
        "pack": pack, "name": "sleeper", "runner_type": "container", "code": SLEEPER,
        "timeout": 4, "container_config": {"image": "python:3.11-slim"}}), 201)
    run = execute(api, action["ref"])
    assert run["status"] == "failed"
    assert run["result"]["error"]["type"] == "timeout"
    assert run["result"]["stdout"] == "going to sleep\n"
    assert containers_of(engine, run["id"]) == []


def test_a_container_action_above_the_operators_maximum_fails_with_resource_limit(api, engine):
    pack = unique_name("bigbox").replace("-", "_")
    api.data(api.post("/api/v1/packs", json={"ref": pack, "version": "1.0.0"}), 201)
    action = api.data(api.post("/api/v1/actions", json={
        "pack": pack, "name": "hog", "runner_type": "container", "code": "print(1)\n",
        "container_config": {"image": "python:3.11-slim", "memory": "64g"}}), 201)
    run = execute(api, action["ref"])
    assert run["status"] == "failed"
    assert run["result"]["error"] == {
        "type": "resource_limit",
        "message": "container_config.memory: 64g is above the operator's maximum of 4g "
                   "(ATTUNE.container.maximum.memory)"}
    assert containers_of(engine, run["id"]) == []


def test_a_pack_cannot_keep_its_image_user_unless_the_operator_allows_it(api, engine, tmp_path):
    folder = copy_fixture_pack("container_pack", tmp_path)
    manifest = folder / "pack.yaml"
    manifest.write_text(manifest.read_text() + "container: {image_user: true}\n")
    pack = register_folder(api, folder)
    assert pack["meta"]["container"] == {"image_user": True}
    run = execute(api, "container_pack.inspect", {"message": "as root?"})
    assert run["status"] == "failed"
    assert run["result"]["error"]["type"] == "image_user_refused"
    assert "ATTUNE.container.allow_image_user" in run["result"]["error"]["message"]
    assert containers_of(engine, run["id"]) == []
