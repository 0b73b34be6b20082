"""POST /api/v1/webhooks/{trigger_id}: authentication, payloads, idempotency, limits."""

import hashlib
import hmac
import io
import json

import pytest
from sqlalchemy import func, select, text

from nameko_services.domain import messages, models
from nameko_services.domain.auth import issue_token
from tests.support.factories import PASSWORD, make_admin, make_event, make_execution, make_trigger

pytestmark = pytest.mark.integration

PAYLOAD = {"event_type": "user.signup", "user_id": 12345, "email": "test@example.com",
           "metadata": {"source": "web", "campaign": "spring2024"}}


def url(trigger) -> str:
    return f"/api/v1/webhooks/{trigger['id']}"


def token_header(trigger) -> dict:
    return {"X-Attune-Webhook-Token": trigger["webhook_token"]}


def event_row(engine, event_id):
    with engine.connect() as conn:
        return conn.execute(
            select(models.events).where(models.events.c.id == event_id)
        ).mappings().one_or_none()


def count_events(engine, trigger) -> int:
    with engine.connect() as conn:
        return conn.execute(
            select(func.count()).select_from(models.events)
            .where(models.events.c.trigger_id == trigger["id"])
        ).scalar_one()


def execution_token(settings, user, execution_id) -> dict:
    token = issue_token(settings.jwt_secret, user_id=user["id"], tenant_id=user["tenant_id"],
                        role=user["role"], token_type="execution", ttl_seconds=60,
                        execution_id=execution_id)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def tenant(make_user):
    user, headers = make_user()
    return user, headers


def test_token_header_stores_the_payload_and_returns_202(client, engine, tenant, published):
    user, _ = tenant
    trigger = make_trigger(engine, user["tenant_id"])
    r = client.post(url(trigger), json=PAYLOAD, headers=token_header(trigger))
    assert r.status_code == 202, r.json
    data = r.json["data"]
    assert data["trigger_id"] == trigger["id"] and data["received_at"].endswith("Z")
    row = event_row(engine, data["event_id"])
    assert row["payload"] == PAYLOAD and row["source"] == "webhook"
    assert row["tenant_id"] == user["tenant_id"] and row["chain_depth"] == 0
    [(source, event_type, news)] = published
    assert (source, event_type) == (messages.GATEWAY, messages.EVENT_CREATED)
    assert (news["event_id"], news["tenant_id"]) == (data["event_id"], user["tenant_id"])
    assert news["event"]["payload"] == PAYLOAD  # small: the notifier need not read it back


def test_a_traceparent_names_the_events_trace_and_the_trace_finds_it(
    client, engine, tenant, published
):
    user, headers = tenant
    trigger = make_trigger(engine, user["tenant_id"])
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    sent = client.post(url(trigger), json=PAYLOAD, headers={
        **token_header(trigger), "traceparent": f"00-{trace}-00f067aa0ba902b7-01"})
    plain = client.post(url(trigger), json=PAYLOAD, headers={
        **token_header(trigger), "traceparent": "00-not-a-trace-01"})  # ignored
    assert sent.status_code == plain.status_code == 202
    assert sent.json["data"]["trace_id"] == trace
    assert sent.headers["traceparent"].startswith(f"00-{trace}-")
    assert event_row(engine, sent.json["data"]["event_id"])["trace_id"] == trace
    assert published[0][2]["trace_id"] == trace  # EVENT_CREATED carries it to the executor
    other = plain.json["data"]["trace_id"]
    assert len(other) == 32 and other != trace
    assert event_row(engine, plain.json["data"]["event_id"])["trace_id"] == other
    found = client.get(f"/api/v1/events?trace_id={trace}", headers=headers).json["data"]
    assert [e["id"] for e in found] == [sent.json["data"]["event_id"]]
    assert found[0]["trace_id"] == trace


def test_event_is_committed_before_event_created_is_published(config, engine, tenant):
    from gateway.app import create_app

    seen = []

    def publish(source, event_type, payload):  # a separate connection sees only committed rows
        seen.append((event_type, event_row(engine, payload["event_id"]) is not None))

    client = create_app(config, publish=publish).test_client()
    trigger = make_trigger(engine, tenant[0]["tenant_id"])
    r = client.post(url(trigger), json={"a": 1}, headers=token_header(trigger))
    assert r.status_code == 202
    assert seen == [(messages.EVENT_CREATED, True)]


