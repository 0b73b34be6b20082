"""/api/v1/actions against the real database: validation per runner, tenancy, RBAC, audit."""

import pytest
from sqlalchemy import select

from nameko_services.domain import messages, models
from tests.support.packs import (
    TEST_PACK,
    create_action,
    create_pack,
    create_trigger,
    delete_system_pack,
    register_system_pack,
    unique_ref,
)

pytestmark = pytest.mark.integration

WORKFLOW = {"tasks": [
    {"name": "one", "action": "core.echo", "parameters": {"message": "{{ params.m }}"}},
    {"name": "two", "action": "core.echo", "depends_on": ["one"]},
]}


@pytest.fixture
def system_pack(engine, tmp_path):
    pack = register_system_pack(engine, tmp_path)
    yield pack
    delete_system_pack(engine, pack["id"])


@pytest.fixture
def tenant(client, make_user):
    """(user, headers, empty pack) of a fresh tenant."""
    user, headers = make_user()
    return user, headers, create_pack(client, headers)


def post(client, headers, body):
    return client.post("/api/v1/actions", headers=headers, json=body)


def test_creating_an_action_echoes_its_definition_with_identity(client, tenant):
    user, headers, pack = tenant
    body = {"pack": pack["ref"], "name": "greet", "runner_type": "python",
            "code": "def run(name):\n    return 'hi ' + name\n",
            "parameters": {"name": {"type": "string", "required": True},
                           "token": {"type": "string", "secret": True}},
            "timeout": 12.5, "retry": {"max_attempts": 3, "delay_seconds": 1},
            "with_items": "{{ names }}", "concurrency": 2, "secrets": ["api_key"],
            "description": "Greets"}
    r = post(client, headers, body)
    assert r.status_code == 201, r.json
    action = r.json["data"]
    for key, value in body.items():
        assert action[key] == value, key
    assert action["ref"] == f"{pack['ref']}.greet"
    assert action["tenant_id"] == user["tenant_id"] and action["pack_id"] == pack["id"]
    assert action["created_at"].endswith("Z")
    assert client.get(f"/api/v1/actions/{action['id']}", headers=headers).json["data"] == action


def test_a_runner_alias_is_stored_under_its_canonical_name(client, tenant):
    _, headers, pack = tenant
    action = create_action(client, headers, pack["ref"], runner_type="python3",
                           code="print('x')")
    assert action["runner_type"] == "python"


def test_an_unknown_runner_is_422_listing_the_known_ones(client, tenant):
    _, headers, pack = tenant
    r = post(client, headers, {"pack": pack["ref"], "name": "x", "runner_type": "cobol",
                               "code": "x"})
    assert r.status_code == 422
    reason = r.json["error"]["details"]["fields"]["runner_type"]
    assert "cobol" in reason and "python" in reason and "shell" in reason


@pytest.mark.parametrize("extra, field", [
    ({}, "entry_point"),
    ({"code": "echo", "entry_point": "actions/echo.sh"}, "entry_point"),
    ({"code": "", }, "code"),
    ({"code": "echo", "timeout": 0}, "timeout"),
    ({"code": "echo", "timeout": "soon"}, "timeout"),
    ({"code": "echo", "retry": {"max_attempts": 0}}, "retry.max_attempts"),
    ({"code": "echo", "retry": {"delay_seconds": -1}}, "retry.delay_seconds"),
    ({"code": "echo", "retry": {"backoff_multiplier": 0.5}}, "retry.backoff_multiplier"),
    ({"code": "echo", "retry": {"max_delay_seconds": -3}}, "retry.max_delay_seconds"),
    ({"code": "echo", "retry": {"tries": 2}}, "retry.tries"),
    ({"code": "echo", "concurrency": 0}, "concurrency"),
    ({"code": "echo", "secrets": "api_key"}, "secrets"),
    ({"code": "echo", "with_items": "{{ items "}, "with_items"),
    ({"code": "echo", "parameters": {"n": {"type": "integer", "required": "yes"}}},
     "parameters.n.required"),
    ({"code": "echo", "parameters": {"n": {"type": "wrong"}}}, "parameters.n.type"),
    ({"code": "echo", "parameters": []}, "parameters"),
    ({"code": "echo", "http_config": {"url": "http://x"}}, "http_config"),
    ({"code": "echo", "name": "has.dot"}, "name"),
    ({"code": "echo", "name": ""}, "name"),
])
def test_invalid_shell_actions_are_422_naming_the_field(client, tenant, extra, field):
    _, headers, pack = tenant
    body = {"pack": pack["ref"], "name": unique_ref("a"), "runner_type": "shell", **extra}
    r = post(client, headers, body)
    assert r.status_code == 422, r.json
    assert field in r.json["error"]["details"]["fields"], r.json


