"""T2.13 — a Node.js action with npm dependencies (axios) runs with async `run(params)`."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.pack_envs import (
    copy_fixture_pack,
    execute,
    recording_server,
    register_folder,
    wait_for_env,
)

NO_AXIOS = """
module.exports = { run: async () => require('axios').VERSION };
"""


def test_a_node_pack_installs_its_package_json_and_requires_axios(api, platform, tmp_path):
    folder = copy_fixture_pack("node_axios", tmp_path)
    pack = register_folder(api, folder)
    assert pack["env_status"] == "building"  # package.json: a worker runs npm install
    assert wait_for_env(api, pack["id"])["env_status"] == "ready"

    # node_modules appears in the pack folder (a link to the pack's built environment)
    modules = Path(pack["source_path"]) / "node_modules"
    assert (modules / "axios" / "package.json").is_file()
    envs = (platform.run_dir / "envs" / "node").resolve()
    assert modules.resolve().is_relative_to(envs)

    with recording_server() as server:
        server.routes["/status"] = (200, {"healthy": True}, 0.0)
        # The action runs sandboxed: it reaches the server on this machine's own address.
        run = execute(api, "node_axios.fetch", {"url": f"{server.sandbox_url}/status"})
    assert run["status"] == "succeeded", run["result"]
    output = run["result"]["output"]
    assert (output["status"], output["data"]) == (200, {"healthy": True})
    assert output["axios_version"].startswith("1.")
    assert os.path.realpath(output["axios_path"]).startswith(str(envs))
    assert server.received[-1].headers["User-Agent"].startswith("axios/1.")

    # Isolation: a node action of another pack cannot require axios.
    other = f"plain_{pack['id']}"
    api.data(api.post("/api/v1/packs", json={"ref": other, "version": "1.0.0"}), 201)
    api.data(api.post("/api/v1/actions", json={
        "pack": other, "name": "no_axios", "runner_type": "node", "code": NO_AXIOS}), 201)
    isolated = execute(api, f"{other}.no_axios")
    assert isolated["status"] == "failed"
    assert "Cannot find module 'axios'" in isolated["result"]["error"]["message"]