def test_hub_signature_of_the_raw_body_authenticates(client, engine, tenant):
    trigger = make_trigger(engine, tenant[0]["tenant_id"])
    body = json.dumps(PAYLOAD).encode()
    digest = hmac.new(trigger["webhook_token"].encode(), body, hashlib.sha256).hexdigest()
    r = client.post(url(trigger), data=body, content_type="application/json",
                    headers={"X-Hub-Signature-256": f"sha256={digest}"})
    assert r.status_code == 202
    assert event_row(engine, r.json["data"]["event_id"])["payload"] == PAYLOAD


def test_signature_of_another_body_is_401(client, engine, tenant):
    trigger = make_trigger(engine, tenant[0]["tenant_id"])
    digest = hmac.new(trigger["webhook_token"].encode(), b"{}", hashlib.sha256).hexdigest()
    r = client.post(url(trigger), json={"x": 1},
                    headers={"X-Hub-Signature-256": f"sha256={digest}"})
    assert r.status_code == 401 and r.json["error"]["code"] == "unauthorized"
    assert count_events(engine, trigger) == 0


def test_bearer_token_of_the_triggers_tenant_authenticates(client, engine, tenant):
    user, headers = tenant
    trigger = make_trigger(engine, user["tenant_id"])
    r = client.post(url(trigger), json=[1, 2, 3], headers=headers)
    assert r.status_code == 202
    assert event_row(engine, r.json["data"]["event_id"])["payload"] == [1, 2, 3]


def test_bearer_token_of_another_tenant_is_404_like_an_unknown_trigger(client, engine, make_user):
    owner, _ = make_user()
    _, stranger = make_user()
    trigger = make_trigger(engine, owner["tenant_id"])
    r = client.post(url(trigger), json={}, headers=stranger)
    assert r.status_code == 404
    assert r.json["error"]["message"] == f"Trigger {trigger['id']} not found"
    assert count_events(engine, trigger) == 0


def test_viewer_bearer_token_is_403(client, engine, make_user):
    admin, admin_headers = make_user()
    _, viewer = make_user(role="viewer", admin_headers=admin_headers)
    trigger = make_trigger(engine, admin["tenant_id"])
    r = client.post(url(trigger), json={}, headers=viewer)
    assert r.status_code == 403 and "execute" in r.json["error"]["message"]


@pytest.mark.parametrize("headers", [
    {"X-Attune-Webhook-Token": "wrong"},
    {"X-Attune-Webhook-Token": ""},
    {"X-Hub-Signature-256": "sha256=00"},
    {"X-Hub-Signature-256": "md5=abc"},
    {"Authorization": "Bearer not.a.jwt"},
    {},
])
def test_wrong_or_missing_credentials_are_401(client, engine, tenant, headers):
    trigger = make_trigger(engine, tenant[0]["tenant_id"])
    r = client.post(url(trigger), json={"x": 1}, headers=headers)
    assert r.status_code == 401, r.json
    assert count_events(engine, trigger) == 0


def test_refresh_token_as_bearer_is_401(client, engine):
    make_admin(engine, "wh-refresh")
    data = client.post("/auth/login",
                       json={"username": "wh-refresh", "password": PASSWORD}).json["data"]
    trigger = make_trigger(engine, data["user"]["tenant_id"])
    r = client.post(url(trigger), json={},
                    headers={"Authorization": f"Bearer {data['refresh_token']}"})
    assert r.status_code == 401


@pytest.mark.parametrize("overrides", [
    {"type": "interval"}, {"type": "custom"}, {"status": "expired"},
])
def test_a_trigger_that_is_not_an_active_webhook_is_404(client, engine, tenant, overrides):
    trigger = make_trigger(engine, tenant[0]["tenant_id"], **overrides)
    token = trigger["webhook_token"] or "x"
    r = client.post(url(trigger), json={}, headers={"X-Attune-Webhook-Token": token})
    assert r.status_code == 404


@pytest.mark.parametrize("trigger_id", ["999999999", "abc", "1%20OR%201=1", "-1"])
def test_unknown_trigger_ids_are_404(client, trigger_id):
    r = client.post(f"/api/v1/webhooks/{trigger_id}", json={},
                    headers={"X-Attune-Webhook-Token": "x"})
    assert r.status_code == 404 and r.json["error"]["code"] == "not_found"