def test_text_postgresql_cannot_store_is_422_not_500(client, tenant):
    _, headers, pack = tenant
    r = post(client, headers, {"pack": pack["ref"], "name": "nul", "runner_type": "shell",
                               "code": "echo \u0000"})
    assert r.status_code == 422 and "code" in r.json["error"]["details"]["fields"]
    listed = client.get("/api/v1/actions?pack=%00", headers=headers)
    assert listed.status_code == 400


def test_an_unknown_body_field_is_422(client, tenant):
    _, headers, pack = tenant
    r = post(client, headers, {"pack": pack["ref"], "name": "x", "runner_type": "shell",
                               "code": "x", "colour": "red"})
    assert r.status_code == 422 and r.json["error"]["details"]["fields"] == {
        "colour": "unknown field"}


def test_an_http_action_needs_http_config_with_compiling_templates(client, tenant):
    _, headers, pack = tenant
    base = {"pack": pack["ref"], "name": "call", "runner_type": "http"}
    missing = post(client, headers, base)
    assert missing.status_code == 422 and "http_config" in missing.json["error"]["details"][
        "fields"]
    bad = post(client, headers, {**base, "http_config": {
        "url": "https://x/{{ params.id", "headers": {"A": "{{ secret.t }}"}}})
    assert bad.status_code == 422 and "http_config.url" in bad.json["error"]["details"]["fields"]
    bad_status = post(client, headers, {**base, "http_config": {
        "url": "https://x", "success_status": [200, 999]}})
    assert "http_config.success_status" in bad_status.json["error"]["details"]["fields"]
    good = post(client, headers, {**base, "http_config": {
        "method": "post", "url": "https://api/{{ params.id }}",
        "headers": {"Authorization": "Bearer {{ secret.api_token }}"},
        "body": "{{ params | tojson }}", "timeout": 10, "success_status": [200, 201]}})
    assert good.status_code == 201, good.json
    assert good.json["data"]["http_config"]["method"] == "POST"


def test_a_container_action_needs_an_image_and_no_host_network(client, tenant):
    _, headers, pack = tenant
    base = {"pack": pack["ref"], "name": "job", "runner_type": "container"}
    r = post(client, headers, {**base, "container_config": {"network": "host"}})
    fields = r.json["error"]["details"]["fields"]
    assert r.status_code == 422 and {"container_config.image", "container_config.network"} <= set(
        fields)
    ok = post(client, headers, {**base, "code": "print(1)", "container_config": {
        "image": "python:3.11-slim", "command": ["python3", "-c", "print(1)"],
        "memory": "256m", "cpus": 1.0, "network": "none", "pull": "if_missing"}})
    assert ok.status_code == 201, ok.json


def test_a_workflow_action_needs_a_valid_workflow_block(client, tenant):
    _, headers, pack = tenant
    base = {"pack": pack["ref"], "name": unique_ref("wf"), "runner_type": "workflow"}
    assert "workflow" in post(client, headers, base).json["error"]["details"]["fields"]
    cyclic = {"tasks": [{"name": "a", "action": "core.echo", "depends_on": ["b"]},
                        {"name": "b", "action": "core.echo", "depends_on": ["a"]}]}
    r = post(client, headers, {**base, "workflow": cyclic})
    assert r.status_code == 422 and "cycle" in r.json["error"]["message"]
    dangling = {"tasks": [{"name": "a", "action": "core.echo", "depends_on": ["ghost"]}]}
    r = post(client, headers, {**base, "workflow": dangling})
    assert "workflow.tasks.0.depends_on" in r.json["error"]["details"]["fields"]
    ok = post(client, headers, {**base, "workflow": WORKFLOW})
    assert ok.status_code == 201 and ok.json["data"]["workflow"] == WORKFLOW


