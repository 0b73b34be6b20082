"""T3.27 encryption at rest: raw rows hold no plaintext and no key; rotation re-encrypts online
and values written under the old key still read."""

from __future__ import annotations

import base64
import copy
import uuid

import pytest
from sqlalchemy import select, text

from nameko_services.domain import models, rotation
from nameko_services.domain import secrets as secrets_mod
from nameko_services.domain.crypto import Cipher, new_key_spec, parse_keyring
from tests.support.factories import PASSWORD, make_admin

pytestmark = pytest.mark.integration


def search_everywhere(engine, needle: str) -> list[str]:
    """Tables (of the whole database) in which any row's text form contains `needle`."""
    hits = []
    with engine.connect() as conn:
        for table in models.metadata.sorted_tables:
            found = conn.execute(
                text(f"SELECT count(*) FROM {table.name} t WHERE strpos(t::text, :n) > 0"),
                {"n": needle},
            ).scalar_one()
            if found:
                hits.append(table.name)
    return hits


def forms_of(value: str) -> list[str]:
    """The plaintext as text, as the hex PostgreSQL prints bytea in, and as base64."""
    raw = value.encode()
    return [value, raw.hex(), base64.b64encode(raw).decode().rstrip("=")]


@pytest.fixture
def tenant(make_user):
    return make_user()


def test_raw_rows_hold_ciphertext_with_the_key_id_never_the_plaintext(
    client, engine, settings, tenant
):
    user, headers = tenant
    marker = f"plain-{uuid.uuid4().hex}"
    assert client.post("/api/v1/secrets", headers=headers,
                       json={"key": "api_key", "value": marker + "-s"}).status_code == 201
    assert client.post("/api/v1/datastore", headers=headers,
                       json={"key": "password", "value": {"pw": marker + "-d"},
                             "encrypted": True}).status_code == 201
    with engine.connect() as conn:
        secret = conn.execute(select(models.secrets).where(
            models.secrets.c.tenant_id == user["tenant_id"])).mappings().one()
        item = conn.execute(select(models.datastore_items).where(
            models.datastore_items.c.tenant_id == user["tenant_id"])).mappings().one()
    for row in (secret, item):
        assert row["key_id"] == settings.active_key_id
        assert len(bytes(row["ciphertext"])) > len(marker)
    assert item["value"] is None and item["encrypted"] is True
    for form in forms_of(marker):
        assert search_everywhere(engine, form) == [], form
    # The API decrypts for its tenant (datastore) and never returns a secret.
    shown = client.get("/api/v1/datastore/password", headers=headers).json["data"]
    assert shown["value"] == {"pw": marker + "-d"}
    assert marker not in client.get("/api/v1/secrets/api_key", headers=headers).get_data(True)
    assert marker not in client.get("/api/v1/datastore", headers=headers).get_data(True)


def test_no_encryption_key_is_stored_in_the_database(engine, settings):
    for key in settings.encryption_keys.values():
        for form in (key.hex(), base64.urlsafe_b64encode(key).decode().rstrip("="),
                     base64.b64encode(key).decode().rstrip("=")):
            assert search_everywhere(engine, form) == []


@pytest.fixture
def keyrings(config):
    """(old spec, new-first spec, new-only spec); afterwards every row is put back under the
    session's own key so other tests keep reading what they wrote."""
    old = config["ATTUNE"]["encryption_keys"]
    new = new_key_spec(f"rot{uuid.uuid4().hex[:6]}")
    yield old, f"{new},{old}", new
    restore = f"{old},{new}"
    keyring, active = parse_keyring(restore)
    from nameko_services.domain.db import make_engine

    engine = make_engine(config["ATTUNE"]["database_url"])
    try:
        rotation.rotate(engine, Cipher(keyring, active))
    finally:
        engine.dispose()


