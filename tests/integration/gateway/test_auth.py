"""Auth and users routes against the real database."""

import time

import jwt
import pytest

from tests.support.factories import PASSWORD, make_admin

pytestmark = pytest.mark.integration


def test_register_creates_a_tenant_whose_first_user_is_admin(open_client):
    r = open_client.post("/auth/register",
                         json={"username": "reg-admin-1", "password": "password123"})
    assert r.status_code == 201
    data = r.json["data"]
    assert data["user"]["role"] == "admin"
    assert data["token_type"] == "Bearer"
    assert data["expires_in"] > 0


def test_duplicate_username_is_409(open_client):
    body = {"username": "dup-user", "password": "password123"}
    assert open_client.post("/auth/register", json=body).status_code == 201
    r = open_client.post("/auth/register", json=body)
    assert r.status_code == 409
    assert r.json["error"]["code"] == "conflict"


def test_short_password_is_422_naming_the_field(open_client):
    r = open_client.post("/auth/register", json={"username": "shorty", "password": "short"})
    assert r.status_code == 422
    assert "password" in r.json["error"]["details"]["fields"]


def test_unknown_field_is_422(open_client):
    r = open_client.post("/auth/register",
                         json={"username": "a1", "password": "password123", "x": 1})
    assert r.status_code == 422
    assert r.json["error"]["details"]["fields"] == {"x": "unknown field"}


def test_malformed_json_is_400(client):
    r = client.post("/auth/login", data="{nope", content_type="application/json")
    assert r.status_code == 400
    assert r.json["error"]["code"] == "bad_request"


def test_login_gives_same_401_for_unknown_user_and_wrong_password(client, make_user):
    user, _ = make_user()
    wrong = client.post("/auth/login", json={"username": user["username"], "password": "nopenope"})
    unknown = client.post("/auth/login", json={"username": "ghost-user", "password": "nopenope"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json == unknown.json


def test_refresh_accepts_only_refresh_tokens(client, engine):
    make_admin(engine, "refresher")
    tokens = client.post("/auth/login",
                         json={"username": "refresher", "password": PASSWORD}).json["data"]
    ok = client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert ok.status_code == 200 and ok.json["data"]["access_token"]
    bad = client.post("/auth/refresh", json={"refresh_token": tokens["access_token"]})
    assert bad.status_code == 401
    refresh_as_access = client.get(
        "/api/v1/me", headers={"Authorization": f"Bearer {tokens['refresh_token']}"}
    )
    assert refresh_as_access.status_code == 401


def test_forged_and_expired_tokens_are_401(client, make_user, settings):
    user, _ = make_user()
    claims = {"sub": str(user["id"]), "tenant_id": user["tenant_id"], "role": "admin",
              "type": "access", "iat": int(time.time()), "jti": "x"}
    forged = jwt.encode({**claims, "exp": int(time.time()) + 60}, "wrong-secret-" + "y" * 40)
    expired = jwt.encode({**claims, "exp": int(time.time()) - 5}, settings.jwt_secret)
    for token in (forged, expired, "not.a.jwt"):
        r = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, token
    assert "expired" in client.get(
        "/api/v1/me", headers={"Authorization": f"Bearer {expired}"}
    ).json["error"]["message"]


def test_me_returns_the_caller_and_the_permissions_of_its_role(client, make_user):
    user, headers = make_user()
    assert client.get("/api/v1/me", headers=headers).json["data"] == {
        **user, "permissions": ["admin", "execute", "read", "self", "write"]}
    _viewer, viewer_headers = make_user("viewer", admin_headers=headers)
    assert client.get("/api/v1/me", headers=viewer_headers).json["data"]["permissions"] == [
        "read", "self"]


@pytest.mark.parametrize("role", ["editor", "executor", "viewer"])
def test_only_admins_create_users_and_the_403_names_role_and_permission(client, make_user, role):
    _, admin = make_user()
    _, headers = make_user(role=role, admin_headers=admin)
    r = client.post("/api/v1/users", headers=headers,
                    json={"username": f"x-{role}", "password": "password123", "role": "viewer"})
    assert r.status_code == 403
    assert role in r.json["error"]["message"] and "admin" in r.json["error"]["message"]


def test_users_list_shows_only_the_callers_tenant(client, make_user):
    admin_a, headers_a = make_user()
    _, headers_b = make_user()
    user_b, _ = make_user(role="viewer", admin_headers=headers_b)
    listed = client.get("/api/v1/users", headers=headers_a).json
    assert [u["id"] for u in listed["data"]] == [admin_a["id"]]
    assert listed["pagination"] == {"total": 1, "limit": 50, "offset": 0, "next_offset": None}
    assert user_b["id"] not in [u["id"] for u in listed["data"]]


def test_admin_creates_user_with_invalid_role_422(client, make_user):
    _, admin = make_user()
    r = client.post("/api/v1/users", headers=admin,
                    json={"username": "badrole", "password": "password123", "role": "root"})
    assert r.status_code == 422 and "role" in r.json["error"]["details"]["fields"]
