"""API keys, logout and password change against the real database (issue 17, item 6)."""

import hashlib

import pytest
from sqlalchemy import select

from nameko_services.domain import messages
from nameko_services.domain.models import api_keys, audit_log
from tests.support.e2e import wait_until
from tests.support.factories import PASSWORD

pytestmark = pytest.mark.integration


def make_key(client, headers, **body):
    r = client.post("/api/v1/apikeys", headers=headers, json={"name": "ci", **body})
    assert r.status_code == 201, r.json
    return r.json["data"]


def test_a_key_is_shown_once_stored_hashed_and_acts_as_its_user(client, make_user, engine):
    user, headers = make_user()
    made = make_key(client, headers, role="executor")
    key = made["key"]
    assert key.startswith("atk_") and len(key) > 40
    assert made["prefix"] == key[:12] and made["role"] == "executor"
    with engine.connect() as conn:
        stored = conn.execute(select(api_keys.c.key_hash).where(api_keys.c.id == made["id"]))
        assert stored.scalar_one() == hashlib.sha256(key.encode()).hexdigest()
    listed = client.get("/api/v1/apikeys", headers=headers).json["data"]
    assert [k["id"] for k in listed] == [made["id"]] and "key" not in listed[0]
    for presented in ({"X-Api-Key": key}, {"Authorization": f"Bearer {key}"}):
        me = client.get("/api/v1/me", headers=presented)
        assert me.status_code == 200 and me.json["data"]["id"] == user["id"]


def test_a_key_acts_with_its_role_never_above_its_user(client, make_user):
    _, admin = make_user()
    viewer_key = make_key(client, admin, role="viewer")["key"]
    r = client.post("/api/v1/datastore", headers={"X-Api-Key": viewer_key},
                    json={"key": "k", "value": "v"})
    assert r.status_code == 403 and r.json["error"]["details"]["role"] == "viewer"
    _, executor = make_user("executor", admin_headers=admin)
    above = client.post("/api/v1/apikeys", headers=executor, json={"name": "x", "role": "admin"})
    assert above.status_code == 403 and above.json["error"]["details"] == {"role": "admin"}
    # made without a role: the user's own
    assert make_key(client, executor)["role"] == "executor"


def test_keys_cannot_make_keys_or_log_out(client, make_user):
    _, headers = make_user()
    key = make_key(client, headers)["key"]
    r = client.post("/api/v1/apikeys", headers={"X-Api-Key": key}, json={"name": "again"})
    assert r.status_code == 403 and r.json["error"]["details"] == {"token_type": "api_key"}
    assert client.post("/auth/logout", headers={"X-Api-Key": key}).status_code == 403


def test_bad_requests_name_the_field(client, make_user):
    _, headers = make_user()
    r = client.post("/api/v1/apikeys", headers=headers,
                    json={"name": "  ", "role": "root", "expires_in": 5})
    assert r.status_code == 422
    assert set(r.json["error"]["details"]["fields"]) == {"name", "role", "expires_in"}


def test_a_revoked_or_unknown_key_is_refused_at_once(client, make_user, engine):
    _, headers = make_user()
    made = make_key(client, headers)
    revoked = client.delete(f"/api/v1/apikeys/{made['id']}", headers=headers)
    assert revoked.status_code == 200 and revoked.json["data"]["revoked_at"]
    for key in (made["key"], "atk_" + "x" * 43):
        r = client.get("/api/v1/me", headers={"X-Api-Key": key})
        assert r.status_code == 401 and r.json["error"]["code"] == "unauthorized"
    with engine.connect() as conn:
        actions = conn.execute(select(audit_log.c.action).where(
            audit_log.c.entity_type == "api_key", audit_log.c.entity_id == str(made["id"])
        ).order_by(audit_log.c.id)).scalars().all()
    assert actions == ["api_key.created", "api_key.revoked"]


def test_an_expired_key_is_refused(client, make_user, engine):
    _, headers = make_user()
    made = make_key(client, headers, expires_in=60)
    assert client.get("/api/v1/me", headers={"X-Api-Key": made["key"]}).status_code == 200
    with engine.begin() as conn:  # an hour later, as far as the key is concerned
        conn.execute(api_keys.update().where(api_keys.c.id == made["id"])
                     .values(expires_at=api_keys.c.created_at))
    assert client.get("/api/v1/me", headers={"X-Api-Key": made["key"]}).status_code == 401


