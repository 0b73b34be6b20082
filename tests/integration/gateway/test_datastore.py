"""Datastore API: create/replace, read, list, delete, encryption at rest, TTL, execution tokens."""

import json

import pytest
from sqlalchemy import select

from nameko_services.domain import datastore, models
from nameko_services.domain.auth import issue_token
from tests.support.factories import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def tenant(make_user):
    return make_user()


def raw_row(engine, tenant_id, key):
    with engine.connect() as conn:
        return conn.execute(
            select(models.datastore_items).where(models.datastore_items.c.tenant_id == tenant_id,
                                                 models.datastore_items.c.key == key)
        ).mappings().one_or_none()


def test_create_then_read_back_a_plain_value(client, tenant):
    _, headers = tenant
    r = client.post("/api/v1/datastore", headers=headers,
                    json={"key": "api_url", "value": "https://api.example.com"})
    assert r.status_code == 201
    assert r.json["data"]["value"] == "https://api.example.com"
    r = client.get("/api/v1/datastore/api_url", headers=headers)
    assert r.status_code == 200
    data = r.json["data"]
    assert data["key"] == "api_url" and data["value"] == "https://api.example.com"
    assert data["encrypted"] is False and data["expires_at"] is None
    assert data["updated_at"].endswith("Z")


@pytest.mark.parametrize("value", [{"a": [1, 2, {"b": None}]}, [1, "x"], 3.5, True, None, ""])
def test_any_json_value_round_trips(client, tenant, value):
    _, headers = tenant
    assert client.post("/api/v1/datastore", headers=headers,
                       json={"key": "any", "value": value}).status_code == 201
    assert client.get("/api/v1/datastore/any", headers=headers).json["data"]["value"] == value


def test_replacing_a_key_is_200(client, tenant):
    _, headers = tenant
    client.post("/api/v1/datastore", headers=headers, json={"key": "k", "value": 1})
    r = client.post("/api/v1/datastore", headers=headers, json={"key": "k", "value": 2})
    assert r.status_code == 200 and r.json["data"]["value"] == 2
    assert client.get("/api/v1/datastore/k", headers=headers).json["data"]["value"] == 2


def test_encrypted_values_are_stored_without_plaintext_and_decrypted_on_read(
    client, engine, tenant
):
    user, headers = tenant
    secret = {"password": "hunter2-plaintext-marker"}
    r = client.post("/api/v1/datastore", headers=headers,
                    json={"key": "db/creds", "value": secret, "encrypted": True})
    assert r.status_code == 201 and r.json["data"]["value"] == "***"
    row = raw_row(engine, user["tenant_id"], "db/creds")
    assert row["encrypted"] is True and row["value"] is None and row["key_id"] == "test"
    assert b"hunter2" not in bytes(row["ciphertext"])
    assert "hunter2" not in json.dumps({k: str(v) for k, v in row.items()})
    r = client.get("/api/v1/datastore/db/creds", headers=headers)
    assert r.json["data"]["value"] == secret and r.json["data"]["encrypted"] is True


def test_switching_a_key_between_plain_and_encrypted_keeps_the_row_shape(client, engine, tenant):
    user, headers = tenant
    client.post("/api/v1/datastore", headers=headers, json={"key": "flip", "value": "a"})
    client.post("/api/v1/datastore", headers=headers,
                json={"key": "flip", "value": "b", "encrypted": True})
    assert raw_row(engine, user["tenant_id"], "flip")["value"] is None
    client.post("/api/v1/datastore", headers=headers, json={"key": "flip", "value": "c"})
    row = raw_row(engine, user["tenant_id"], "flip")
    assert row["value"] == "c" and row["ciphertext"] is None and row["key_id"] is None
    assert client.get("/api/v1/datastore/flip", headers=headers).json["data"]["value"] == "c"


def test_list_masks_encrypted_values_and_orders_newest_first(client, tenant):
    _, headers = tenant
    client.post("/api/v1/datastore", headers=headers, json={"key": "plain", "value": 1})
    client.post("/api/v1/datastore", headers=headers,
                json={"key": "hidden", "value": "s", "encrypted": True})
    r = client.get("/api/v1/datastore", headers=headers)
    assert r.status_code == 200
    assert [(i["key"], i["value"]) for i in r.json["data"]] == [("hidden", "***"), ("plain", 1)]
    assert r.json["pagination"]["total"] == 2
    r = client.get("/api/v1/datastore?prefix=pla", headers=headers)
    assert [i["key"] for i in r.json["data"]] == ["plain"]


def test_ttl_expiry_makes_the_key_404_and_drops_it_from_lists(client, tenant):
    _, headers = tenant
    r = client.post("/api/v1/datastore", headers=headers,
                    json={"key": "short", "value": "v", "ttl_seconds": 1})
    assert r.status_code == 201 and r.json["data"]["expires_at"]
    assert client.get("/api/v1/datastore/short", headers=headers).status_code == 200
    wait_until(lambda: client.get("/api/v1/datastore/short", headers=headers).status_code == 404,
               deadline=5)
    assert client.get("/api/v1/datastore", headers=headers).json["data"] == []
    assert client.delete("/api/v1/datastore/short", headers=headers).status_code == 404
    # Writing an expired key again counts as a new key.
    r = client.post("/api/v1/datastore", headers=headers, json={"key": "short", "value": "w"})
    assert r.status_code == 201 and r.json["data"]["expires_at"] is None


