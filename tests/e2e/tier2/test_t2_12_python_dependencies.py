"""T2.12 — a python action imports a third-party package from its pack's own virtualenv."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.e2e import unique_name
from tests.support.flows import make_action
from tests.support.pack_envs import (
    copy_fixture_pack,
    execute,
    recording_server,
    register_folder,
    wait_for_env,
)

PROBE = '''
import sys

def run():
    # Without a requirements.txt a pack runs on the plain interpreter in its sandbox, which
    # shows it no virtualenv (not the platform's either): requests may well be missing.
    try:
        import requests
    except ImportError:
        return {"requests_version": None, "sys_prefix": sys.prefix}
    return {"requests_version": requests.__version__, "sys_prefix": sys.prefix}
'''


def test_a_pack_with_requirements_runs_in_its_own_cached_virtualenv(api, platform, tmp_path):
    folder = copy_fixture_pack("py_requests_228", tmp_path)
    pack = register_folder(api, folder)
    assert pack["env_status"] == "building"  # requirements.txt: a worker builds the venv
    assert wait_for_env(api, pack["id"])["env_status"] == "ready"

    with recording_server() as server:
        server.routes["/users/1"] = (200, {"id": 1, "name": "ada"}, 0.0)
        # The action runs sandboxed: it reaches the server on this machine's own address.
        first = execute(api, "py_requests_228.which_requests",
                        {"url": f"{server.sandbox_url}/users/1"})
        assert first["status"] == "succeeded", first["result"]
        output = first["result"]["output"]
        assert output["requests_version"] == "2.28.0"  # imported from the pack's venv
        assert (output["status_code"], output["body"]) == (200, {"id": 1, "name": "ada"})
        assert server.received[-1].method == "GET"
        assert server.received[-1].headers["User-Agent"] == "python-requests/2.28.0"

    # The venv lives where the platform keeps pack environments, one folder per pack version.
    venv = Path(output["sys_prefix"])
    expected_parent = (platform.run_dir / "envs" / "python" / str(api.tenant_id)
                       / "py_requests_228").resolve()
    assert venv.parent == expected_parent
    assert venv.name.startswith("1.0.0-")
    assert Path(output["executable"]).is_relative_to(venv)
    built = json.loads((venv / "ready.json").read_text())

    # Cached: the next run uses the same venv, which was not rebuilt.
    again = execute(api, "py_requests_228.which_requests")
    assert again["status"] == "succeeded", again["result"]
    assert again["result"]["output"]["sys_prefix"] == str(venv)
    assert json.loads((venv / "ready.json").read_text())["built_at"] == built["built_at"]

    # Isolation: an action of another pack does not see this pack's requests 2.28.0.
    other = make_action(api, unique_name("plain").replace("-", "_"), "probe", PROBE)
    probe = execute(api, other["ref"])
    assert probe["status"] == "succeeded", probe["result"]
    assert probe["result"]["output"]["requests_version"] != "2.28.0"
    assert not Path(probe["result"]["output"]["sys_prefix"]).is_relative_to(venv)


def test_a_pack_whose_requirements_cannot_install_shows_pips_error(api, tmp_path):
    folder = copy_fixture_pack("py_broken_requirements", tmp_path)
    pack = wait_for_env(api, register_folder(api, folder)["id"])
    assert pack["env_status"] == "failed"
    assert "No matching distribution found for requests==0.0.0.404" in pack["env_error"]
    run = execute(api, "py_broken_requirements.noop")
    assert run["status"] == "failed"
    assert run["result"]["error"]["type"] == "environment_failed"
    assert "requests==0.0.0.404" in run["result"]["error"]["message"]
