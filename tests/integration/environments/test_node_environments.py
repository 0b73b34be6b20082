"""Node packs with real npm installs (T2.13): node_modules per pack, axios, isolation."""

from __future__ import annotations

import json
import os
import re
import textwrap
from pathlib import Path

import pytest

from runners.base import Outcome, RunRequest
from runners.environments import EnvironmentBuildError, PackEnvironment, PackSource
from runners.node import NodeRunner

from .conftest import sandbox

pytestmark = pytest.mark.integration


def source_of(folder: Path, version: str = "1.0.0") -> PackSource:
    return PackSource(owner="4242", ref=folder.name, version=version, folder=folder)


def run_node(folder: Path, entry: str, env: PackEnvironment | None = None, **parameters):
    request = RunRequest(
        execution_id=1, action_ref=f"{folder.name}.x", runner_type="node", working_dir=folder,
        entry_point=folder / entry, parameters=parameters, timeout_s=60,
        module_paths=env.module_paths("node") if env else (), sandbox=sandbox(folder, env),
    )
    return NodeRunner().run(request)


def test_a_pack_using_axios_gets_its_node_modules_and_runs(shared_envs, copy_fixture,
                                                           http_server):
    folder = copy_fixture("node_axios")
    env = shared_envs.ensure(source_of(folder))
    assert (env.node_modules / "axios" / "package.json").is_file()
    # node_modules appears in the pack folder (a link to the built environment)
    assert (folder / "node_modules").is_symlink()
    assert (folder / "node_modules").resolve() == env.node_modules.resolve()
    result = run_node(folder, "actions/fetch.js", env, url=f"{http_server}/users")
    assert result.outcome is Outcome.SUCCEEDED, result
    output = result.output
    assert output["status"] == 200
    assert output["data"] == {"path": "/users", "ok": True}
    assert output["axios_version"].startswith("1.")
    assert Path(output["axios_path"]).resolve().is_relative_to(env.node_modules.resolve())


def test_es_modules_resolve_the_pack_dependencies_too(shared_envs, copy_fixture):
    folder = copy_fixture("node_axios")
    env = shared_envs.ensure(source_of(folder))
    (folder / "actions" / "esm.mjs").write_text(textwrap.dedent("""
        import axios from 'axios';
        export async function run() { return { version: axios.VERSION }; }
    """))
    (folder / "actions" / "esm.mjs").chmod(0o644)
    result = run_node(folder, "actions/esm.mjs", env)
    assert result.outcome is Outcome.SUCCEEDED, result
    assert result.output["version"].startswith("1.")


def test_a_pack_without_the_dependency_cannot_require_it(open_tmp):
    folder = open_tmp / "plain"
    (folder / "actions").mkdir(parents=True, mode=0o755)
    folder.chmod(0o755)
    (folder / "actions" / "a.js").write_text(
        "exports.run = async () => require('axios').VERSION;\n")
    (folder / "actions" / "a.js").chmod(0o644)
    result = run_node(folder, "actions/a.js")
    assert result.outcome is Outcome.FAILED
    assert "Cannot find module 'axios'" in result.error["message"]


def test_the_environment_is_reused_and_rebuilt_for_a_new_package_json(fresh_envs, copy_fixture):
    folder = copy_fixture("node_axios")
    first = fresh_envs.ensure(source_of(folder))
    built_at = json.loads((first.node_modules.parent / "ready.json").read_text())["built_at"]
    assert fresh_envs.ensure(source_of(folder)).node_modules == first.node_modules
    assert json.loads(
        (first.node_modules.parent / "ready.json").read_text())["built_at"] == built_at
    manifest = json.loads((folder / "package.json").read_text())
    manifest["dependencies"]["ms"] = "^2.1.0"
    (folder / "package.json").write_text(json.dumps(manifest))
    second = fresh_envs.ensure(source_of(folder, "1.1.0"))
    assert second.node_modules != first.node_modules
    assert (second.node_modules / "ms").is_dir()
    assert os.readlink(folder / "node_modules") == str(second.node_modules)
    assert (first.node_modules / "axios").is_dir()  # runs in flight keep the old one


def test_an_npm_failure_is_reported_with_npms_error(fresh_envs, open_tmp):
    folder = open_tmp / "bad_node"
    folder.mkdir(mode=0o755)
    (folder / "package.json").write_text(json.dumps({
        "name": "bad", "version": "1.0.0",
        "dependencies": {"attune-no-such-package-0f3c9a": "1.0.0"}}))
    with pytest.raises(EnvironmentBuildError) as caught:
        fresh_envs.ensure(source_of(folder))
    message = caught.value.message
    # npm 9 (Debian's) says "npm ERR! 404", npm 10+ "npm error 404"
    assert re.match(r"npm install failed \(exit code 1\): npm (ERR!|error) 404 Not Found", message)
    assert "attune-no-such-package-0f3c9a" in message
    assert fresh_envs.state(source_of(folder)).status == "failed"
    assert not (folder / "node_modules").exists()
