"""/api/v1/triggers against the real database: each type's parameters, webhooks, tenancy."""

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


def post(client, headers, **body):
    body.setdefault("name", unique_ref("t"))
    return client.post("/api/v1/triggers", headers=headers, json=body)


def test_an_interval_trigger_is_created_active_and_announced(client, make_user, published):
    user, headers = make_user()
    r = post(client, headers, name="every5", type="interval", parameters={"seconds": 5},
             description="tick")
    assert r.status_code == 201, r.json
    trigger = r.json["data"]
    assert trigger["ref"] == "every5" and trigger["type"] == "interval"
    assert trigger["parameters"] == {"seconds": 5} and trigger["status"] == "active"
    assert trigger["tenant_id"] == user["tenant_id"] and trigger["created_at"].endswith("Z")
    assert "webhook_token" not in trigger and "webhook_url" not in trigger
    assert published == [(messages.GATEWAY, messages.TRIGGER_CHANGED, {
        "trigger_id": trigger["id"], "tenant_id": user["tenant_id"], "op": "created"})]


def test_interval_seconds_may_be_a_float(client, make_user):
    _, headers = make_user()
    r = post(client, headers, type="interval", parameters={"seconds": 0.5})
    assert r.status_code == 201 and r.json["data"]["parameters"] == {"seconds": 0.5}


def test_a_date_is_stored_normalised_to_utc(client, make_user):
    _, headers = make_user()
    r = post(client, headers, type="date", parameters={"date": "2026-01-27T12:30:00+02:00"})
    assert r.status_code == 201
    assert r.json["data"]["parameters"] == {"date": "2026-01-27T10:30:00.000Z"}
    naive = post(client, headers, type="date", parameters={"date": "2026-01-27T10:30:00"})
    assert naive.json["data"]["parameters"] == {"date": "2026-01-27T10:30:00.000Z"}


@pytest.mark.parametrize("expression", ["*/5 * * * * *", "0,3,6,12 * * * * *", "*/5 * * * *"])
def test_cron_accepts_six_fields_seconds_first_or_five(client, make_user, expression):
    _, headers = make_user()
    r = post(client, headers, type="cron", parameters={"expression": expression})
    assert r.status_code == 201, r.json
    assert r.json["data"]["parameters"] == {"expression": expression, "timezone": "UTC"}


def test_cron_keeps_a_named_timezone(client, make_user):
    _, headers = make_user()
    r = post(client, headers, type="cron",
             parameters={"expression": "0 0 9 * * *", "timezone": "Europe/Paris"})
    assert r.status_code == 201 and r.json["data"]["parameters"]["timezone"] == "Europe/Paris"


@pytest.mark.parametrize("kind, parameters, field", [
    ("interval", {"seconds": 0}, "parameters.seconds"),
    ("interval", {"seconds": -1}, "parameters.seconds"),
    ("interval", {"seconds": "5"}, "parameters.seconds"),
    ("interval", {}, "parameters.seconds"),
    ("interval", {"seconds": 5, "every": 2}, "parameters.every"),
    ("date", {"date": "tomorrow"}, "parameters.date"),
    ("date", {}, "parameters.date"),
    ("cron", {"expression": "61 * * * *"}, "parameters.expression"),
    ("cron", {"expression": "* * *"}, "parameters.expression"),
    ("cron", {"expression": "* * * * * * *"}, "parameters.expression"),
    ("cron", {"expression": "* * * * *", "timezone": "Mars/Olympus"}, "parameters.timezone"),
    ("webhook", {"secret": "x"}, "parameters.secret"),
    ("webhook", [], "parameters"),
    ("sometimes", {}, "type"),
])
def test_invalid_trigger_parameters_are_422_naming_the_field(
    client, make_user, kind, parameters, field
):
    _, headers = make_user()
    r = post(client, headers, type=kind, parameters=parameters)
    assert r.status_code == 422, r.json
    assert field in r.json["error"]["details"]["fields"]


def test_a_webhook_trigger_gets_a_url_and_a_token_its_tenant_alone_sees(client, make_user):
    _, headers = make_user()
    trigger = post(client, headers, type="webhook").json["data"]
    assert trigger["webhook_url"] == f"/api/v1/webhooks/{trigger['id']}"
    assert len(trigger["webhook_token"]) >= 40
    again = client.get(f"/api/v1/triggers/{trigger['id']}", headers=headers).json["data"]
    assert again["webhook_token"] == trigger["webhook_token"]
    other = post(client, headers, type="webhook").json["data"]
    assert other["webhook_token"] != trigger["webhook_token"]
    _, stranger = make_user()
    assert client.get(f"/api/v1/triggers/{trigger['id']}", headers=stranger).status_code == 404


def test_a_custom_trigger_keeps_free_form_parameters(client, make_user):
    _, headers = make_user()
    r = post(client, headers, type="custom", parameters={"payload_schema": {"type": "object"}})
    assert r.status_code == 201 and r.json["data"]["parameters"] == {
        "payload_schema": {"type": "object"}}