def test_entry_points_must_be_files_inside_the_pack_folder(client, make_user):
    _, headers = make_user()
    r = client.post("/api/v1/packs", headers=headers, json={"path": str(TEST_PACK)})
    assert r.status_code == 201, r.json
    base = {"pack": "test_pack", "runner_type": "python"}
    ok = post(client, headers, {**base, "name": "echo2", "entry_point": "actions/echo.py"})
    assert ok.status_code == 201, ok.json
    bare = post(client, headers, {**base, "name": "echo3", "entry_point": "echo.py"})
    assert bare.status_code == 201 and bare.json["data"]["entry_point"] == "actions/echo.py"
    for path in ("../../../etc/passwd", "/etc/passwd", "actions/missing.py"):
        r = post(client, headers, {**base, "name": "evil", "entry_point": path})
        assert r.status_code == 422, path
        assert "entry_point" in r.json["error"]["details"]["fields"]


def test_an_entry_point_in_a_pack_without_a_folder_is_422(client, tenant):
    _, headers, pack = tenant
    r = post(client, headers, {"pack": pack["ref"], "name": "x", "runner_type": "python",
                               "entry_point": "actions/x.py"})
    assert r.status_code == 422 and "code" in r.json["error"]["details"]["fields"][
        "entry_point"]


def test_an_unknown_pack_is_422_and_a_duplicate_ref_is_409(client, tenant):
    _, headers, pack = tenant
    unknown = post(client, headers, {"pack": "no_such_pack", "name": "x",
                                     "runner_type": "shell", "code": "x"})
    assert unknown.status_code == 422 and "pack" in unknown.json["error"]["details"]["fields"]
    create_action(client, headers, pack["ref"], name="twice")
    again = post(client, headers, {"pack": pack["ref"], "name": "twice",
                                   "runner_type": "shell", "code": "x"})
    assert again.status_code == 409


def test_a_tenant_cannot_add_to_change_or_delete_a_system_packs_actions(
    client, make_user, system_pack
):
    _, headers = make_user()
    add = post(client, headers, {"pack": system_pack["ref"], "name": "mine",
                                 "runner_type": "shell", "code": "x"})
    assert add.status_code == 403 and "system pack" in add.json["error"]["message"]
    listed = client.get(f"/api/v1/actions?pack={system_pack['ref']}", headers=headers).json
    echo = next(a for a in listed["data"] if a["name"] == "echo")
    assert echo["tenant_id"] is None
    assert client.get(f"/api/v1/actions/{echo['id']}", headers=headers).status_code == 200
    patch = client.patch(f"/api/v1/actions/{echo['id']}", headers=headers, json={"timeout": 5})
    assert patch.status_code == 403
    assert client.delete(f"/api/v1/actions/{echo['id']}", headers=headers).status_code == 403


def test_the_list_filters_by_pack_and_paginates_with_totals(client, tenant, make_user):
    _, headers, pack = tenant
    other_pack = create_pack(client, headers)
    made = [create_action(client, headers, pack["ref"]) for _ in range(3)]
    create_action(client, headers, other_pack["ref"])
    r = client.get(f"/api/v1/actions?pack={pack['ref']}&limit=2&offset=1", headers=headers).json
    assert r["pagination"] == {"total": 3, "limit": 2, "offset": 1, "next_offset": None}
    assert [a["id"] for a in r["data"]] == [made[1]["id"], made[0]["id"]]
    _, stranger = make_user()
    theirs = client.get(f"/api/v1/actions?pack={pack['ref']}", headers=stranger).json
    assert theirs["pagination"]["total"] == 0


