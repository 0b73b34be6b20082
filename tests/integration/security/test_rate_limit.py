"""T3.29 rate limits: a token bucket per user (admins in a larger one of their own), per webhook
trigger, per failed login name and per login client address; 429 `rate_limited` with Retry-After
before the view runs; tokens come back."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime

import pytest

from gateway import ratelimit
from gateway.app import create_app
from tests.support.factories import PASSWORD, make_admin, make_trigger

pytestmark = pytest.mark.integration


class Clock:
    """The buckets' clock (the database's, in production), moved by hand in seconds."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def app(config, engine, published, clock):
    """The app at 10 requests/s per user, 30 per admin, 5 per webhook trigger, 3 failed logins
    per name and 8 login attempts per client address."""
    cfg = copy.deepcopy(config)
    cfg["ATTUNE"]["rate_limit"] = {
        "enabled": True, "user": {"rate": 10, "burst": 10}, "admin": {"rate": 30, "burst": 30},
        "webhook": {"rate": 5, "burst": 5}, "login_failures": {"rate": 0.1, "burst": 3},
        "login_address": {"rate": 0.5, "burst": 8}}
    app = create_app(cfg, publish=lambda *args: published.append(args))
    settings = app.config["ATTUNE_SETTINGS"].rate_limit
    app.extensions[ratelimit.EXTENSION] = ratelimit.RateLimits(settings, engine, clock)
    yield app
    app.extensions["attune"].dispose()


def burst(client, n, path="/api/v1/me", headers=None, **kwargs):
    return [client.get(path, headers=headers, **kwargs) for _ in range(n)]


def test_a_user_gets_the_burst_then_429_with_retry_after_and_the_envelope(client, make_user):
    _, admin_headers = make_user()
    _, viewer = make_user("viewer", admin_headers)
    responses = burst(client, 15, headers=viewer)
    assert [r.status_code for r in responses] == [200] * 10 + [429] * 5
    refused = responses[10]
    assert refused.headers["Retry-After"] == "1"
    error = refused.json["error"]
    assert error["code"] == "rate_limited" and error["details"] == {"retry_after": 1}
    assert "10 requests/s" in error["message"]


def test_the_bucket_refills_after_the_window(client, clock, make_user):
    _, admin_headers = make_user()
    _, editor = make_user("editor", admin_headers)
    assert burst(client, 11, headers=editor)[-1].status_code == 429
    clock.now += 0.1  # one token
    assert [r.status_code for r in burst(client, 2, headers=editor)] == [200, 429]
    clock.now += 1.0  # a full window: the whole burst again
    assert [r.status_code for r in burst(client, 11, headers=editor)] == [200] * 10 + [429]


def test_users_have_separate_buckets(client, make_user):
    _, admin_headers = make_user()
    _, one = make_user("executor", admin_headers)
    _, two = make_user("executor", admin_headers)
    assert burst(client, 11, headers=one)[-1].status_code == 429
    assert burst(client, 10, headers=two)[-1].status_code == 200


def test_an_admin_has_a_larger_bucket_of_its_own_but_is_limited_too(client, clock, make_user):
    _, admin = make_user()
    _, viewer = make_user("viewer", admin)
    clock.now += 1.0  # the admin's bucket is full again after adding the viewer
    responses = burst(client, 31, headers=admin)
    assert [r.status_code for r in responses] == [200] * 30 + [429]
    refused = responses[-1]
    assert refused.headers["Retry-After"] == "1"
    assert refused.json["error"]["code"] == "rate_limited"
    assert "30 requests/s" in refused.json["error"]["message"]
    # The viewer of the same tenant still has its own (smaller) bucket, untouched.
    assert [r.status_code for r in burst(client, 11, headers=viewer)] == [200] * 10 + [429]
    clock.now += 1.0
    assert [r.status_code for r in burst(client, 31, headers=admin)] == [200] * 30 + [429]


def test_a_refused_request_never_reaches_its_view(client, make_user):
    _, admin_headers = make_user()
    _, editor = make_user("editor", admin_headers)
    burst(client, 10, headers=editor)
    refused = client.post("/api/v1/datastore", headers=editor, json={"key": "k", "value": 1})
    assert refused.status_code == 429
    assert client.get("/api/v1/datastore/k", headers=admin_headers).status_code == 404


