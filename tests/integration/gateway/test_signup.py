"""Sign-up and login hardening (#14): registration closed unless configured open, and argon2
running off the gateway's event loop, so a login being checked does not stall other requests."""

import eventlet
import eventlet.wsgi
import pytest
import requests
from argon2 import PasswordHasher
from sqlalchemy import event, func, select, update

from gateway.api.auth import REGISTRATION_CLOSED
from gateway.app import create_app
from nameko_services.domain import models
from tests.support.factories import PASSWORD, make_admin, unique

pytestmark = pytest.mark.integration

# Parameters stored in a hash are the ones it is verified with: this one costs ~10x the default.
COSTLY = PasswordHasher(time_cost=30)


def count(engine, table):
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_with_registration_closed_register_is_403_and_creates_nothing(client, engine):
    tenants, users = count(engine, models.tenants), count(engine, models.users)
    response = client.post("/auth/register",
                           json={"username": unique("stranger"), "password": PASSWORD})
    assert response.status_code == 403
    assert response.json == {"error": {"code": "forbidden", "message": REGISTRATION_CLOSED,
                                       "details": {"registration": "closed"}}}
    assert "attune create-user" in response.json["error"]["message"]
    assert (count(engine, models.tenants), count(engine, models.users)) == (tenants, users)


def test_with_registration_closed_even_a_malformed_body_learns_only_that(client):
    response = client.post("/auth/register", data="{nope", content_type="application/json")
    assert response.status_code == 403 and response.json["error"]["code"] == "forbidden"


def test_with_registration_open_register_is_201_with_a_token_pair(open_client):
    username = unique("signup")
    response = open_client.post("/auth/register", json={"username": username,
                                                        "password": PASSWORD})
    assert response.status_code == 201, response.json
    data = response.json["data"]
    assert data["user"]["username"] == username and data["user"]["role"] == "admin"
    me = open_client.get("/api/v1/me",
                         headers={"Authorization": f"Bearer {data['access_token']}"})
    assert me.json["data"] == {**data["user"],
                               "permissions": ["admin", "execute", "read", "self", "write"]}


def test_the_openapi_document_describes_the_closed_registration_403(client):
    document = client.get("/api/v1/openapi.json").json
    register = document["paths"]["/auth/register"]["post"]
    assert "closed" in register["responses"]["403"]["description"]
    assert "attune create-user" in register["responses"]["403"]["description"]
    assert register["security"] == []
    assert "403" not in document["paths"]["/auth/login"]["post"]["responses"]


@pytest.fixture
def served(config, engine):
    """The gateway app served by eventlet.wsgi in this process, as gateway/serve.py serves it."""
    app = create_app(config)
    listener = eventlet.listen(("127.0.0.1", 0))
    server = eventlet.spawn(eventlet.wsgi.server, listener, app, log_output=False)
    yield app, f"http://127.0.0.1:{listener.getsockname()[1]}"
    server.kill()
    listener.close()
    app.extensions["attune"].dispose()


def test_another_request_is_answered_while_a_logins_password_is_being_checked(served, engine):
    app, url = served
    slow = make_admin(engine)  # its stored hash is made costly, as an older, stronger one would be
    with engine.begin() as conn:
        conn.execute(update(models.users).where(models.users.c.id == slow["id"])
                     .values(password_hash=COSTLY.hash(PASSWORD)))
    other = make_admin(engine)
    token = requests.post(f"{url}/auth/login", timeout=30, json={
        "username": other["username"], "password": PASSWORD}).json()["data"]["access_token"]

    # The moment the login has found its user, the only work left before its answer is argon2.
    looked_up = eventlet.Event()

    def on_statement(conn, cursor, statement, parameters, context, executemany):
        if "FROM users" in statement and "users.username =" in statement and not looked_up.ready():
            looked_up.send()

    event.listen(app.extensions["attune"].engine, "after_cursor_execute", on_statement)
    answered = []

    def log_in():
        response = requests.post(f"{url}/auth/login", timeout=60, json={
            "username": slow["username"], "password": PASSWORD})
        answered.append(("login", response.status_code))

    login = eventlet.spawn(log_in)
    with eventlet.Timeout(60):
        looked_up.wait()
    # Were the hash running on the hub, this greenthread could not run until it had finished.
    me = requests.get(f"{url}/api/v1/me", timeout=60, headers={"Authorization": f"Bearer {token}"})
    answered.append(("me", me.status_code))
    login.wait()
    assert answered == [("me", 200), ("login", 200)]
