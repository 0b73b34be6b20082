"""/api/v1/packs against the real database: folders, uploads, empty packs, reload, delete."""

import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from nameko_services.domain import messages, models
from tests.support.packs import (
    BROKEN,
    FIXTURES,
    TEST_PACK,
    copy_pack,
    create_pack,
    delete_system_pack,
    evil_tar_gz,
    register_system_pack,
    tar_gz,
    unique_ref,
    upload,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def system_pack(engine, tmp_path):
    pack = register_system_pack(engine, tmp_path)
    yield pack
    delete_system_pack(engine, pack["id"])


def register(client, headers, path, **extra):
    return client.post("/api/v1/packs", headers=headers, json={"path": str(path), **extra})


def events_of(published, event):
    return [payload for _, name, payload in published if name == event]


def test_registering_a_server_folder_creates_the_pack_with_its_contents(client, make_user):
    user, headers = make_user()
    r = register(client, headers, TEST_PACK)
    assert r.status_code == 201, r.json
    pack = r.json["data"]
    assert pack["ref"] == "test_pack" and pack["version"] == "1.0.0"
    assert pack["system"] is False and pack["tenant_id"] == user["tenant_id"]
    assert pack["actions"] == ["test_pack.echo", "test_pack.echo_twice", "test_pack.fail"]
    assert pack["triggers"] == ["test_pack.hook"]
    assert pack["rules"] == ["test_pack.echo_on_hook"]
    assert pack["sensors"] == [] and pack["env_status"] == "ready"
    assert pack["created_at"].endswith("Z") and pack["updated_at"].endswith("Z")
    assert client.get(f"/api/v1/packs/{pack['id']}", headers=headers).json["data"] == pack


def test_registration_publishes_pack_trigger_and_rule_changes_after_commit(
    client, make_user, published
):
    user, headers = make_user()
    pack = register(client, headers, TEST_PACK).json["data"]
    tenant = user["tenant_id"]
    assert events_of(published, messages.PACK_CHANGED) == [
        {"pack_id": pack["id"], "tenant_id": tenant, "op": "created"}]
    [trigger_change] = events_of(published, messages.TRIGGER_CHANGED)
    assert trigger_change["op"] == "created" and trigger_change["tenant_id"] == tenant
    [rule_change] = events_of(published, messages.RULE_CHANGED)
    assert rule_change["op"] == "created"
    assert rule_change["trigger_id"] == trigger_change["trigger_id"]
    assert all(source == messages.GATEWAY for source, _, _ in published)


def test_the_pack_actions_are_stored_with_their_definitions(client, make_user):
    _, headers = make_user()
    register(client, headers, TEST_PACK)
    listed = client.get("/api/v1/actions?pack=test_pack", headers=headers).json["data"]
    by_ref = {a["ref"]: a for a in listed}
    echo = by_ref["test_pack.echo"]
    assert echo["runner_type"] == "python" and echo["entry_point"] == "actions/echo.py"
    assert echo["parameters"] == {"message": {"type": "string", "required": True}}
    assert echo["timeout"] == 30
    workflow = by_ref["test_pack.echo_twice"]["workflow"]
    assert [t["name"] for t in workflow["tasks"]] == ["first", "second"]


def test_registering_the_same_ref_twice_is_409_unless_forced(client, make_user):
    _, headers = make_user()
    first = register(client, headers, TEST_PACK).json["data"]
    again = register(client, headers, TEST_PACK)
    assert again.status_code == 409 and again.json["error"]["code"] == "conflict"
    forced = register(client, headers, TEST_PACK, force=True)
    assert forced.status_code == 201 and forced.json["data"]["id"] == first["id"]


def test_the_same_ref_in_another_tenant_is_a_different_pack(client, make_user):
    _, headers_a = make_user()
    _, headers_b = make_user()
    a = register(client, headers_a, TEST_PACK).json["data"]
    b = register(client, headers_b, TEST_PACK)
    assert b.status_code == 201 and b.json["data"]["id"] != a["id"]


def test_force_keeps_ids_and_removes_what_the_folder_no_longer_declares(
    client, make_user, tmp_path, published
):
    _, headers = make_user()
    folder = copy_pack(TEST_PACK, tmp_path)
    register(client, headers, folder)
    echo = client.get("/api/v1/actions?pack=test_pack", headers=headers).json["data"]
    echo_id = next(a["id"] for a in echo if a["ref"] == "test_pack.echo")
    (folder / "actions" / "fail.yaml").unlink()
    (folder / "rules" / "echo_on_hook.yaml").unlink()
    text = (folder / "actions" / "echo.yaml").read_text()
    (folder / "actions" / "echo.yaml").write_text(text.replace("timeout: 30", "timeout: 45"))
    published.clear()
    pack = register(client, headers, folder, force=True).json["data"]
    assert pack["actions"] == ["test_pack.echo", "test_pack.echo_twice"]
    assert pack["rules"] == []
    updated = client.get(f"/api/v1/actions/{echo_id}", headers=headers).json["data"]
    assert updated["timeout"] == 45
    assert [p["op"] for p in events_of(published, messages.RULE_CHANGED)] == ["deleted"]
    assert events_of(published, messages.PACK_CHANGED)[0]["op"] == "updated"


def test_a_bad_action_yaml_is_422_naming_file_line_and_field(client, make_user):
    _, headers = make_user()
    r = register(client, headers, BROKEN / "bad_timeout")
    assert r.status_code == 422
    details = r.json["error"]["details"]
    assert details["file"] == "actions/slow.yaml"
    assert details["line"] == 4 and details["field"] == "timeout"
    assert details["fields"] == {"timeout": "must be a number greater than 0"}
    assert "actions/slow.yaml, line 4" in r.json["error"]["message"]


def test_a_yaml_syntax_error_is_422_with_the_file_and_line(client, make_user):
    _, headers = make_user()
    r = register(client, headers, BROKEN / "bad_yaml")
    assert r.status_code == 422
    assert r.json["error"]["details"]["file"] == "actions/echo.yaml"
    assert r.json["error"]["details"]["line"] == 5
    assert "invalid yaml" in r.json["error"]["message"]


def test_a_bad_pack_yaml_is_422_naming_the_ref_field(client, make_user):
    _, headers = make_user()
    r = register(client, headers, BROKEN / "bad_manifest")
    assert r.status_code == 422
    details = r.json["error"]["details"]
    assert (details["file"], details["line"], details["field"]) == ("pack.yaml", 2, "ref")


def test_a_rule_naming_an_unknown_action_is_422_and_nothing_is_registered(
    client, make_user, engine
):
    user, headers = make_user()
    r = register(client, headers, BROKEN / "bad_rule")
    assert r.status_code == 422
    details = r.json["error"]["details"]
    assert details["file"] == "rules/lost.yaml" and details["field"] == "action"
    assert details["line"] == 3
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(models.packs).where(
            models.packs.c.tenant_id == user["tenant_id"])).scalar_one()
    assert count == 0