def stale(engine, tenant_id: int, active_key_id: str) -> list[tuple[str, int]]:
    """(table, id) of this tenant's ciphertexts not under `active_key_id` (other tests leave
    deliberately tampered rows behind, so whole-database counts are not this test's to judge)."""
    found = []
    with engine.connect() as conn:
        for table in (models.secrets, models.datastore_items):
            found += [(table.name, row.id) for row in conn.execute(
                select(table.c.id).where(table.c.tenant_id == tenant_id,
                                         table.c.key_id != active_key_id))]
    return found


def cipher_of(spec: str) -> Cipher:
    keyring, active = parse_keyring(spec)
    return Cipher(keyring, active)


def with_keys(config, spec: str) -> dict:
    cfg = copy.deepcopy(config)
    cfg["ATTUNE"]["encryption_keys"] = spec
    cfg["ATTUNE"]["rate_limit"] = {"enabled": False}
    return cfg


def test_rotation_reencrypts_everything_and_old_values_read_throughout(
    config, engine, keyrings, make_app
):
    old, rotating, new_only = keyrings
    before = make_app(with_keys(config, old)).test_client()
    during = make_app(with_keys(config, rotating)).test_client()
    after = make_app(with_keys(config, new_only)).test_client()
    name = f"rot-{uuid.uuid4().hex[:8]}"
    make_admin(engine, name)
    r = before.post("/auth/login", json={"username": name, "password": PASSWORD})
    headers = {"Authorization": f"Bearer {r.json['data']['access_token']}"}
    tid = r.json["data"]["user"]["tenant_id"]
    for i in range(5):
        assert before.post("/api/v1/datastore", headers=headers, json={
            "key": f"k{i}", "value": f"value-{i}", "encrypted": True}).status_code == 201
        assert before.post("/api/v1/secrets", headers=headers, json={
            "key": f"s{i}", "value": f"secret-{i}"}).status_code == 201
    new_id = cipher_of(rotating).active_key_id
    # New key first in the keyring, nothing rotated yet: old values still read.
    assert during.get("/api/v1/datastore/k0", headers=headers).json["data"]["value"] == "value-0"
    assert after.get("/api/v1/datastore/k0", headers=headers).status_code != 200

    report = rotation.rotate(engine, cipher_of(rotating), batch_size=2)

    assert report["active_key_id"] == new_id
    assert report["reencrypted"]["secrets"] >= 5 and report["reencrypted"]["datastore"] >= 5
    assert stale(engine, tid, new_id) == []
    names = {"secrets": "secrets", "datastore_items": "datastore"}
    mine = {(names[table], row_id) for table, row_id in stale(engine, tid, "no-such-key")}
    assert len(mine) == 10
    assert not {(f["table"], f["id"]) for f in report["failed"]} & mine
    with engine.connect() as conn:
        ids = {row.key_id for row in conn.execute(
            select(models.datastore_items.c.key_id).where(
                models.datastore_items.c.tenant_id == tid))}
        ids |= {row.key_id for row in conn.execute(
            select(models.secrets.c.key_id).where(models.secrets.c.tenant_id == tid))}
        values = secrets_mod.get_values(conn, cipher_of(new_only), tid, [f"s{i}" for i in range(5)])
    assert ids == {new_id}
    # The old key is no longer needed: a keyring of the new key alone reads everything.
    for i in range(5):
        got = after.get(f"/api/v1/datastore/k{i}", headers=headers).json["data"]["value"]
        assert got == f"value-{i}"
    assert values == {f"s{i}": f"secret-{i}" for i in range(5)}
    again = rotation.rotate(engine, cipher_of(rotating))
    assert again["reencrypted"] == {"secrets": 0, "datastore": 0}