def test_each_webhook_trigger_has_its_own_bucket_whoever_calls(client, engine, make_user):
    user, admin_headers = make_user()
    one = make_trigger(engine, user["tenant_id"])
    two = make_trigger(engine, user["tenant_id"])

    def hook(trigger):
        return client.post(f"/api/v1/webhooks/{trigger['id']}", json={"n": 1},
                           headers={"X-Attune-Webhook-Token": trigger["webhook_token"]})

    assert [hook(one).status_code for _ in range(6)] == [202] * 5 + [429]
    refused = client.post(f"/api/v1/webhooks/{one['id']}", json={}, headers=admin_headers)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    assert "webhook trigger" in refused.json["error"]["message"]
    assert hook(two).status_code == 202


def test_failed_logins_are_limited_per_user_name(client, clock, make_user):
    user, _ = make_user()
    name = user["username"]

    def login(password):
        return client.post("/auth/login", json={"username": name, "password": password})

    assert [login("wrong-password").status_code for _ in range(3)] == [401] * 3
    locked = login(PASSWORD)  # even the right password waits: guessing gains nothing
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) == 10
    other = client.post("/auth/login", json={"username": f"x-{uuid.uuid4().hex}",
                                             "password": "whatever1"})
    assert other.status_code == 401
    clock.now += 10
    assert login(PASSWORD).status_code == 200


def test_successful_logins_spend_nothing_of_the_user_names_bucket(client, make_user):
    user, _ = make_user()
    for _ in range(6):
        response = client.post("/auth/login",
                               json={"username": user["username"], "password": PASSWORD})
        assert response.status_code == 200


def login_from(client, address, username, password, **headers):
    return client.post("/auth/login", json={"username": username, "password": password},
                       environ_base={"REMOTE_ADDR": address}, headers=headers)


def test_one_address_cannot_spray_many_user_names(client, clock, make_user):
    user, _ = make_user()  # its login came from the test client's own 127.0.0.1
    names = [f"spray-{n}-{uuid.uuid4().hex[:6]}" for n in range(10)]
    # A forged X-Forwarded-For does not make the socket peer someone else.
    codes = [login_from(client, "203.0.113.7", name, "wrong-password",
                        **{"X-Forwarded-For": f"10.0.0.{n}"}).status_code
             for n, name in enumerate(names)]
    # Each name failed once only (its own bucket holds 3), yet the address ran out after 8.
    assert codes == [401] * 8 + [429] * 2
    refused = login_from(client, "203.0.113.7", user["username"], PASSWORD)
    assert refused.status_code == 429  # even the right password: the address waits
    assert refused.headers["Retry-After"] == "2"
    assert "logins from 203.0.113.7" in refused.json["error"]["message"]
    # Another address is not affected, and the right password works from it.
    assert login_from(client, "198.51.100.9", user["username"], PASSWORD).status_code == 200
    clock.now += 2.0  # one token back (0.5/s)
    assert login_from(client, "203.0.113.7", user["username"], PASSWORD).status_code == 200
    assert login_from(client, "203.0.113.7", user["username"], PASSWORD).status_code == 429


def test_successful_logins_count_against_the_address_too(client, make_user):
    user, _ = make_user()
    codes = [login_from(client, "192.0.2.44", user["username"], PASSWORD).status_code
             for _ in range(9)]
    assert codes == [200] * 8 + [429]


def test_rate_limits_can_be_switched_off(config, engine, make_app):
    cfg = copy.deepcopy(config)
    cfg["ATTUNE"]["rate_limit"] = {"enabled": False, "user": {"rate": 1, "burst": 1}}
    app = make_app(cfg)
    client = app.test_client()
    name = f"off-{uuid.uuid4().hex[:8]}"
    make_admin(engine, name)
    admin = {"Authorization": "Bearer " + client.post("/auth/login", json={
        "username": name, "password": PASSWORD}).json["data"]["access_token"]}
    assert client.post("/api/v1/users", headers=admin, json={
        "username": name + "v", "password": PASSWORD, "role": "viewer"}).status_code == 201
    viewer = {"Authorization": "Bearer " + client.post("/auth/login", json={
        "username": name + "v", "password": PASSWORD}).json["data"]["access_token"]}
    assert {r.status_code for r in burst(client, 5, headers=viewer)} == {200}
    assert ratelimit.EXTENSION not in app.extensions
