"""What the gateway answers while RabbitMQ or PostgreSQL is down (real clients, closed ports)."""

import copy

import pytest

from gateway.app import create_app
from nameko_services import green
from nameko_services.domain.auth import issue_token
from tests.integration.gateway.test_webhooks import PAYLOAD, event_row, token_header, url
from tests.support.factories import make_trigger

pytestmark = pytest.mark.integration

NOTHING_LISTENS = "127.0.0.1:9"  # the discard port: nothing listens on it here


@pytest.fixture
def broker_down_client(config, engine):
    """The gateway with a real publisher whose broker cannot be reached."""
    cfg = copy.deepcopy(config)
    cfg["AMQP_URI"] = f"amqp://guest:guest@{NOTHING_LISTENS}/"
    app = create_app(cfg, publish=green.Publisher(cfg))
    yield app.test_client()
    app.extensions["attune"].dispose()


@pytest.fixture
def database_down_client(config):
    cfg = copy.deepcopy(config)
    cfg["ATTUNE"]["database_url"] = f"postgresql+psycopg2://attune:attune@{NOTHING_LISTENS}/x"
    app = create_app(cfg)
    yield app.test_client()
    app.extensions["attune"].dispose()


def test_a_webhook_stored_while_the_broker_is_down_is_still_accepted(
        broker_down_client, engine, make_user):
    """The event is committed before the publish; the executor's sweep evaluates it later."""
    user, _ = make_user()
    trigger = make_trigger(engine, user["tenant_id"])
    r = broker_down_client.post(url(trigger), json=PAYLOAD, headers=token_header(trigger))
    assert r.status_code == 202, r.json
    row = event_row(engine, r.json["data"]["event_id"])
    assert row is not None and row["payload"] == PAYLOAD


def test_the_database_down_answers_503_with_retry_after(database_down_client, settings):
    token = issue_token(settings.jwt_secret, user_id=1, tenant_id=1, role="admin",
                        token_type="access", ttl_seconds=60)
    listed = database_down_client.get("/api/v1/packs", headers={"Authorization": f"Bearer {token}"})
    hooked = database_down_client.post("/api/v1/webhooks/1", json=PAYLOAD,
                                       headers={"X-Attune-Webhook-Token": "t"})
    for r in (listed, hooked):
        assert r.status_code == 503, r.json
        assert r.json["error"]["code"] == "unavailable"
        assert "database is unavailable" in r.json["error"]["message"]
        assert r.headers["Retry-After"] == "5"


def test_a_waiting_webhook_while_the_broker_is_down_is_accepted_unannounced(
        broker_down_client, engine, make_user, caplog):
    """Its tenant cannot be announced (domain/presence.py) nor its event published: the event
    is stored all the same and the request answers 202 when its wait is over."""
    user, _ = make_user()
    trigger = make_trigger(engine, user["tenant_id"])
    r = broker_down_client.post(url(trigger) + "?wait=0.5", json=PAYLOAD,
                                headers=token_header(trigger))
    assert r.status_code == 202, r.json
    assert event_row(engine, r.json["data"]["event_id"]) is not None
    assert "listeners.present not published" in caplog.text