@pytest.mark.parametrize("path", ["relative/dir", str(FIXTURES / "no_such_pack"), 42,
                                  "/tmp/\u0000x"])
def test_a_path_that_is_not_an_existing_absolute_folder_is_422(client, make_user, path):
    _, headers = make_user()
    r = client.post("/api/v1/packs", headers=headers, json={"path": path})
    assert r.status_code == 422
    assert "path" in r.json["error"]["details"]["fields"]


def test_an_empty_pack_is_created_from_ref_version_and_description(client, make_user):
    user, headers = make_user()
    r = client.post("/api/v1/packs", headers=headers,
                    json={"ref": "my_pack", "version": "2.1.0", "description": "api only"})
    assert r.status_code == 201
    pack = r.json["data"]
    assert (pack["ref"], pack["version"], pack["description"]) == ("my_pack", "2.1.0", "api only")
    assert pack["actions"] == [] and pack["tenant_id"] == user["tenant_id"]


@pytest.mark.parametrize("body, field", [
    ({"ref": "Bad-Ref"}, "ref"),
    ({"ref": "ok_ref", "version": "not a version"}, "version"),
    ({"ref": "ok_ref", "force": "yes"}, "force"),
    ({"path": "/tmp", "ref": "both"}, "ref"),
    ({}, "path"),
    ({"ref": "ok_ref", "colour": "red"}, "colour"),
])
def test_invalid_register_bodies_are_422_naming_the_field(client, make_user, body, field):
    _, headers = make_user()
    r = client.post("/api/v1/packs", headers=headers, json=body)
    assert r.status_code == 422
    assert field in r.json["error"]["details"]["fields"]