def test_other_users_keys_are_theirs_but_an_admin_sees_and_revokes_them(client, make_user):
    _, admin = make_user()
    _, editor = make_user("editor", admin_headers=admin)
    _, other = make_user("editor", admin_headers=admin)
    made = make_key(client, editor)
    assert client.get("/api/v1/apikeys", headers=other).json["data"] == []
    assert client.delete(f"/api/v1/apikeys/{made['id']}", headers=other).status_code == 404
    assert [k["id"] for k in client.get("/api/v1/apikeys", headers=admin).json["data"]] == [
        made["id"]]
    assert client.delete(f"/api/v1/apikeys/{made['id']}", headers=admin).status_code == 200
    _, stranger = make_user()  # another tenant's admin
    assert client.delete(f"/api/v1/apikeys/{made['id']}", headers=stranger).status_code == 404


def login(client, username, password=PASSWORD):
    r = client.post("/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.json
    return r.json["data"]


def test_logout_refuses_every_token_of_the_user_at_once_and_is_broadcast(
        client, make_user, published):
    user, _ = make_user()
    first, second = login(client, user["username"]), login(client, user["username"])
    key = make_key(client, {"Authorization": f"Bearer {first['access_token']}"})["key"]
    out = client.post("/auth/logout", headers={"Authorization": f"Bearer {first['access_token']}"})
    assert out.status_code == 200 and out.json["data"]["logged_out"] is True
    for tokens in (first, second):
        me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
        assert me.status_code == 401 and "revoked" in me.json["error"]["message"]
        again = client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert again.status_code == 401
    assert client.get("/api/v1/me", headers={"X-Api-Key": key}).status_code == 200
    revoked = [p for source, event, p in published if event == messages.TOKENS_REVOKED]
    assert [p["user_id"] for p in revoked] == [user["id"]]
    # a login after the logout works
    fresh = login(client, user["username"])
    assert client.get("/api/v1/me", headers={
        "Authorization": f"Bearer {fresh['access_token']}"}).status_code == 200


def test_a_password_change_checks_the_old_one_and_revokes_the_old_tokens(client, make_user):
    user, headers = make_user()
    old = login(client, user["username"])
    wrong = client.post("/api/v1/me/password", headers=headers,
                        json={"current_password": "not-it-at-all", "new_password": "n" * 12})
    assert wrong.status_code == 401
    short = client.post("/api/v1/me/password", headers=headers,
                        json={"current_password": PASSWORD, "new_password": "short"})
    assert short.status_code == 422 and "new_password" in short.json["error"]["details"]["fields"]
    changed = client.post("/api/v1/me/password", headers=headers,
                          json={"current_password": PASSWORD, "new_password": "n" * 12})
    assert changed.status_code == 200
    new = changed.json["data"]
    assert client.get("/api/v1/me", headers={
        "Authorization": f"Bearer {new['access_token']}"}).status_code == 200
    assert client.get("/api/v1/me", headers=headers).status_code == 401
    assert client.post("/auth/refresh", json={"refresh_token": old["refresh_token"]}
                       ).status_code == 401
    assert client.post("/auth/login", json={"username": user["username"], "password": PASSWORD}
                       ).status_code == 401
    login(client, user["username"], "n" * 12)


def test_another_process_learns_a_revocation_from_the_database(app, config, make_user, client):
    """A gateway process that missed the broadcast refuses the token on its next reload."""
    import copy

    from gateway import revocations
    from gateway.app import create_app

    _, headers = make_user()
    other = create_app(copy.deepcopy(config)).test_client()
    try:
        assert other.get("/api/v1/me", headers=headers).status_code == 200
        assert client.post("/auth/logout", headers=headers).status_code == 200
        other.application.extensions["attune"].revocations._loaded -= revocations.RELOAD_SECONDS
        wait_until(lambda: other.get("/api/v1/me", headers=headers).status_code == 401,
                   timeout=5, message="the other process refuses the revoked token")
    finally:
        other.application.extensions["attune"].dispose()