def test_another_tenants_action_is_404_and_so_are_non_numeric_ids(client, tenant, make_user):
    _, headers, pack = tenant
    action = create_action(client, headers, pack["ref"])
    _, stranger = make_user()
    for path in (f"/api/v1/actions/{action['id']}", "/api/v1/actions/1 OR 1=1",
                 "/api/v1/actions/-1"):
        assert client.get(path, headers=stranger).status_code == 404, path
    assert client.patch(f"/api/v1/actions/{action['id']}", headers=stranger,
                        json={"timeout": 3}).status_code == 404
    assert client.delete(f"/api/v1/actions/{action['id']}", headers=stranger).status_code == 404


def test_patch_changes_fields_and_validates_the_whole_definition(client, tenant):
    _, headers, pack = tenant
    action = create_action(client, headers, pack["ref"], timeout=5)
    url = f"/api/v1/actions/{action['id']}"
    r = client.patch(url, headers=headers, json={"timeout": 60, "description": "slower"})
    assert r.status_code == 200
    assert (r.json["data"]["timeout"], r.json["data"]["description"]) == (60, "slower")
    assert r.json["data"]["code"] == action["code"]
    switched = client.patch(url, headers=headers, json={"runner_type": "http", "http_config": {
        "url": "https://example.com"}})
    assert switched.status_code == 422 and "code" in switched.json["error"]["details"]["fields"]
    renamed = client.patch(url, headers=headers, json={"name": "other"})
    assert renamed.status_code == 422 and renamed.json["error"]["details"]["fields"] == {
        "name": "cannot be changed"}
    bad = client.patch(url, headers=headers, json={"timeout": -1})
    assert bad.status_code == 422
    assert client.get(url, headers=headers).json["data"]["timeout"] == 60


def test_deleting_an_action_removes_the_rules_that_run_it(client, tenant, published):
    _, headers, pack = tenant
    action = create_action(client, headers, pack["ref"])
    trigger = create_trigger(client, headers)
    rule = client.post("/api/v1/rules", headers=headers, json={
        "name": "r", "trigger": trigger["id"], "action": action["ref"]}).json["data"]
    published.clear()
    assert client.delete(f"/api/v1/actions/{action['id']}", headers=headers).status_code == 204
    assert client.get(f"/api/v1/actions/{action['id']}", headers=headers).status_code == 404
    assert client.get(f"/api/v1/rules/{rule['id']}", headers=headers).status_code == 404
    assert [(e, p["rule_id"], p["op"]) for _, e, p in published] == [
        (messages.RULE_CHANGED, rule["id"], "deleted")]


def test_action_changes_are_audited_with_the_acting_user(client, tenant, engine):
    user, headers, pack = tenant
    action = create_action(client, headers, pack["ref"])
    client.patch(f"/api/v1/actions/{action['id']}", headers=headers, json={"timeout": 9})
    client.delete(f"/api/v1/actions/{action['id']}", headers=headers)
    log = models.audit_log
    with engine.connect() as conn:
        rows = conn.execute(select(log.c.action, log.c.actor, log.c.actor_type).where(
            log.c.entity_type == "action", log.c.entity_id == str(action["id"])
        ).order_by(log.c.id)).all()
    assert [r.action for r in rows] == ["action.created", "action.updated", "action.deleted"]
    assert {(r.actor, r.actor_type) for r in rows} == {(f"user:{user['id']}", "user")}


@pytest.mark.parametrize("role", ["viewer", "executor"])
def test_viewers_and_executors_cannot_write_actions(client, make_user, role):
    _, admin = make_user()
    pack = create_pack(client, admin)
    action = create_action(client, admin, pack["ref"])
    _, headers = make_user(role=role, admin_headers=admin)
    r = post(client, headers, {"pack": pack["ref"], "name": "x", "runner_type": "shell",
                               "code": "x"})
    assert r.status_code == 403 and "write" in r.json["error"]["message"]
    url = f"/api/v1/actions/{action['id']}"
    assert client.patch(url, headers=headers, json={"timeout": 3}).status_code == 403
    assert client.delete(url, headers=headers).status_code == 403
    assert client.get(url, headers=headers).status_code == 200


def test_action_routes_need_a_token_and_well_formed_json(client, tenant):
    _, headers, _ = tenant
    assert client.get("/api/v1/actions").status_code == 401
    r = client.post("/api/v1/actions", headers=headers, data="{",
                    content_type="application/json")
    assert r.status_code == 400