def test_delete_removes_the_key(client, tenant):
    _, headers = tenant
    client.post("/api/v1/datastore", headers=headers, json={"key": "gone", "value": 1})
    r = client.delete("/api/v1/datastore/gone", headers=headers)
    assert r.status_code == 204
    assert client.get("/api/v1/datastore/gone", headers=headers).status_code == 404
    assert client.delete("/api/v1/datastore/gone", headers=headers).status_code == 404


@pytest.mark.parametrize("body, field", [
    ({"key": "", "value": 1}, "key"),
    ({"key": "has space", "value": 1}, "key"),
    ({"key": "k" * 401, "value": 1}, "key"),
    ({"key": "ünïcode", "value": 1}, "key"),
    ({"key": 5, "value": 1}, "key"),
    ({"key": "ok"}, "value"),
    ({"key": "ok", "value": 1, "encrypted": "yes"}, "encrypted"),
    ({"key": "ok", "value": 1, "ttl_seconds": 0}, "ttl_seconds"),
    ({"key": "ok", "value": 1, "ttl_seconds": 1.5}, "ttl_seconds"),
    ({"key": "ok", "value": 1, "ttl_seconds": True}, "ttl_seconds"),
    ({"key": "ok", "value": "nul\u0000"}, "value"),
    ({"key": "ok", "value": 1, "other": 1}, "other"),
])
def test_invalid_datastore_writes_are_422_naming_the_field(client, tenant, body, field):
    r = client.post("/api/v1/datastore", headers=tenant[1], json=body)
    assert r.status_code == 422, r.json
    assert field in r.json["error"]["details"]["fields"]


def test_longest_allowed_key_is_accepted(client, tenant):
    key = "a/b:c-d_e." + "k" * 390
    assert client.post("/api/v1/datastore", headers=tenant[1],
                       json={"key": key, "value": 1}).status_code == 201
    assert client.get(f"/api/v1/datastore/{key}", headers=tenant[1]).status_code == 200


def test_missing_key_is_404(client, tenant):
    r = client.get("/api/v1/datastore/never-set", headers=tenant[1])
    assert r.status_code == 404 and r.json["error"]["code"] == "not_found"


def test_viewer_reads_but_cannot_write(client, make_user):
    _, admin = make_user()
    _, viewer = make_user(role="viewer", admin_headers=admin)
    client.post("/api/v1/datastore", headers=admin, json={"key": "shared", "value": 1})
    assert client.get("/api/v1/datastore/shared", headers=viewer).status_code == 200
    r = client.post("/api/v1/datastore", headers=viewer, json={"key": "x", "value": 1})
    assert r.status_code == 403
    assert client.delete("/api/v1/datastore/shared", headers=viewer).status_code == 403


def test_an_action_uses_its_execution_token_and_is_audited_as_the_worker(
    client, engine, tenant, settings
):
    user, headers = tenant
    token = issue_token(settings.jwt_secret, user_id=user["id"], tenant_id=user["tenant_id"],
                        role="viewer", token_type="execution", ttl_seconds=60, execution_id=42)
    action = {"Authorization": f"Bearer {token}"}
    client.post("/api/v1/datastore", headers=headers, json={"key": "api_url", "value": "u"})
    assert client.get("/api/v1/datastore/api_url", headers=action).json["data"]["value"] == "u"
    r = client.post("/api/v1/datastore", headers=action, json={"key": "from_action", "value": 7})
    assert r.status_code == 201
    assert client.delete("/api/v1/datastore/from_action", headers=action).status_code == 204
    entries = client.get("/api/v1/audit?entity_type=datastore&entity_id=from_action",
                         headers=headers).json["data"]
    assert [(e["actor_type"], e["actor"]) for e in entries] == [("worker", "execution:42")] * 2
    assert all("value" not in e["details"] for e in entries)


def test_domain_reads_for_rules_and_actions(engine, settings, tenant):
    from nameko_services.domain.crypto import Cipher

    user, _ = tenant
    tid = user["tenant_id"]
    cipher = Cipher(settings.encryption_keys, settings.active_key_id)
    with engine.begin() as conn:
        datastore.put(conn, cipher, tid, "plain", {"n": 1}, actor_type="user", actor="t")
        datastore.put(conn, cipher, tid, "enc", "s", encrypted=True, actor_type="user", actor="t")
    with engine.begin() as conn:
        assert datastore.get_value(conn, cipher, tid, "plain") == {"n": 1}
        assert datastore.get_value(conn, cipher, tid, "enc") == "s"
        assert datastore.get_value(conn, cipher, tid, "missing") is None
        assert datastore.get_value(conn, cipher, tid, "bad key!") is None
        assert datastore.get_all(conn, cipher, tid) == {"plain": {"n": 1}, "enc": "s"}
        assert datastore.get_all(conn, cipher, tid + 10_000_000) == {}
