"""T3.28 audit trail: append-only in the database; every execution transition and every change
of definitions, users, secrets and datastore keys, with actor type and identity."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from nameko_services.domain import executions
from nameko_services.domain.db import transaction
from nameko_services.domain.states import ExecutionStatus as S
from tests.support.factories import make_action, make_pack

pytestmark = pytest.mark.integration


def trail(client, headers, entity_type, entity_id):
    response = client.get(f"/api/v1/audit?entity_type={entity_type}&entity_id={entity_id}"
                          "&limit=200", headers=headers)
    assert response.status_code == 200, response.json
    return response.json["data"]


@pytest.mark.parametrize("statement", [
    "UPDATE audit_log SET actor = 'forged'",
    "DELETE FROM audit_log",
    "TRUNCATE audit_log",
])
def test_the_database_refuses_to_change_or_remove_audit_entries(engine, make_user, statement):
    make_user()  # at least one entry exists
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text(statement))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_log WHERE actor = 'forged'")
                            ).scalar_one() == 0
        assert conn.execute(text("SELECT count(*) FROM audit_log")).scalar_one() > 0


def test_every_lifecycle_transition_is_audited_with_its_actor(client, engine, make_user):
    user, headers = make_user()
    action = make_action(engine, user["tenant_id"], parameters={})
    created = client.post("/api/v1/executions", headers=headers, json={"action": action["ref"]})
    assert created.status_code == 201
    eid = created.json["data"]["id"]
    steps = [(S.SCHEDULED, "service", "executor"), (S.RUNNING, "worker", "host:4242"),
             (S.SUCCEEDED, "worker", "host:4242")]
    for target, actor_type, actor in steps:
        with transaction(engine) as conn:
            assert executions.transition(conn, eid, target, actor_type=actor_type, actor=actor)

    entries = trail(client, headers, "execution", eid)

    assert [(e["action"], e["actor_type"], e["actor"]) for e in entries] == [
        ("execution.created", "user", f"user:{user['id']}"),
        ("execution.scheduled", "service", "executor"),
        ("execution.started", "worker", "host:4242"),
        ("execution.succeeded", "worker", "host:4242"),
    ]
    stamps = [datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")) for e in entries]
    assert stamps == sorted(stamps)
    assert all(e["entity_type"] == "execution" and e["entity_id"] == str(eid) for e in entries)
    assert [e["details"].get("from") for e in entries[1:]] == ["requested", "scheduled",
                                                                "running"]


def test_cancel_pause_and_resume_are_audited(client, engine, make_user):
    user, headers = make_user()
    action = make_action(engine, user["tenant_id"], parameters={})
    eid = client.post("/api/v1/executions", headers=headers,
                      json={"action": action["ref"]}).json["data"]["id"]
    for target in (S.SCHEDULED, S.RUNNING, S.PAUSED, S.RUNNING):
        with transaction(engine) as conn:
            assert executions.transition(conn, eid, target, actor_type="service",
                                         actor="executor")
    assert client.post(f"/api/v1/executions/{eid}/cancel", headers=headers).status_code == 202
    actions = [e["action"] for e in trail(client, headers, "execution", eid)]
    assert actions == ["execution.created", "execution.scheduled", "execution.started",
                       "execution.paused", "execution.resumed", "execution.canceling"]
    assert trail(client, headers, "execution", eid)[-1]["actor"] == f"user:{user['id']}"


def test_definition_changes_are_audited_by_the_user_who_made_them(client, make_user):
    user, headers = make_user()
    me = f"user:{user['id']}"
    pack = client.post("/api/v1/packs", headers=headers, json={"ref": "audited"}).json["data"]
    action = client.post("/api/v1/actions", headers=headers, json={
        "pack": "audited", "name": "a", "runner_type": "python",
        "code": "def run():\n    return 1\n"}).json["data"]
    assert client.patch(f"/api/v1/actions/{action['id']}", headers=headers,
                        json={"description": "new"}).status_code == 200
    trigger = client.post("/api/v1/triggers", headers=headers, json={
        "name": "hook", "type": "webhook", "parameters": {}}).json["data"]
    rule = client.post("/api/v1/rules", headers=headers, json={
        "name": "r", "trigger": trigger["id"], "action": action["ref"]}).json["data"]
    assert client.patch(f"/api/v1/rules/{rule['id']}", headers=headers,
                        json={"enabled": False}).status_code == 200
    assert client.delete(f"/api/v1/rules/{rule['id']}", headers=headers).status_code == 204
    assert client.delete(f"/api/v1/triggers/{trigger['id']}", headers=headers).status_code == 204
    assert client.delete(f"/api/v1/actions/{action['id']}", headers=headers).status_code == 204
    assert client.delete(f"/api/v1/packs/{pack['id']}", headers=headers).status_code == 204

    expected = {
        ("pack", pack["id"]): ["pack.created", "pack.deleted"],
        ("action", action["id"]): ["action.created", "action.updated", "action.deleted"],
        ("trigger", trigger["id"]): ["trigger.created", "trigger.deleted"],
        ("rule", rule["id"]): ["rule.created", "rule.updated", "rule.deleted"],
    }
    for (entity_type, entity_id), actions in expected.items():
        entries = trail(client, headers, entity_type, entity_id)
        assert [e["action"] for e in entries] == actions, entity_type
        assert {(e["actor_type"], e["actor"]) for e in entries} == {("user", me)}


def test_users_secrets_and_datastore_keys_are_audited_without_their_values(
    client, make_user
):
    admin, headers = make_user()
    me = f"user:{admin['id']}"
    new_user, _ = make_user("editor", headers)
    for _ in range(2):
        client.post("/api/v1/secrets", headers=headers, json={"key": "tok", "value": "S3CRET-1"})
        client.post("/api/v1/datastore", headers=headers,
                    json={"key": "cfg", "value": "D4TA-1", "encrypted": True})
    assert client.delete("/api/v1/secrets/tok", headers=headers).status_code == 204
    assert client.delete("/api/v1/datastore/cfg", headers=headers).status_code == 204

    users = trail(client, headers, "user", new_user["id"])
    assert [(e["action"], e["actor"]) for e in users] == [("user.created", me)]
    assert users[0]["details"]["role"] == "editor"
    secret = trail(client, headers, "secret", "tok")
    assert [e["action"] for e in secret] == ["secret.created", "secret.updated", "secret.deleted"]
    data = trail(client, headers, "datastore", "cfg")
    assert [e["action"] for e in data] == ["datastore.created", "datastore.updated",
                                           "datastore.deleted"]
    everything = client.get("/api/v1/audit?limit=200", headers=headers).get_data(as_text=True)
    assert "S3CRET-1" not in everything and "D4TA-1" not in everything


def test_a_secret_parameter_never_reaches_the_audit_trail_or_the_api(client, engine, make_user):
    user, headers = make_user()
    pack = make_pack(engine, user["tenant_id"])
    action = make_action(engine, user["tenant_id"], pack=pack, parameters={
        "token": {"type": "integer", "secret": True, "default": 7},
        "url": {"type": "string"}})
    response = client.post("/api/v1/executions", headers=headers, json={
        "action": action["ref"], "parameters": {"token": "HUNTER2-VALUE", "url": "u"}})
    assert response.status_code == 201
    body = response.get_data(as_text=True)
    execution = response.json["data"]
    assert execution["status"] == "failed" and execution["parameters"]["token"] == "***"
    assert "HUNTER2-VALUE" not in body
    assert "HUNTER2-VALUE" not in client.get(
        f"/api/v1/executions/{execution['id']}", headers=headers).get_data(as_text=True)
    assert "HUNTER2-VALUE" not in client.get("/api/v1/audit?limit=200",
                                             headers=headers).get_data(as_text=True)
    shown = client.get(f"/api/v1/actions/{action['id']}", headers=headers).json["data"]
    assert shown["parameters"]["token"]["default"] == "***"


def test_rule_parameters_for_secret_parameters_are_masked_unless_templates(
    client, engine, make_user
):
    user, headers = make_user()
    action = make_action(engine, user["tenant_id"])  # `token` is secret: true
    trigger = client.post("/api/v1/triggers", headers=headers, json={
        "name": "h", "type": "webhook", "parameters": {}}).json["data"]
    rule = client.post("/api/v1/rules", headers=headers, json={
        "name": "r", "trigger": trigger["id"], "action": action["ref"],
        "parameters": {"token": "LITERAL-SECRET", "url": "{{ trigger.data.url }}"}})
    assert rule.status_code == 201, rule.json
    assert rule.json["data"]["parameters"] == {"token": "***", "url": "{{ trigger.data.url }}"}
    listed = client.get("/api/v1/rules", headers=headers).get_data(as_text=True)
    assert "LITERAL-SECRET" not in listed


def test_another_tenant_sees_none_of_the_trail(client, engine, make_user):
    user, headers = make_user()
    _, other = make_user()
    action = make_action(engine, user["tenant_id"], parameters={})
    eid = client.post("/api/v1/executions", headers=headers,
                      json={"action": action["ref"]}).json["data"]["id"]
    assert trail(client, headers, "execution", eid)
    assert trail(client, other, "execution", eid) == []