def test_empty_body_becomes_a_null_payload(client, engine, tenant):
    trigger = make_trigger(engine, tenant[0]["tenant_id"])
    r = client.post(url(trigger), headers=token_header(trigger))
    assert r.status_code == 202
    assert event_row(engine, r.json["data"]["event_id"])["payload"] is None


@pytest.mark.parametrize("body", [b"{nope", b"\xff\xfe", b"[NaN]", b'{"a": Infinity}',
                                  b'"nul \\u0000 inside"'])
def test_a_body_that_is_not_storable_json_is_400(client, engine, tenant, body):
    trigger = make_trigger(engine, tenant[0]["tenant_id"])
    r = client.post(url(trigger), data=body, content_type="application/json",
                    headers=token_header(trigger))
    assert r.status_code == 400 and r.json["error"]["code"] == "bad_request"
    assert count_events(engine, trigger) == 0


def test_body_over_the_limit_is_413_with_the_error_envelope(client, engine, tenant, settings):
    trigger = make_trigger(engine, tenant[0]["tenant_id"])
    body = b'"' + b"a" * settings.webhook_max_body_bytes + b'"'
    r = client.post(url(trigger), data=body, content_type="application/json",
                    headers=token_header(trigger))
    assert r.status_code == 413
    assert r.json["error"]["code"] == "payload_too_large"
    assert count_events(engine, trigger) == 0


def test_body_over_the_limit_without_content_length_is_413(app, engine, tenant, settings):
    from werkzeug.test import EnvironBuilder, run_wsgi_app

    trigger = make_trigger(engine, tenant[0]["tenant_id"])
    body = b'"' + b"a" * settings.webhook_max_body_bytes + b'"'
    environ = EnvironBuilder(path=url(trigger), method="POST", input_stream=io.BytesIO(body),
                             headers=token_header(trigger)).get_environ()
    del environ["CONTENT_LENGTH"]  # as with Transfer-Encoding: chunked
    environ["wsgi.input_terminated"] = True
    chunks, status, _ = run_wsgi_app(app, environ)
    assert status.startswith("413")
    assert json.loads(b"".join(chunks))["error"]["code"] == "payload_too_large"
    assert count_events(engine, trigger) == 0


def _chunked_post(app, trigger, body):
    from werkzeug.test import EnvironBuilder, run_wsgi_app

    environ = EnvironBuilder(path=url(trigger), method="POST", input_stream=io.BytesIO(body),
                             headers={**token_header(trigger), "Transfer-Encoding": "chunked"}
                             ).get_environ()
    del environ["CONTENT_LENGTH"]  # as eventlet.wsgi presents a chunked request
    chunks, status, _ = run_wsgi_app(app, environ)
    return int(status.split()[0]), json.loads(b"".join(chunks))


def test_chunked_body_without_content_length_is_read(app, engine, tenant):
    trigger = make_trigger(engine, tenant[0]["tenant_id"])
    status, body = _chunked_post(app, trigger, json.dumps(PAYLOAD).encode())
    assert status == 202
    assert event_row(engine, body["data"]["event_id"])["payload"] == PAYLOAD


def test_chunked_body_over_the_limit_is_413(app, engine, tenant, settings):
    trigger = make_trigger(engine, tenant[0]["tenant_id"])
    status, body = _chunked_post(app, trigger, b"[" + b"1," * settings.webhook_max_body_bytes)
    assert status == 413 and body["error"]["code"] == "payload_too_large"
    assert count_events(engine, trigger) == 0


def test_body_at_the_limit_is_accepted(client, engine, tenant, settings):
    trigger = make_trigger(engine, tenant[0]["tenant_id"])
    body = b'"' + b"a" * (settings.webhook_max_body_bytes - 2) + b'"'
    r = client.post(url(trigger), data=body, content_type="application/json",
                    headers=token_header(trigger))
    assert r.status_code == 202


