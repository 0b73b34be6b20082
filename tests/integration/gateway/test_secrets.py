"""Secrets API: always encrypted, names only, never a value in any response."""

import pytest
from sqlalchemy import select

from nameko_services.domain import models, secrets
from nameko_services.domain.crypto import Cipher

pytestmark = pytest.mark.integration

VALUE = "sk-plaintext-marker-123"


@pytest.fixture
def tenant(make_user):
    return make_user()


def test_create_returns_the_name_only_and_stores_ciphertext(client, engine, tenant):
    user, headers = tenant
    r = client.post("/api/v1/secrets", headers=headers, json={"key": "api_key", "value": VALUE})
    assert r.status_code == 201
    assert set(r.json["data"]) == {"key", "created_at"} and r.json["data"]["key"] == "api_key"
    assert VALUE not in r.get_data(as_text=True)
    with engine.connect() as conn:
        row = conn.execute(select(models.secrets).where(
            models.secrets.c.tenant_id == user["tenant_id"])).mappings().one()
    assert VALUE.encode() not in bytes(row["ciphertext"]) and row["key_id"] == "test"


def test_replacing_is_200_and_the_worker_reads_the_new_value(client, engine, settings, tenant):
    user, headers = tenant
    client.post("/api/v1/secrets", headers=headers, json={"key": "k", "value": "old"})
    r = client.post("/api/v1/secrets", headers=headers, json={"key": "k", "value": "new"})
    assert r.status_code == 200 and "value" not in r.json["data"]
    cipher = Cipher(settings.encryption_keys, settings.active_key_id)
    with engine.connect() as conn:
        assert secrets.get_values(conn, cipher, user["tenant_id"], ["k", "absent", "bad key"]) == {
            "k": "new"}
        assert secrets.get_values(conn, cipher, user["tenant_id"], []) == {}


def test_list_and_get_show_names_and_timestamps_only(client, tenant):
    _, headers = tenant
    client.post("/api/v1/secrets", headers=headers, json={"key": "one", "value": VALUE})
    client.post("/api/v1/secrets", headers=headers, json={"key": "two", "value": VALUE})
    r = client.get("/api/v1/secrets", headers=headers)
    assert r.status_code == 200 and VALUE not in r.get_data(as_text=True)
    assert [s["key"] for s in r.json["data"]] == ["two", "one"]
    assert set(r.json["data"][0]) == {"key", "created_at", "updated_at"}
    r = client.get("/api/v1/secrets/one", headers=headers)
    assert r.status_code == 200 and set(r.json["data"]) == {"key", "created_at", "updated_at"}
    assert VALUE not in r.get_data(as_text=True)


def test_delete_then_404(client, tenant):
    _, headers = tenant
    client.post("/api/v1/secrets", headers=headers, json={"key": "tmp", "value": "v"})
    assert client.delete("/api/v1/secrets/tmp", headers=headers).status_code == 204
    assert client.get("/api/v1/secrets/tmp", headers=headers).status_code == 404
    assert client.delete("/api/v1/secrets/tmp", headers=headers).status_code == 404


@pytest.mark.parametrize("body, field", [
    ({"key": "k", "value": 5}, "value"),
    ({"key": "k", "value": ""}, "value"),
    ({"key": "k", "value": {"a": 1}}, "value"),
    ({"key": "k"}, "value"),
    ({"key": "bad key", "value": "v"}, "key"),
    ({"key": "k", "value": "v", "encrypted": False}, "encrypted"),
])
def test_invalid_secret_writes_are_422(client, tenant, body, field):
    r = client.post("/api/v1/secrets", headers=tenant[1], json=body)
    assert r.status_code == 422 and field in r.json["error"]["details"]["fields"]


def test_secrets_need_write_to_change_and_admit_no_execution_token(
    client, make_user, settings
):
    from nameko_services.domain.auth import issue_token

    admin_user, admin = make_user()
    _, viewer = make_user(role="viewer", admin_headers=admin)
    assert client.get("/api/v1/secrets", headers=viewer).status_code == 200
    r = client.post("/api/v1/secrets", headers=viewer, json={"key": "k", "value": "v"})
    assert r.status_code == 403
    token = issue_token(settings.jwt_secret, user_id=admin_user["id"],
                        tenant_id=admin_user["tenant_id"], role="admin",
                        token_type="execution", ttl_seconds=60, execution_id=1)
    r = client.get("/api/v1/secrets", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401


def test_secret_changes_are_audited_without_values(client, tenant):
    _, headers = tenant
    client.post("/api/v1/secrets", headers=headers, json={"key": "aud", "value": VALUE})
    client.post("/api/v1/secrets", headers=headers, json={"key": "aud", "value": VALUE + "2"})
    client.delete("/api/v1/secrets/aud", headers=headers)
    r = client.get("/api/v1/audit?entity_type=secret&entity_id=aud", headers=headers)
    assert [e["action"] for e in r.json["data"]] == [
        "secret.created", "secret.updated", "secret.deleted"]
    assert VALUE not in r.get_data(as_text=True)