def test_a_trigger_in_a_pack_gets_a_qualified_ref_and_duplicates_are_409(client, make_user):
    _, headers = make_user()
    pack = create_pack(client, headers)
    r = post(client, headers, pack=pack["ref"], name="hook", type="webhook")
    assert r.status_code == 201 and r.json["data"]["ref"] == f"{pack['ref']}.hook"
    assert r.json["data"]["pack"] == pack["ref"]
    assert post(client, headers, pack=pack["ref"], name="hook",
                type="webhook").status_code == 409
    assert post(client, headers, name="solo", type="webhook").status_code == 201
    assert post(client, headers, name="solo", type="webhook").status_code == 409
    listed = client.get(f"/api/v1/packs/{pack['id']}", headers=headers).json["data"]
    assert listed["triggers"] == [f"{pack['ref']}.hook"]


def test_a_system_packs_trigger_is_visible_without_its_token_and_not_deletable(
    client, make_user, system_pack
):
    _, headers = make_user()
    triggers = client.get(f"/api/v1/triggers?pack={system_pack['ref']}&limit=200",
                          headers=headers).json["data"]
    [hook] = [t for t in triggers if t["ref"] == f"{system_pack['ref']}.hook"]
    assert hook["tenant_id"] is None and "webhook_token" not in hook
    assert client.delete(f"/api/v1/triggers/{hook['id']}", headers=headers).status_code == 403
    add = post(client, headers, pack=system_pack["ref"], type="webhook")
    assert add.status_code == 403


def test_deleting_a_trigger_removes_its_rules_and_announces_both(client, make_user, published):
    user, headers = make_user()
    pack = create_pack(client, headers)
    action = create_action(client, headers, pack["ref"])
    trigger = create_trigger(client, headers, type="interval", parameters={"seconds": 60})
    rule = client.post("/api/v1/rules", headers=headers, json={
        "name": "r", "trigger": trigger["ref"], "action": action["id"]}).json["data"]
    published.clear()
    r = client.delete(f"/api/v1/triggers/{trigger['id']}", headers=headers)
    assert r.status_code == 204
    assert client.get(f"/api/v1/triggers/{trigger['id']}", headers=headers).status_code == 404
    assert client.get(f"/api/v1/rules/{rule['id']}", headers=headers).status_code == 404
    tenant = user["tenant_id"]
    assert [(e, p) for _, e, p in published] == [
        (messages.RULE_CHANGED, {"rule_id": rule["id"], "trigger_id": trigger["id"],
                                 "tenant_id": tenant, "op": "deleted"}),
        (messages.TRIGGER_CHANGED, {"trigger_id": trigger["id"], "tenant_id": tenant,
                                    "op": "deleted"}),
    ]


def test_the_list_paginates_newest_first_and_filters_by_type(client, make_user):
    _, headers = make_user()
    made = [create_trigger(client, headers) for _ in range(3)]
    timer = create_trigger(client, headers, type="interval", parameters={"seconds": 9})
    only_own = client.get("/api/v1/triggers?type=webhook&limit=2", headers=headers).json
    own = [t for t in only_own["data"] if t["tenant_id"] is not None]
    assert [t["id"] for t in own] == [made[2]["id"], made[1]["id"]]
    assert only_own["pagination"]["next_offset"] == 2
    timers = client.get("/api/v1/triggers?type=interval", headers=headers).json["data"]
    assert timer["id"] in [t["id"] for t in timers]
    assert all(t["type"] == "interval" for t in timers)


def test_another_tenants_trigger_is_404_and_so_are_non_numeric_ids(client, make_user):
    _, headers = make_user()
    _, stranger = make_user()
    trigger = create_trigger(client, headers)
    for path in (f"/api/v1/triggers/{trigger['id']}", "/api/v1/triggers/1 OR 1=1"):
        assert client.get(path, headers=stranger).status_code == 404
    assert client.delete(f"/api/v1/triggers/{trigger['id']}",
                         headers=stranger).status_code == 404
    assert trigger["id"] not in [
        t["id"] for t in client.get("/api/v1/triggers?limit=200", headers=stranger).json["data"]]


@pytest.mark.parametrize("role", ["viewer", "executor"])
def test_viewers_and_executors_cannot_write_triggers(client, make_user, role):
    _, admin = make_user()
    trigger = create_trigger(client, admin)
    _, headers = make_user(role=role, admin_headers=admin)
    assert post(client, headers, type="webhook").status_code == 403
    assert client.delete(f"/api/v1/triggers/{trigger['id']}", headers=headers).status_code == 403
    shown = client.get(f"/api/v1/triggers/{trigger['id']}", headers=headers)
    assert shown.status_code == 200
    assert ("webhook_token" in shown.json["data"]) is (role == "executor")


def test_trigger_routes_need_a_token(client):
    assert client.get("/api/v1/triggers").status_code == 401
    assert client.post("/api/v1/triggers", json={}).status_code == 401