def test_malformed_json_is_400(client, make_user):
    _, headers = make_user()
    r = client.post("/api/v1/packs", headers=headers, data="{nope",
                    content_type="application/json")
    assert r.status_code == 400 and r.json["error"]["code"] == "bad_request"


def test_an_uploaded_tar_gz_is_extracted_under_run_dir_and_registered(
    client, make_user, settings
):
    user, headers = make_user()
    data = tar_gz(TEST_PACK, top="test_pack")
    r = upload(client, headers, data)
    assert r.status_code == 201, r.json
    pack = r.json["data"]
    assert pack["actions"] == ["test_pack.echo", "test_pack.echo_twice", "test_pack.fail"]
    folder = settings.run_dir.resolve() / "packs" / str(user["tenant_id"]) / "test_pack"
    extracted = Path(pack["source_path"])
    assert extracted.parent == folder and extracted.name.startswith("1.0.0-")
    assert (extracted / "actions" / "echo.py").is_file()


def test_an_archive_with_pack_yaml_at_its_top_is_accepted(client, make_user):
    _, headers = make_user()
    r = upload(client, headers, tar_gz(TEST_PACK, top=None))
    assert r.status_code == 201 and r.json["data"]["ref"] == "test_pack"


@pytest.mark.parametrize("data", [
    evil_tar_gz("../escape.txt"),
    evil_tar_gz("/etc/evil.txt"),
    evil_tar_gz("link", link_to="../../../../etc/passwd"),
    evil_tar_gz("abs_link", link_to="/etc/passwd"),
    b"this is not a gzip file",
])
def test_hostile_or_broken_archives_are_422(client, make_user, data):
    _, headers = make_user()
    r = upload(client, headers, data)
    assert r.status_code == 422
    assert "file" in r.json["error"]["details"]["fields"]


def test_an_upload_without_a_file_field_is_422(client, make_user):
    _, headers = make_user()
    r = client.post("/api/v1/packs", headers=headers, content_type="multipart/form-data",
                    data={"force": "true"})
    assert r.status_code == 422 and "file" in r.json["error"]["details"]["fields"]


def test_the_list_holds_own_and_system_packs_newest_first_with_totals(
    client, make_user, system_pack, engine
):
    _, headers = make_user()
    _, other = make_user()
    create_pack(client, other)
    mine = [create_pack(client, headers) for _ in range(3)]
    with engine.connect() as conn:
        system_count = conn.execute(select(func.count()).select_from(models.packs).where(
            models.packs.c.tenant_id.is_(None))).scalar_one()
    r = client.get("/api/v1/packs?limit=2", headers=headers).json
    assert r["pagination"] == {"total": 3 + system_count, "limit": 2, "offset": 0,
                               "next_offset": 2}
    assert [p["id"] for p in r["data"]] == [mine[2]["id"], mine[1]["id"]]
    everything = client.get("/api/v1/packs?limit=200", headers=headers).json["data"]
    refs = {p["ref"] for p in everything}
    assert system_pack["ref"] in refs
    assert all(p["tenant_id"] in (None, mine[0]["tenant_id"]) for p in everything)


def test_a_system_pack_is_visible_but_a_tenant_cannot_delete_or_reload_it(
    client, make_user, system_pack
):
    _, headers = make_user()
    shown = client.get(f"/api/v1/packs/{system_pack['id']}", headers=headers)
    assert shown.status_code == 200 and shown.json["data"]["system"] is True
    assert shown.json["data"]["tenant_id"] is None
    assert "source_path" not in shown.json["data"]
    deleted = client.delete(f"/api/v1/packs/{system_pack['id']}", headers=headers)
    assert deleted.status_code == 403 and "system pack" in deleted.json["error"]["message"]
    reloaded = client.post(f"/api/v1/packs/{system_pack['id']}/reload", headers=headers)
    assert reloaded.status_code == 403


