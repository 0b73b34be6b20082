"""env_status through the packs API: building at registration and reload, then what the
worker's build recorded (ready, or failed with pip's error)."""

from __future__ import annotations

import shutil

import pytest

from nameko_services.domain import messages
from nameko_services.worker import pack_environments
from tests.support.packs import copy_pack, unique_ref

from .conftest import FIXTURE_PACKS

pytestmark = pytest.mark.integration


@pytest.fixture
def user(make_user, settings):
    """A new tenant's admin headers; the tenant's built environments are removed afterwards."""
    account, headers = make_user()
    yield headers
    for kind in ("python", "node"):
        shutil.rmtree(settings.run_dir.resolve() / "envs" / kind / str(account["tenant_id"]),
                      ignore_errors=True)


def register(client, headers, path):
    r = client.post("/api/v1/packs", headers=headers, json={"path": str(path)})
    assert r.status_code == 201, r.json
    return r.json["data"]


def get(client, headers, pack_id):
    r = client.get(f"/api/v1/packs/{pack_id}", headers=headers)
    assert r.status_code == 200, r.json
    return r.json["data"]


def changed(published, pack_id):
    return [p for _, name, p in published
            if name == messages.PACK_CHANGED and p["pack_id"] == pack_id]


def test_a_pack_with_requirements_is_building_until_the_worker_built_it(
    client, user, published, tmp_path, engine, settings
):
    headers = user
    folder = copy_pack(FIXTURE_PACKS / "py_requests_228", tmp_path, unique_ref("reqs"))
    pack = register(client, headers, folder)
    assert (pack["env_status"], pack["env_error"]) == ("building", None)
    assert changed(published, pack["id"])  # the worker hears of it after the commit
    assert pack_environments.build_for_pack(engine, settings, pack["id"]) == "ready"
    assert get(client, headers, pack["id"])["env_status"] == "ready"

    # reload with new requirements and version: building again, then ready on a new venv
    (folder / "requirements.txt").write_text("requests==2.25.0\n")
    manifest = folder / "pack.yaml"
    manifest.write_text(manifest.read_text().replace("version: 1.0.0", "version: 1.1.0"))
    r = client.post(f"/api/v1/packs/{pack['id']}/reload", headers=headers)
    assert r.status_code == 200, r.json
    assert (r.json["data"]["version"], r.json["data"]["env_status"]) == ("1.1.0", "building")
    assert len(changed(published, pack["id"])) == 2
    assert pack_environments.build_for_pack(engine, settings, pack["id"]) == "ready"
    assert get(client, headers, pack["id"])["env_status"] == "ready"


def test_a_failed_build_shows_pips_error_on_the_pack(client, user, tmp_path, engine, settings):
    headers = user
    folder = copy_pack(FIXTURE_PACKS / "py_broken_requirements", tmp_path, unique_ref("bad"))
    pack = register(client, headers, folder)
    assert pack["env_status"] == "building"
    assert pack_environments.build_for_pack(engine, settings, pack["id"]) == "failed"
    shown = get(client, headers, pack["id"])
    assert shown["env_status"] == "failed"
    assert "No matching distribution found for requests==0.0.0.404" in shown["env_error"]


def test_a_pack_without_dependency_files_is_ready_at_once(client, user, tmp_path):
    headers = user
    folder = copy_pack(FIXTURE_PACKS / "container_pack", tmp_path, unique_ref("plain"))
    assert register(client, headers, folder)["env_status"] == "ready"
