"""Who may register which server folder, and which dependency files get through (issue #14).

A tenant registers packs by upload, or by path only inside ATTUNE.packs.allowed_paths (here:
packs/, the fixture packs and pytest's temporary folders, see tests/conftest.py); the
operator's `attune register-pack` registers any folder. A requirements.txt or package.json that
would make pip or npm reach outside the pack is 422 and registers nothing.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import func, select

from nameko_services.config import PROJECT_ROOT
from nameko_services.domain import models
from tests.conftest import TEST_DATABASE_URL
from tests.support.packs import FIXTURES, TEST_PACK, copy_pack, tar_gz, upload

pytestmark = pytest.mark.integration

PASSWD_LINES = [line for line in Path("/etc/passwd").read_text().splitlines() if line.strip()]


@pytest.fixture
def outside(settings):
    """A valid pack in a folder no allowed path covers (pytest's own tmp folders are allowed)."""
    folder = Path(tempfile.mkdtemp(prefix="attune-outside-"))
    pack = copy_pack(TEST_PACK, folder)
    assert not settings.packs.allows(pack)
    yield pack
    shutil.rmtree(folder, ignore_errors=True)


def register(client, headers, path):
    return client.post("/api/v1/packs", headers=headers, json={"path": str(path)})


def packs_of(engine, tenant_id):
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(models.packs).where(
            models.packs.c.tenant_id == tenant_id)).scalar_one()


def assert_operator_only(response):
    """403 in api.md's envelope, saying how a tenant uploads and who registers folders."""
    assert response.status_code == 403, response.json
    assert set(response.json) == {"error"}
    error = response.json["error"]
    assert error["code"] == "forbidden"
    assert "attune register-pack" in error["message"]
    assert "multipart/form-data" in error["message"] and "/api/v1/packs" in error["message"]
    assert "`file`" in error["message"]


@pytest.mark.parametrize("target", ["a pack outside", "the project root", "/etc",
                                    "/does/not/exist"])
def test_a_tenant_cannot_register_a_folder_outside_the_allowed_paths(
    client, make_user, engine, outside, target
):
    user, headers = make_user()
    path = {"a pack outside": outside, "the project root": PROJECT_ROOT}.get(target, target)
    r = register(client, headers, path)
    assert_operator_only(r)
    # The same answer whether the folder exists or not: no oracle for the server's folders.
    assert r.json["error"]["details"] == {
        "path": "outside the folders tenants may register (ATTUNE.packs.allowed_paths)"}
    assert packs_of(engine, user["tenant_id"]) == 0


def test_a_folder_inside_the_allowed_paths_is_registered_even_through_dotdot(
    client, make_user
):
    _, headers = make_user()
    r = register(client, headers, FIXTURES / "sensor_pack" / ".." / "test_pack")
    assert r.status_code == 201, r.json
    assert r.json["data"]["source_path"] == str(TEST_PACK.resolve())


def test_a_link_or_dotdot_that_leads_out_of_an_allowed_folder_is_403(
    client, make_user, engine, tmp_path, outside
):
    user, headers = make_user()
    link = tmp_path / "innocent"
    link.symlink_to(outside, target_is_directory=True)
    climb = Path(str(tmp_path) + "/.." * len(tmp_path.parts) + str(outside))
    assert os.path.realpath(climb) == os.path.realpath(outside)
    for path in (link, climb):
        assert_operator_only(register(client, headers, path))
    assert packs_of(engine, user["tenant_id"]) == 0


def test_a_tenant_reloads_its_own_upload_from_its_folder(client, make_user):
    _, headers = make_user()
    pack = upload(client, headers, tar_gz(TEST_PACK)).json["data"]
    r = client.post(f"/api/v1/packs/{pack['id']}/reload", headers=headers)
    assert r.status_code == 200, r.json
    assert r.json["data"]["source_path"] == pack["source_path"]


