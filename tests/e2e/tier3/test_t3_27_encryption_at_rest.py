"""T3.27 encrypted datastore values: ciphertext in PostgreSQL, plaintext through the API and to
actions; the key is not in the database; AES-256-GCM is documented."""

from __future__ import annotations

import base64
import uuid

from sqlalchemy import select, text

from nameko_services.domain import models
from tests.support.e2e import PROJECT_ROOT, unique_name, wait_for_execution
from tests.support.flows import make_action

READER = '''
import attune


def run(key):
    return {"value": attune.datastore.get(key)}
'''


def rows_containing(database, needle: str) -> list[str]:
    found = []
    with database.connect() as conn:
        for table in models.metadata.sorted_tables:
            hits = conn.execute(
                text(f"SELECT count(*) FROM {table.name} t WHERE strpos(t::text, :n) > 0"),
                {"n": needle}).scalar_one()
            if hits:
                found.append(table.name)
    return found


def test_encrypted_values_are_ciphertext_at_rest_and_plaintext_to_their_tenant(
    api, database, platform_config
):
    key = f"password_{uuid.uuid4().hex[:8]}"
    secret = f"secret-{uuid.uuid4().hex}"
    stored = api.data(api.post("/api/v1/datastore", json={
        "key": key, "value": secret, "encrypted": True}), 201)
    assert stored["value"] == "***" and stored["encrypted"] is True

    with database.connect() as conn:
        row = conn.execute(select(models.datastore_items).where(
            models.datastore_items.c.tenant_id == api.tenant_id,
            models.datastore_items.c.key == key)).mappings().one()
    assert row["encrypted"] is True and row["value"] is None
    blob = bytes(row["ciphertext"])
    assert secret.encode() not in blob and len(blob) >= len(secret) + 12 + 16  # nonce + tag
    active_id = platform_config["ATTUNE"]["encryption_keys"].split(",")[0].split(":")[0]
    assert row["key_id"] == active_id
    for form in (secret, secret.encode().hex(), base64.b64encode(secret.encode()).decode()):
        assert rows_containing(database, form) == [], form

    # The encryption key itself is nowhere in the database.
    for entry in platform_config["ATTUNE"]["encryption_keys"].split(","):
        encoded = entry.split(":", 1)[1]
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        for form in (encoded, raw.hex()):
            assert rows_containing(database, form) == []

    # The API decrypts for the tenant (and masks in lists); another tenant gets 404.
    assert api.data(api.get(f"/api/v1/datastore/{key}"))["value"] == secret
    listed = api.data(api.get("/api/v1/datastore"))
    assert {i["key"]: i["value"] for i in listed}[key] == "***"

    # An action of the tenant receives the plaintext.
    action = make_action(api, unique_name("enc").replace("-", "_"), "read", READER,
                         parameters={"key": {"type": "string", "required": True}})
    run = api.data(api.post("/api/v1/executions", json={
        "action": action["ref"], "parameters": {"key": key}}), 201)
    done = wait_for_execution(api, run["id"])
    assert done["status"] == "succeeded", done
    assert done["result"]["output"] == {"value": secret}


def test_another_tenant_cannot_read_it(make_api):
    owner, stranger = make_api(), make_api()
    owner.data(owner.post("/api/v1/datastore", json={
        "key": "shared_name", "value": "mine", "encrypted": True}), 201)
    assert stranger.get("/api/v1/datastore/shared_name").status_code == 404


def test_the_algorithm_and_rotation_are_documented():
    text_ = (PROJECT_ROOT / "docs" / "security.md").read_text()
    assert "AES-256-GCM" in text_ and "attune rotate-keys" in text_
