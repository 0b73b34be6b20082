"""T3.11 system packs: visible to and runnable by every tenant in one shared environment,
changed by none; tenant packs isolated; `core` is a system pack."""

import subprocess

import pytest

from tests.support.e2e import FIXTURE_PACKS, PROJECT_ROOT, unique_name, wait_for_execution
from tests.support.flows import list_all

ATTUNE = PROJECT_ROOT / ".venv" / "bin" / "attune"


@pytest.fixture(scope="module")
def system_probe(platform):
    """tests/fixtures/packs/system_probe installed by the operator as a system pack."""
    done = subprocess.run(
        [str(ATTUNE), "register-pack", str(FIXTURE_PACKS / "system_probe"), "--system",
         "--config", str(platform.config)],
        cwd=PROJECT_ROOT, env=platform.env, capture_output=True, text=True, timeout=120,
        check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return "system_probe"


def packs_by_ref(api):
    return {p["ref"]: p for p in list_all(api, "/api/v1/packs")}


def test_core_and_installed_system_packs_are_visible_to_every_tenant(make_api, system_probe):
    for api in (make_api(), make_api()):
        packs = packs_by_ref(api)
        for ref in ("core", system_probe):
            assert packs[ref]["system"] is True and packs[ref]["tenant_id"] is None, packs[ref]
        assert "core.echo" in packs["core"]["actions"]


def test_every_tenant_runs_system_actions_in_one_shared_environment(make_api, system_probe):
    seen = []
    for api in (make_api(), make_api()):
        echo = api.data(api.post("/api/v1/executions", json={
            "action": "core.echo", "parameters": {"message": "hello"}}), 201)
        assert wait_for_execution(api, echo["id"])["result"]["output"] == "hello"
        probe = api.data(api.post("/api/v1/executions",
                                  json={"action": f"{system_probe}.where"}), 201)
        done = wait_for_execution(api, probe["id"], timeout=180)
        assert done["status"] == "succeeded", done
        seen.append(done["result"]["output"])
    assert seen[0] == seen[1]
    assert "/system/system_probe/" in seen[0]["prefix"], seen[0]  # the pack's own virtualenv


def test_no_tenant_can_change_or_delete_a_system_pack(make_api, system_probe):
    api = make_api()
    packs = packs_by_ref(api)
    for ref in ("core", system_probe):
        pack_id = packs[ref]["id"]
        for response in (api.delete(f"/api/v1/packs/{pack_id}"),
                         api.post(f"/api/v1/packs/{pack_id}/reload", json={}),
                         api.post("/api/v1/actions", json={
                             "pack": ref, "name": "intruder", "runner_type": "python",
                             "code": "def run():\n    return 1\n"})):
            assert response.status_code == 403, response.text
    echo = next(a for a in list_all(api, "/api/v1/actions", pack="core")
                if a["ref"] == "core.echo")
    assert api.patch(f"/api/v1/actions/{echo['id']}",
                     json={"description": "mine"}).status_code == 403
    assert api.delete(f"/api/v1/actions/{echo['id']}").status_code == 403
    assert packs_by_ref(make_api())["core"]["id"] == packs["core"]["id"]


def test_tenant_packs_are_isolated_and_refs_may_repeat_across_tenants(make_api):
    first, second = make_api(), make_api()
    ref = unique_name("mine").replace("-", "_")
    one = first.data(first.post("/api/v1/packs", json={"ref": ref}), 201)
    two = second.data(second.post("/api/v1/packs", json={"ref": ref}), 201)
    assert one["id"] != two["id"] and not one["system"]
    assert {p["id"] for p in list_all(first, "/api/v1/packs") if p["ref"] == ref} == {one["id"]}
    assert second.get(f"/api/v1/packs/{one['id']}").status_code == 404