def attune_register_pack(path, tenant_id):
    """The operator's CLI, as a subprocess against the test database."""
    env = {**os.environ, "ATTUNE_DATABASE_URL": TEST_DATABASE_URL}
    return subprocess.run(
        [sys.executable, "-m", "nameko_services.cli", "register-pack", str(path), "--tenant",
         str(tenant_id), "--config", str(PROJECT_ROOT / "nameko.yaml")],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_the_operator_registers_any_folder_which_its_tenant_then_cannot_reload(
    client, make_user, engine, outside
):
    user, headers = make_user()
    done = attune_register_pack(outside, user["tenant_id"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "registered pack test_pack 1.0.0" in done.stdout
    listed = client.get("/api/v1/packs?limit=200", headers=headers).json["data"]
    [pack] = [p for p in listed if p["tenant_id"] == user["tenant_id"]]
    assert (pack["ref"], pack["source_path"]) == ("test_pack", str(outside.resolve()))
    assert "test_pack.echo" in pack["actions"]

    (outside / "pack.yaml").write_text("ref: test_pack\nversion: 1.1.0\n")
    reload = client.post(f"/api/v1/packs/{pack['id']}/reload", headers=headers)
    assert reload.status_code == 403 and reload.json["error"]["code"] == "forbidden"
    assert "attune register-pack" in reload.json["error"]["message"]
    unchanged = client.get(f"/api/v1/packs/{pack['id']}", headers=headers).json["data"]
    assert unchanged["version"] == "1.0.0"
    again = attune_register_pack(outside, user["tenant_id"])  # the operator's reload
    assert again.returncode == 0, again.stdout + again.stderr
    assert client.get(f"/api/v1/packs/{pack['id']}",
                      headers=headers).json["data"]["version"] == "1.1.0"
    assert packs_of(engine, user["tenant_id"]) == 1


def test_an_upload_whose_requirements_include_etc_passwd_is_422_and_quotes_none_of_it(
    client, make_user, engine, settings, tmp_path
):
    user, headers = make_user()
    folder = copy_pack(TEST_PACK, tmp_path)
    (folder / "requirements.txt").write_text("-r /etc/passwd\nrequests==2.28.0\n")
    uploads = settings.run_dir.resolve() / "packs" / str(user["tenant_id"])
    kept = set(uploads.glob("*/*"))  # tenant ids restart with each test database
    r = upload(client, headers, tar_gz(folder))
    assert r.status_code == 422, r.json
    error = r.json["error"]
    assert error["code"] == "validation_error"
    assert (error["details"]["file"], error["details"]["line"]) == ("requirements.txt", 1)
    assert error["message"] == ("requirements.txt, line 1: -r '/etc/passwd': outside the pack "
                                "(an absolute path)")
    assert error["details"]["fields"] == {
        "requirements.txt": "-r '/etc/passwd': outside the pack (an absolute path)"}
    body = r.get_data(as_text=True)
    assert "root:" not in body
    assert not [line for line in PASSWD_LINES if line in body]
    assert packs_of(engine, user["tenant_id"]) == 0
    assert set(uploads.glob("*/*")) == kept  # nothing of the refused archive stays


@pytest.mark.parametrize("requirements, line, says", [
    ("requests\n--index-url http://index.invalid/simple\n", 2, "--index-url"),
    ("# pinned\nrequests==2.28.0 \\\n  -e /srv/elsewhere\n", 2, "-e"),
    ("requests @ file:///etc/passwd\n", 1, "a file: URL"),
    ("requests==${SECRET_VERSION}\n", 1, "environment variable"),
])
def test_a_server_folder_whose_requirements_reach_outside_is_422_naming_the_line(
    client, make_user, engine, tmp_path, requirements, line, says
):
    user, headers = make_user()
    folder = copy_pack(TEST_PACK, tmp_path)
    (folder / "requirements.txt").write_text(requirements)
    r = register(client, headers, folder)
    assert r.status_code == 422, r.json
    assert r.json["error"]["details"]["line"] == line
    assert r.json["error"]["message"].startswith(f"requirements.txt, line {line}: ")
    assert says in r.json["error"]["message"]
    assert packs_of(engine, user["tenant_id"]) == 0


def test_a_package_json_with_a_file_dependency_is_422_naming_the_dependency(
    client, make_user, tmp_path
):
    _, headers = make_user()
    folder = copy_pack(TEST_PACK, tmp_path)
    (folder / "package.json").write_text(
        '{"dependencies": {"axios": "^1.0.0", "secrets": "file:/etc"}}')
    r = upload(client, headers, tar_gz(folder))
    assert r.status_code == 422, r.json
    details = r.json["error"]["details"]
    assert (details["file"], details["field"]) == ("package.json", "dependencies.secrets")
    assert "'file:/etc'" in r.json["error"]["message"]


def test_requirements_nesting_a_file_inside_the_pack_are_accepted(client, make_user, tmp_path):
    _, headers = make_user()
    folder = copy_pack(TEST_PACK, tmp_path)
    (folder / "requirements").mkdir()
    (folder / "requirements" / "base.txt").write_text("requests==2.28.0 --hash=sha256:ab12\n")
    (folder / "requirements.txt").write_text("-r requirements/base.txt\n--prefer-binary\n")
    r = upload(client, headers, tar_gz(folder))
    assert r.status_code == 201, r.json
    assert r.json["data"]["env_status"] == "building"


def test_a_reload_checks_the_requirements_again(client, make_user, tmp_path):
    _, headers = make_user()
    folder = copy_pack(TEST_PACK, tmp_path)
    (folder / "requirements.txt").write_text("requests==2.28.0\n")
    pack = register(client, headers, folder).json["data"]
    (folder / "pack.yaml").write_text("ref: test_pack\nversion: 1.1.0\n")
    (folder / "requirements.txt").write_text("requests==2.28.0\n-c /etc/passwd\n")
    r = client.post(f"/api/v1/packs/{pack['id']}/reload", headers=headers)
    assert r.status_code == 422, r.json
    assert r.json["error"]["message"].startswith("requirements.txt, line 2: -c '/etc/passwd'")
    shown = client.get(f"/api/v1/packs/{pack['id']}", headers=headers).json["data"]
    assert shown["version"] == "1.0.0"
