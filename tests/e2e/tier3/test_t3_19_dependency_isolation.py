"""T3.19 — two packs pinning conflicting versions of requests each get their own, also when
they run at the same time."""

from __future__ import annotations

from tests.support.e2e import wait_for_execution
from tests.support.pack_envs import (
    copy_fixture_pack,
    execute,
    register_folder,
    start,
    wait_for_env,
)

PACKS = {"py_requests_225": "2.25.0", "py_requests_228": "2.28.0"}


def test_conflicting_requirements_are_isolated_per_pack(api, tmp_path):
    for name in PACKS:
        pack = register_folder(api, copy_fixture_pack(name, tmp_path))
        assert wait_for_env(api, pack["id"])["env_status"] == "ready"

    prefixes = {}
    for name, version in PACKS.items():
        run = execute(api, f"{name}.which_requests")
        assert run["status"] == "succeeded", run["result"]
        assert run["result"]["output"]["requests_version"] == version
        prefixes[name] = run["result"]["output"]["sys_prefix"]
    assert prefixes["py_requests_225"] != prefixes["py_requests_228"]

    # Both at once, each holding its interpreter for a while: they overlap and still differ.
    started = {name: start(api, f"{name}.which_requests", {"hold_seconds": 2})
               for name in PACKS}
    done = {name: wait_for_execution(api, e["id"], timeout=120) for name, e in started.items()}
    outputs = {}
    for name, version in PACKS.items():
        assert done[name]["status"] == "succeeded", done[name]["result"]
        outputs[name] = done[name]["result"]["output"]
        assert outputs[name]["requests_version"] == version
        assert outputs[name]["sys_prefix"] == prefixes[name]
    a, b = outputs["py_requests_225"], outputs["py_requests_228"]
    assert a["started_at"] < b["ended_at"] and b["started_at"] < a["ended_at"]  # concurrent