def test_rotation_skips_rows_a_writer_holds_and_never_waits_for_them(engine, keyrings):
    old, rotating, _ = keyrings
    cipher_old = cipher_of(old)
    with engine.begin() as conn:
        tid = conn.execute(models.tenants.insert().values(name=f"rot-{uuid.uuid4().hex}")
                           .returning(models.tenants.c.id)).scalar_one()
        for key in ("held", "free"):
            blob, key_id = cipher_old.encrypt("v", aad=secrets_mod.aad(tid, key))
            conn.execute(models.secrets.insert().values(tenant_id=tid, key=key,
                                                        ciphertext=blob, key_id=key_id))
    writer = engine.connect()
    try:
        tx = writer.begin()
        writer.execute(select(models.secrets).where(models.secrets.c.tenant_id == tid,
                                                    models.secrets.c.key == "held")
                       .with_for_update())
        rotation.rotate(engine, cipher_of(rotating))  # returns: no lock wait
        tx.rollback()
    finally:
        writer.close()
    with engine.connect() as conn:
        by_key = dict(conn.execute(select(models.secrets.c.key, models.secrets.c.key_id)
                                   .where(models.secrets.c.tenant_id == tid)).all())
    assert by_key == {"held": cipher_old.active_key_id, "free": cipher_of(rotating).active_key_id}
    rotation.rotate(engine, cipher_of(rotating))
    assert stale(engine, tid, cipher_of(rotating).active_key_id) == []


def test_a_row_that_does_not_decrypt_is_reported_and_left_alone(engine, keyrings):
    _, rotating, _ = keyrings
    with engine.begin() as conn:
        tid = conn.execute(models.tenants.insert().values(name=f"rot-{uuid.uuid4().hex}")
                           .returning(models.tenants.c.id)).scalar_one()
        row_id = conn.execute(models.secrets.insert().values(
            tenant_id=tid, key="tampered", ciphertext=b"\x00" * 40, key_id="gone")
            .returning(models.secrets.c.id)).scalar_one()
    try:
        report = rotation.rotate(engine, cipher_of(rotating))
        assert {"table": "secrets", "id": row_id, "key_id": "gone"} in report["failed"]
        with engine.connect() as conn:
            kept = conn.execute(select(models.secrets.c.ciphertext, models.secrets.c.key_id)
                                .where(models.secrets.c.id == row_id)).one()
        assert bytes(kept.ciphertext) == b"\x00" * 40 and kept.key_id == "gone"
    finally:
        with engine.begin() as conn:
            conn.execute(models.secrets.delete().where(models.secrets.c.id == row_id))


def test_the_rotate_keys_command_reports_and_exits_zero_when_done(
    config, engine, keyrings, monkeypatch, capsys, tmp_path
):
    import json

    from nameko_services import cli
    from nameko_services.config import PROJECT_ROOT

    old, rotating, _ = keyrings
    with engine.begin() as conn:
        tid = conn.execute(models.tenants.insert().values(name=f"cli-{uuid.uuid4().hex}")
                           .returning(models.tenants.c.id)).scalar_one()
        blob, key_id = cipher_of(old).encrypt("v", aad=secrets_mod.aad(tid, "k"))
        conn.execute(models.secrets.insert().values(tenant_id=tid, key="k", ciphertext=blob,
                                                    key_id=key_id))
    keys = tmp_path / "keys.env"
    keys.write_text(f"ATTUNE_JWT_SECRET={config['ATTUNE']['jwt_secret']}\n"
                    f"ATTUNE_ENCRYPTION_KEYS={rotating}\n"
                    "ATTUNE_DATABASE_PASSWORD=unused\nATTUNE_AMQP_PASSWORD=unused\n")
    monkeypatch.setenv("ATTUNE_KEYS_FILE", str(keys))
    monkeypatch.setenv("ATTUNE_DATABASE_URL", config["ATTUNE"]["database_url"])

    code = cli.main(["rotate-keys", "--config", str(PROJECT_ROOT / "nameko.yaml"),
                     "--batch-size", "3"])

    report, _ = json.JSONDecoder().raw_decode(capsys.readouterr().out)
    # Exit 0 only when nothing failed or remains (other tests leave tampered rows behind).
    assert code == (1 if report["failed"] else 0)
    assert report["active_key_id"] == cipher_of(rotating).active_key_id
    assert report["reencrypted"]["secrets"] >= 1
    with engine.connect() as conn:
        assert conn.execute(select(models.secrets.c.key_id).where(
            models.secrets.c.tenant_id == tid)).scalar_one() == report["active_key_id"]
