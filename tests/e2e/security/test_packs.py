"""A hostile tenant and its packs (issue #14): it cannot make the platform read a server folder
outside ATTUNE.packs.allowed_paths, nor make pip read /etc/passwd through requirements.txt and
show it back; the platform stays healthy."""

from __future__ import annotations

import textwrap
from pathlib import Path

import requests

from tests.support.e2e import FIXTURE_PACKS, PROJECT_ROOT, ApiClient
from tests.support.flows import list_all
from tests.support.pack_envs import upload_folder


def own_packs(api: ApiClient) -> list[dict]:
    return [p for p in list_all(api, "/api/v1/packs") if p["tenant_id"] == api.tenant_id]


def assert_healthy(platform) -> None:
    health = requests.get(f"{platform.api_url}/health", timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "ok", health.text


def test_a_tenant_cannot_register_a_server_folder_outside_the_allow_list(api, platform):
    for path in (PROJECT_ROOT, PROJECT_ROOT / "packs" / ".." / "tests", Path("/etc")):
        r = api.post("/api/v1/packs", json={"path": str(path)})
        assert r.status_code == 403, r.text
        error = r.json()["error"]
        assert error["code"] == "forbidden"
        assert "attune register-pack" in error["message"]
        assert "multipart/form-data" in error["message"]
    assert own_packs(api) == []
    # The allow-list itself works: a fixture pack registers by path (config.e2e.yaml).
    allowed = api.post("/api/v1/packs", json={"path": str(FIXTURE_PACKS / "test_pack")})
    assert allowed.status_code == 201, allowed.text
    assert [p["ref"] for p in own_packs(api)] == ["test_pack"]
    assert_healthy(platform)


def test_a_pack_whose_requirements_include_etc_passwd_is_refused_quoting_none_of_it(
    api, platform, tmp_path
):
    folder = tmp_path / "hostile"
    (folder / "actions").mkdir(parents=True)
    (folder / "pack.yaml").write_text("ref: hostile\nversion: 1.0.0\n")
    (folder / "actions" / "noop.yaml").write_text(textwrap.dedent("""\
        name: noop
        runner_type: shell
        code: "true"
    """))
    (folder / "requirements.txt").write_text("-r /etc/passwd\n")
    r = upload_folder(api, folder)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "validation_error"
    assert (error["details"]["file"], error["details"]["line"]) == ("requirements.txt", 1)
    assert error["message"] == ("requirements.txt, line 1: -r '/etc/passwd': outside the pack "
                                "(an absolute path)")
    assert "root:" not in r.text
    assert own_packs(api) == []
    assert_healthy(platform)