def test_repeated_idempotency_key_returns_the_first_event_and_publishes_once(
    client, engine, tenant, published
):
    trigger = make_trigger(engine, tenant[0]["tenant_id"])
    headers = {**token_header(trigger), "Idempotency-Key": "delivery-1"}
    first = client.post(url(trigger), json={"n": 1}, headers=headers)
    second = client.post(url(trigger), json={"n": 2}, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json["data"] == second.json["data"]
    assert count_events(engine, trigger) == 1
    assert event_row(engine, first.json["data"]["event_id"])["payload"] == {"n": 1}
    assert len(published) == 1
    other = client.post(url(trigger), json={"n": 3},
                        headers={**token_header(trigger), "Idempotency-Key": "delivery-2"})
    assert other.json["data"]["event_id"] != first.json["data"]["event_id"]


def test_only_a_call_with_an_idempotency_key_stores_its_event_in_a_transaction(
    app, engine, tenant
):
    """Without a key the event's INSERT is the call's one write: it commits on its own (no
    BEGIN/COMMIT round trips); with one, releasing a stale key and storing go together."""
    from sqlalchemy import event as sa_event

    seen = []

    def before(conn, _cursor, _statement, _parameters, context, _many):
        # As built (what runs may be its prepared form: EXECUTE …)
        if context.statement.lstrip().startswith("INSERT INTO events"):
            seen.append(conn.connection.dbapi_connection.autocommit)

    trigger = make_trigger(engine, tenant[0]["tenant_id"])
    gateway = app.extensions["attune"]
    for pool in (gateway.engine, gateway.autocommit):
        sa_event.listen(pool, "before_cursor_execute", before)
    client = app.test_client()
    keyed = {**token_header(trigger), "Idempotency-Key": "k-1"}
    assert client.post(url(trigger), json={"n": 1}, headers=token_header(trigger)).status_code \
        == client.post(url(trigger), json={"n": 2}, headers=keyed).status_code == 202
    assert seen == [True, False]
    assert count_events(engine, trigger) == 2


def test_idempotency_key_older_than_24_hours_is_released(client, engine, tenant, published):
    trigger = make_trigger(engine, tenant[0]["tenant_id"])
    old = make_event(engine, tenant[0]["tenant_id"], trigger=trigger, idempotency_key="k-old",
                     created_at=text("now() - interval '25 hours'"))
    r = client.post(url(trigger), json={"n": 2},
                    headers={**token_header(trigger), "Idempotency-Key": "k-old"})
    assert r.status_code == 202
    assert r.json["data"]["event_id"] != old["id"]
    assert event_row(engine, old["id"])["idempotency_key"] is None
    assert len(published) == 1


def test_overlong_idempotency_key_is_400(client, engine, tenant):
    trigger = make_trigger(engine, tenant[0]["tenant_id"])
    r = client.post(url(trigger), json={},
                    headers={**token_header(trigger), "Idempotency-Key": "k" * 500})
    assert r.status_code == 400


def test_execution_token_records_the_cause_and_deepens_the_chain(
    client, engine, tenant, settings
):
    user, _ = tenant
    tid = user["tenant_id"]
    cause = make_event(engine, tid, chain_depth=2)
    parent = make_execution(engine, tid, event_id=cause["id"])
    child = make_execution(engine, tid, parent_execution_id=parent["id"])
    trigger = make_trigger(engine, tid)
    for execution, depth in ((parent, 3), (child, 3)):
        r = client.post(url(trigger), json={"x": 1},
                        headers=execution_token(settings, user, execution["id"]))
        assert r.status_code == 202, r.json
        row = event_row(engine, r.json["data"]["event_id"])
        assert row["caused_by_execution_id"] == execution["id"]
        assert row["chain_depth"] == depth


def test_execution_token_of_an_execution_without_an_event_gives_depth_one(
    client, engine, tenant, settings
):
    user, _ = tenant
    execution = make_execution(engine, user["tenant_id"])
    trigger = make_trigger(engine, user["tenant_id"])
    r = client.post(url(trigger), json={},
                    headers=execution_token(settings, user, execution["id"]))
    assert event_row(engine, r.json["data"]["event_id"])["chain_depth"] == 1


def test_system_webhook_trigger_files_events_under_the_bearers_tenant(client, engine, make_user):
    user_a, headers_a = make_user()
    user_b, headers_b = make_user()
    trigger = make_trigger(engine, None)
    assert client.post(url(trigger), json={}, headers=token_header(trigger)).status_code == 401
    key = {"Idempotency-Key": "same-key"}
    ra = client.post(url(trigger), json={"t": "a"}, headers={**headers_a, **key})
    rb = client.post(url(trigger), json={"t": "b"}, headers={**headers_b, **key})
    assert ra.status_code == rb.status_code == 202
    assert ra.json["data"]["event_id"] != rb.json["data"]["event_id"]
    assert event_row(engine, ra.json["data"]["event_id"])["tenant_id"] == user_a["tenant_id"]
    assert event_row(engine, rb.json["data"]["event_id"])["tenant_id"] == user_b["tenant_id"]