def test_a_tenant_cannot_take_a_system_packs_ref(client, make_user, system_pack):
    _, headers = make_user()
    r = client.post("/api/v1/packs", headers=headers, json={"ref": system_pack["ref"]})
    assert r.status_code == 409 and "system pack" in r.json["error"]["message"]


def test_system_pack_registration_is_idempotent_with_force(engine, system_pack, tmp_path):
    from nameko_services.domain import packs

    with engine.begin() as conn:
        row = packs.find_own(conn, None, system_pack["ref"])
        again = packs.register_from_path(conn, tmp_path / system_pack["ref"], tenant_id=None,
                                         system=True, force=True, actor_type="service",
                                         actor="test")
    assert row is not None and again["id"] == system_pack["id"]
    assert again["actions"] == system_pack["actions"]


def test_another_tenants_pack_is_404_and_so_are_non_numeric_ids(client, make_user):
    _, headers_a = make_user()
    _, headers_b = make_user()
    pack = create_pack(client, headers_a)
    for path in (f"/api/v1/packs/{pack['id']}", "/api/v1/packs/1 OR 1=1",
                 "/api/v1/packs/999999999"):
        r = client.get(path, headers=headers_b)
        assert r.status_code == 404 and r.json["error"]["code"] == "not_found", path
    assert client.delete(f"/api/v1/packs/{pack['id']}", headers=headers_b).status_code == 404
    reload = client.post(f"/api/v1/packs/{pack['id']}/reload", headers=headers_b)
    assert reload.status_code == 404


def test_deleting_a_pack_removes_its_contents_publishes_and_audits(
    client, make_user, engine, published
):
    _, headers = make_user()
    pack = register(client, headers, TEST_PACK).json["data"]
    actions = client.get("/api/v1/actions?pack=test_pack", headers=headers).json["data"]
    published.clear()
    r = client.delete(f"/api/v1/packs/{pack['id']}", headers=headers)
    assert r.status_code == 204
    assert client.get(f"/api/v1/packs/{pack['id']}", headers=headers).status_code == 404
    assert client.get(f"/api/v1/actions/{actions[0]['id']}", headers=headers).status_code == 404
    assert [p["op"] for p in events_of(published, messages.RULE_CHANGED)] == ["deleted"]
    assert [p["op"] for p in events_of(published, messages.TRIGGER_CHANGED)] == ["deleted"]
    assert events_of(published, messages.PACK_CHANGED)[0]["op"] == "deleted"
    with engine.connect() as conn:
        audit = conn.execute(select(models.audit_log.c.action).where(
            models.audit_log.c.entity_type == "pack",
            models.audit_log.c.entity_id == str(pack["id"])).order_by(models.audit_log.c.id)
        ).scalars().all()
    assert audit == ["pack.created", "pack.deleted"]


def test_deleting_a_pack_also_removes_rules_elsewhere_that_use_its_actions(client, make_user):
    _, headers = make_user()
    pack = register(client, headers, TEST_PACK).json["data"]
    trigger = client.post("/api/v1/triggers", headers=headers,
                          json={"name": "outside", "type": "webhook"}).json["data"]
    rule = client.post("/api/v1/rules", headers=headers, json={
        "name": "uses_echo", "trigger": trigger["id"], "action": "test_pack.echo"}).json["data"]
    client.delete(f"/api/v1/packs/{pack['id']}", headers=headers)
    assert client.get(f"/api/v1/rules/{rule['id']}", headers=headers).status_code == 404
    assert client.get(f"/api/v1/triggers/{trigger['id']}", headers=headers).status_code == 200


def test_reload_rereads_the_folder_and_updates_in_place(client, make_user, tmp_path):
    _, headers = make_user()
    folder = copy_pack(TEST_PACK, tmp_path)
    pack = register(client, headers, folder).json["data"]
    (folder / "pack.yaml").write_text("ref: test_pack\nversion: 1.1.0\n")
    (folder / "actions" / "noop.yaml").write_text("name: noop\nrunner_type: shell\ncode: 'true'\n")
    r = client.post(f"/api/v1/packs/{pack['id']}/reload", headers=headers)
    assert r.status_code == 200, r.json
    assert r.json["data"]["version"] == "1.1.0"
    assert "test_pack.noop" in r.json["data"]["actions"]
    assert r.json["data"]["id"] == pack["id"]


