"""/api/v1/rules against the real database: resolution, templates, patching, announcements."""

import pytest

from nameko_services.domain import messages
from tests.support.packs import (
    create_action,
    create_pack,
    create_trigger,
    delete_system_pack,
    register_system_pack,
    unique_ref,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def system_pack(engine, tmp_path):
    pack = register_system_pack(engine, tmp_path)
    yield pack
    delete_system_pack(engine, pack["id"])


@pytest.fixture
def setup(client, make_user):
    """A tenant with a pack, an action and a webhook trigger: (user, headers, action, trigger)."""
    user, headers = make_user()
    pack = create_pack(client, headers)
    action = create_action(client, headers, pack["ref"],
                           parameters={"message": {"type": "string"}})
    return user, headers, action, create_trigger(client, headers)


def post(client, headers, **body):
    body.setdefault("name", unique_ref("r"))
    return client.post("/api/v1/rules", headers=headers, json=body)


def test_a_rule_links_trigger_and_action_by_ref_and_is_announced(client, setup, published):
    user, headers, action, trigger = setup
    published.clear()
    r = post(client, headers, name="on_hook", trigger=trigger["ref"], action=action["ref"],
             criteria="{{ trigger.data.severity == 'high' }}",
             parameters={"message": "{{ trigger.data.text }}"}, description="d")
    assert r.status_code == 201, r.json
    rule = r.json["data"]
    assert (rule["ref"], rule["trigger_id"], rule["action_id"]) == (
        "on_hook", trigger["id"], action["id"])
    assert (rule["trigger"], rule["action"]) == (trigger["ref"], action["ref"])
    assert rule["enabled"] is True and rule["notify_on_trigger"] is False
    assert rule["tenant_id"] == user["tenant_id"] and rule["created_at"].endswith("Z")
    assert published == [(messages.GATEWAY, messages.RULE_CHANGED, {
        "rule_id": rule["id"], "trigger_id": trigger["id"], "tenant_id": user["tenant_id"],
        "op": "created"})]
    assert client.get(f"/api/v1/rules/{rule['id']}", headers=headers).json["data"] == rule


def test_trigger_and_action_may_be_given_by_id(client, setup):
    _, headers, action, trigger = setup
    r = post(client, headers, trigger=trigger["id"], action=action["id"], enabled=False,
             notify_on_trigger=True)
    assert r.status_code == 201
    assert r.json["data"]["enabled"] is False and r.json["data"]["notify_on_trigger"] is True


def test_a_rule_may_run_a_system_action_on_a_system_trigger(client, make_user, system_pack):
    _, headers = make_user()
    r = post(client, headers, trigger=f"{system_pack['ref']}.hook",
             action=f"{system_pack['ref']}.echo")
    assert r.status_code == 201, r.json


def test_a_rule_in_a_pack_gets_a_qualified_ref_but_not_in_a_system_pack(
    client, setup, system_pack
):
    _, headers, action, trigger = setup
    pack = action["pack"]
    r = post(client, headers, pack=pack, name="packed", trigger=trigger["id"],
             action=action["id"])
    assert r.status_code == 201 and r.json["data"]["ref"] == f"{pack}.packed"
    refused = post(client, headers, pack=system_pack["ref"], trigger=trigger["id"],
                   action=action["id"])
    assert refused.status_code == 403


@pytest.mark.parametrize("field, value", [
    ("trigger", "no_such.trigger"),
    ("trigger", 999999999),
    ("action", "no_such.action"),
    ("action", 999999999),
])
def test_unknown_trigger_or_action_is_422_naming_the_field(client, setup, field, value):
    _, headers, action, trigger = setup
    body = {"trigger": trigger["id"], "action": action["id"], field: value}
    r = post(client, headers, **body)
    assert r.status_code == 422
    assert r.json["error"]["details"]["fields"] == {field: f"no such {field}"}


def test_another_tenants_trigger_cannot_be_used(client, setup, make_user):
    _, headers, action, _ = setup
    _, stranger = make_user()
    theirs = create_trigger(client, stranger)
    r = post(client, headers, trigger=theirs["id"], action=action["id"])
    assert r.status_code == 422 and "trigger" in r.json["error"]["details"]["fields"]


@pytest.mark.parametrize("extra, field", [
    ({"criteria": "{{ trigger.data.x == }}"}, "criteria"),
    ({"criteria": 5}, "criteria"),
    ({"parameters": {"message": "{{ trigger.data.x "}}, "parameters.message"),
    ({"parameters": ["x"]}, "parameters"),
    ({"enabled": "yes"}, "enabled"),
    ({"notify_on_trigger": 1}, "notify_on_trigger"),
    ({"name": "a.b"}, "name"),
    ({"trigger": None}, "trigger"),
    ({"action": True}, "action"),
    ({"colour": "red"}, "colour"),
])
def test_invalid_rules_are_422_naming_the_field(client, setup, extra, field):
    _, headers, action, trigger = setup
    body = {"trigger": trigger["id"], "action": action["id"], **extra}
    r = post(client, headers, **body)
    assert r.status_code == 422, r.json
    assert field in r.json["error"]["details"]["fields"]


def test_criteria_without_braces_is_accepted(client, setup):
    _, headers, action, trigger = setup
    r = post(client, headers, trigger=trigger["id"], action=action["id"],
             criteria="trigger.data.count > 100")
    assert r.status_code == 201 and r.json["data"]["criteria"] == "trigger.data.count > 100"


def test_a_duplicate_rule_name_is_409(client, setup):
    _, headers, action, trigger = setup
    assert post(client, headers, name="same", trigger=trigger["id"],
                action=action["id"]).status_code == 201
    assert post(client, headers, name="same", trigger=trigger["id"],
                action=action["id"]).status_code == 409


def test_patch_disables_a_rule_and_announces_the_update(client, setup, published):
    user, headers, action, trigger = setup
    rule = post(client, headers, trigger=trigger["id"], action=action["id"]).json["data"]
    published.clear()
    r = client.patch(f"/api/v1/rules/{rule['id']}", headers=headers, json={"enabled": False})
    assert r.status_code == 200 and r.json["data"]["enabled"] is False
    assert r.json["data"]["updated_at"] >= rule["updated_at"]
    assert published == [(messages.GATEWAY, messages.RULE_CHANGED, {
        "rule_id": rule["id"], "trigger_id": trigger["id"], "tenant_id": user["tenant_id"],
        "op": "updated"})]
    assert client.get(f"/api/v1/rules/{rule['id']}",
                      headers=headers).json["data"]["enabled"] is False


def test_patch_changes_criteria_parameters_and_action(client, setup):
    _, headers, action, trigger = setup
    other = create_action(client, headers, action["pack"])
    rule = post(client, headers, trigger=trigger["id"], action=action["id"]).json["data"]
    r = client.patch(f"/api/v1/rules/{rule['id']}", headers=headers, json={
        "criteria": "{{ trigger.data.ok }}", "parameters": {"message": "{{ event.id }}"},
        "action": other["ref"], "notify_on_trigger": True, "description": "new"})
    assert r.status_code == 200, r.json
    data = r.json["data"]
    assert (data["criteria"], data["action_id"], data["action"]) == (
        "{{ trigger.data.ok }}", other["id"], other["ref"])
    assert data["parameters"] == {"message": "{{ event.id }}"}
    assert data["notify_on_trigger"] is True and data["description"] == "new"


@pytest.mark.parametrize("patch, status", [
    ({"trigger": 1}, 422),
    ({"name": "renamed"}, 422),
    ({"criteria": "{{ (( }}"}, 422),
    ({"action": "no_such.action"}, 422),
    ({"enabled": "false"}, 422),
])
def test_invalid_patches_are_refused_and_change_nothing(client, setup, patch, status):
    _, headers, action, trigger = setup
    rule = post(client, headers, trigger=trigger["id"], action=action["id"]).json["data"]
    r = client.patch(f"/api/v1/rules/{rule['id']}", headers=headers, json=patch)
    assert r.status_code == status
    assert client.get(f"/api/v1/rules/{rule['id']}", headers=headers).json["data"] == rule


def test_delete_removes_the_rule_and_announces_it(client, setup, published):
    user, headers, action, trigger = setup
    rule = post(client, headers, trigger=trigger["id"], action=action["id"]).json["data"]
    published.clear()
    assert client.delete(f"/api/v1/rules/{rule['id']}", headers=headers).status_code == 204
    assert client.get(f"/api/v1/rules/{rule['id']}", headers=headers).status_code == 404
    assert published == [(messages.GATEWAY, messages.RULE_CHANGED, {
        "rule_id": rule["id"], "trigger_id": trigger["id"], "tenant_id": user["tenant_id"],
        "op": "deleted"})]


def test_the_list_filters_by_trigger_and_enabled_and_paginates(client, setup):
    _, headers, action, trigger = setup
    other_trigger = create_trigger(client, headers)
    on = [post(client, headers, trigger=trigger["id"], action=action["id"]).json["data"]
          for _ in range(3)]
    off = post(client, headers, trigger=trigger["id"], action=action["id"],
               enabled=False).json["data"]
    elsewhere = post(client, headers, trigger=other_trigger["id"],
                     action=action["id"]).json["data"]
    by_trigger = client.get(f"/api/v1/rules?trigger_id={trigger['id']}&limit=2",
                            headers=headers).json
    assert by_trigger["pagination"] == {"total": 4, "limit": 2, "offset": 0, "next_offset": 2}
    assert [r["id"] for r in by_trigger["data"]] == [off["id"], on[2]["id"]]
    disabled = client.get("/api/v1/rules?enabled=false", headers=headers).json["data"]
    assert [r["id"] for r in disabled] == [off["id"]]
    enabled = client.get("/api/v1/rules?enabled=true", headers=headers).json
    assert enabled["pagination"]["total"] == 4 and elsewhere["id"] in [
        r["id"] for r in enabled["data"]]


@pytest.mark.parametrize("query", ["enabled=maybe", "trigger_id=abc", "limit=0", "limit=500"])
def test_bad_list_queries_are_400(client, setup, query):
    _, headers, _, _ = setup
    r = client.get(f"/api/v1/rules?{query}", headers=headers)
    assert r.status_code == 400 and r.json["error"]["code"] == "bad_request"


def test_another_tenants_rule_is_404_and_so_are_non_numeric_ids(client, setup, make_user):
    _, headers, action, trigger = setup
    rule = post(client, headers, trigger=trigger["id"], action=action["id"]).json["data"]
    _, stranger = make_user()
    for path in (f"/api/v1/rules/{rule['id']}", "/api/v1/rules/1 OR 1=1", "/api/v1/rules/1.5"):
        assert client.get(path, headers=stranger).status_code == 404, path
    url = f"/api/v1/rules/{rule['id']}"
    assert client.patch(url, headers=stranger, json={"enabled": False}).status_code == 404
    assert client.delete(url, headers=stranger).status_code == 404
    assert client.get("/api/v1/rules", headers=stranger).json["pagination"]["total"] == 0


@pytest.mark.parametrize("role", ["viewer", "executor"])
def test_viewers_and_executors_cannot_write_rules(client, make_user, role):
    _, admin = make_user()
    pack = create_pack(client, admin)
    action = create_action(client, admin, pack["ref"])
    trigger = create_trigger(client, admin)
    rule = post(client, admin, trigger=trigger["id"], action=action["id"]).json["data"]
    _, headers = make_user(role=role, admin_headers=admin)
    assert post(client, headers, trigger=trigger["id"],
                action=action["id"]).status_code == 403
    url = f"/api/v1/rules/{rule['id']}"
    assert client.patch(url, headers=headers, json={"enabled": False}).status_code == 403
    assert client.delete(url, headers=headers).status_code == 403
    assert client.get(url, headers=headers).json["data"]["enabled"] is True


def test_rule_routes_need_a_token_and_well_formed_json(client, setup):
    _, headers, _, _ = setup
    assert client.get("/api/v1/rules").status_code == 401
    r = client.post("/api/v1/rules", headers=headers, data="[1,", content_type="application/json")
    assert r.status_code == 400
