"""T3.26 — reloading a pack picks up new code and new requirements with no restart; an
execution already running finishes on the old code and the old virtualenv."""

from __future__ import annotations

import textwrap
from pathlib import Path

import requests

from tests.support.e2e import wait_for_execution
from tests.support.pack_envs import execute, register_folder, reload_folder, start, wait_for_env
from tests.support.readiness import flag_key, wait_for_flag

ACTION_YAML = """
name: report
runner_type: python
entry_point: actions/report.py
parameters:
  marker: {type: string}
  hold: {type: number, default: 0}
timeout: 120
"""

ACTION_CODE = """
import sys
import time

import attune
import requests

CODE_VERSION = {version}


def run(marker=None, hold=0):
    if marker:  # tells the test this run has loaded its code (a datastore key, via the SDK)
        attune.datastore.set(marker, CODE_VERSION)
    time.sleep(hold)
    return {{"code_version": CODE_VERSION, "requests_version": requests.__version__,
            "venv": sys.prefix}}
"""


def code_and_requests(execution: dict) -> tuple[int, str]:
    output = execution["result"]["output"]
    return output["code_version"], output["requests_version"]


def write_pack(folder: Path, version: str, code_version: int, requests_pin: str) -> None:
    (folder / "actions").mkdir(parents=True, exist_ok=True)
    (folder / "pack.yaml").write_text(f"ref: reload_pack\nversion: {version}\n")
    (folder / "requirements.txt").write_text(f"requests=={requests_pin}\n")
    (folder / "actions" / "report.yaml").write_text(textwrap.dedent(ACTION_YAML))
    (folder / "actions" / "report.py").write_text(
        textwrap.dedent(ACTION_CODE.format(version=code_version)))


def test_reload_switches_code_and_venv_while_running_executions_finish_on_the_old(
    api, platform, tmp_path
):
    folder = tmp_path / "reload_pack"
    write_pack(folder, "1.0.0", 1, "2.25.0")
    pack = register_folder(api, folder)
    assert wait_for_env(api, pack["id"])["env_status"] == "ready"
    before = execute(api, "reload_pack.report")
    assert before["status"] == "succeeded", before["result"]
    assert code_and_requests(before) == (1, "2.25.0")

    # An execution in flight on version 1 (its code is loaded once the marker appears).
    marker = flag_key("t3-26-loaded")
    in_flight = start(api, "reload_pack.report", {"marker": marker, "hold": 6})
    loaded = wait_for_flag(api, marker, timeout=60,
                           message="the in-flight run to load its code")
    assert loaded == 1  # the run in flight has version 1 loaded before the reload

    write_pack(folder, "1.1.0", 2, "2.28.0")
    reloaded = reload_folder(api, pack["id"], folder)
    assert (reloaded["version"], reloaded["env_status"]) == ("1.1.0", "building")
    assert api.data(api.get(f"/api/v1/executions/{in_flight['id']}"))["status"] == "running"
    assert wait_for_env(api, pack["id"])["env_status"] == "ready"

    after = execute(api, "reload_pack.report")
    assert after["status"] == "succeeded", after["result"]
    assert code_and_requests(after) == (2, "2.28.0")
    assert after["result"]["output"]["venv"] != before["result"]["output"]["venv"]

    finished = wait_for_execution(api, in_flight["id"], timeout=60)
    assert finished["status"] == "succeeded", finished["result"]
    assert code_and_requests(finished) == (1, "2.25.0")
    assert finished["result"]["output"]["venv"] == before["result"]["output"]["venv"]

    # Nothing restarted: the same worker process ran before and after, and all is healthy.
    assert before["worker"] == after["worker"] == finished["worker"]
    health = requests.get(f"{platform.api_url}/health", timeout=10).json()
    assert health["status"] == "ok"
    # A reload without changes reuses the environment it already has.
    assert api.data(api.post(f"/api/v1/packs/{pack['id']}/reload"), 200)["version"] == "1.1.0"
    assert wait_for_env(api, pack["id"])["env_status"] == "ready"
    unchanged = execute(api, "reload_pack.report")
    assert code_and_requests(unchanged) == (2, "2.28.0")
    assert unchanged["result"]["output"]["venv"] == after["result"]["output"]["venv"]