def test_reload_accepts_a_new_archive_in_the_body(client, make_user, tmp_path):
    _, headers = make_user()
    pack = upload(client, headers, tar_gz(TEST_PACK)).json["data"]
    folder = copy_pack(TEST_PACK, tmp_path)
    shutil.rmtree(folder / "actions" / "workflows")
    (folder / "actions" / "echo_twice.yaml").unlink()
    r = upload(client, headers, tar_gz(folder), url=f"/api/v1/packs/{pack['id']}/reload")
    assert r.status_code == 200, r.json
    assert r.json["data"]["actions"] == ["test_pack.echo", "test_pack.fail"]
    assert r.json["data"]["source_path"] != pack["source_path"]


def test_reload_with_a_different_ref_is_422(client, make_user, tmp_path):
    _, headers = make_user()
    pack = register(client, headers, TEST_PACK).json["data"]
    other = copy_pack(TEST_PACK, tmp_path, unique_ref("other"))
    r = upload(client, headers, tar_gz(other), url=f"/api/v1/packs/{pack['id']}/reload")
    assert r.status_code == 422 and "ref" in r.json["error"]["details"]["fields"]


def test_reloading_an_api_only_pack_without_an_archive_is_409(client, make_user):
    _, headers = make_user()
    pack = create_pack(client, headers)
    r = client.post(f"/api/v1/packs/{pack['id']}/reload", headers=headers)
    assert r.status_code == 409


@pytest.mark.parametrize("role", ["viewer", "executor"])
def test_viewers_and_executors_cannot_register_or_delete_packs(client, make_user, role):
    _, admin = make_user()
    pack = create_pack(client, admin)
    _, headers = make_user(role=role, admin_headers=admin)
    r = client.post("/api/v1/packs", headers=headers, json={"ref": unique_ref()})
    assert r.status_code == 403 and role in r.json["error"]["message"]
    assert client.delete(f"/api/v1/packs/{pack['id']}", headers=headers).status_code == 403
    assert client.get(f"/api/v1/packs/{pack['id']}", headers=headers).status_code == 200


def test_an_editor_can_register_packs(client, make_user):
    _, admin = make_user()
    _, headers = make_user(role="editor", admin_headers=admin)
    assert client.post("/api/v1/packs", headers=headers,
                       json={"ref": unique_ref()}).status_code == 201


def test_pack_routes_need_a_token(client):
    assert client.get("/api/v1/packs").status_code == 401
    assert client.post("/api/v1/packs", json={"ref": "x"}).status_code == 401


def test_a_pack_sensor_is_listed_with_its_health_for_its_tenant_only(client, make_user):
    _, headers = make_user()
    _, stranger = make_user()
    pack = register(client, headers, FIXTURES / "sensor_pack").json["data"]
    assert pack["sensors"] == ["sensor_pack.file_watch"]
    assert pack["triggers"] == ["sensor_pack.file_changed"]
    listed = client.get("/api/v1/sensors?pack=sensor_pack", headers=headers).json
    assert listed["pagination"]["total"] == 1
    [sensor] = listed["data"]
    assert sensor["trigger_types"] == ["sensor_pack.file_changed"]
    assert (sensor["status"], sensor["enabled"], sensor["poll_interval"]) == ("stopped", True, 5)
    assert sensor["config"] == {"path": "/tmp/watched.txt"}
    url = f"/api/v1/sensors/{sensor['id']}"
    assert client.get(url, headers=headers).json["data"] == sensor
    assert client.get(url, headers=stranger).status_code == 404
    assert client.get("/api/v1/sensors/abc", headers=headers).status_code == 404
    assert client.get("/api/v1/sensors?pack=sensor_pack",
                      headers=stranger).json["pagination"]["total"] == 0


def test_a_sensor_naming_an_unknown_trigger_is_422_naming_its_file(client, make_user, tmp_path):
    _, headers = make_user()
    folder = copy_pack(FIXTURES / "sensor_pack", tmp_path)
    (folder / "triggers" / "file_changed.yaml").unlink()
    r = register(client, headers, folder)
    assert r.status_code == 422
    details = r.json["error"]["details"]
    assert (details["file"], details["line"], details["field"]) == (
        "sensors/file_watch.yaml", 4, "trigger_types.0")
