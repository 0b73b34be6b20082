"""T1.7 multi-tenant isolation for runtime resources, injection attempts and forged tokens."""

import time
import urllib.parse

import jwt
import pytest
from sqlalchemy import func, select

from nameko_services.domain import models
from tests.support.factories import (
    make_action,
    make_enforcement,
    make_event,
    make_rule,
    make_trigger,
)

pytestmark = pytest.mark.integration

INJECTIONS = ["1 OR 1=1", "1; DROP TABLE events", "' OR ''='", "1' OR '1'='1' --",
              "0x1", "1e3", "../1", "%00", "nul\x00byte", "1" * 30]


@pytest.fixture
def world(client, engine, make_user):
    """Tenant A with one of everything; tenant B with nothing."""
    user_a, a = make_user()
    user_b, b = make_user()
    tid = user_a["tenant_id"]
    action = make_action(engine, tid, parameters={})
    trigger = make_trigger(engine, tid)
    rule = make_rule(engine, tid, trigger=trigger, action=action)
    event = make_event(engine, tid, trigger=trigger)
    enforcement = make_enforcement(engine, tid, rule=rule, event=event)
    execution = client.post("/api/v1/executions", headers=a,
                            json={"action": action["ref"]}).json["data"]
    assert client.post("/api/v1/datastore", headers=a,
                       json={"key": "a_key", "value": "a-value"}).status_code == 201
    assert client.post("/api/v1/secrets", headers=a,
                       json={"key": "a_secret", "value": "a-secret"}).status_code == 201
    return {"a": a, "b": b, "user_a": user_a, "user_b": user_b, "action": action,
            "trigger": trigger, "rule": rule, "event": event, "enforcement": enforcement,
            "execution": execution}


def row_counts(engine) -> dict[str, int]:
    tables = [models.events, models.executions, models.enforcements, models.datastore_items,
              models.secrets, models.triggers, models.actions, models.audit_log]
    with engine.connect() as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                for t in tables}


def test_tenant_b_gets_404_for_each_of_tenant_as_resources(client, world):
    b = world["b"]
    for path in (
        f"/api/v1/events/{world['event']['id']}",
        f"/api/v1/enforcements/{world['enforcement']['id']}",
        f"/api/v1/executions/{world['execution']['id']}",
        "/api/v1/datastore/a_key",
        "/api/v1/secrets/a_secret",
    ):
        r = client.get(path, headers=b)
        assert r.status_code == 404, path
        assert r.json["error"]["code"] == "not_found"
    for path in (f"/api/v1/executions/{world['execution']['id']}/cancel",
                 f"/api/v1/executions/{world['execution']['id']}/rerun"):
        assert client.post(path, headers=b).status_code == 404, path
    assert client.delete("/api/v1/datastore/a_key", headers=b).status_code == 404
    assert client.delete("/api/v1/secrets/a_secret", headers=b).status_code == 404
    for ref in (world["action"]["ref"], world["action"]["id"]):
        assert client.post("/api/v1/executions", headers=b,
                           json={"action": ref}).status_code == 404
    r = client.post(f"/api/v1/webhooks/{world['trigger']['id']}", headers=b, json={})
    assert r.status_code == 404
    # Tenant A still sees everything, untouched.
    a = world["a"]
    assert client.get("/api/v1/datastore/a_key", headers=a).json["data"]["value"] == "a-value"
    assert client.get("/api/v1/secrets/a_secret", headers=a).status_code == 200
    r = client.get(f"/api/v1/executions/{world['execution']['id']}", headers=a)
    assert r.json["data"]["status"] == "requested"


def test_tenant_b_sees_empty_lists_even_when_filtering_by_tenant_as_ids(client, world):
    b = world["b"]
    for path in (
        "/api/v1/events", "/api/v1/enforcements", "/api/v1/executions", "/api/v1/datastore",
        "/api/v1/secrets",
        f"/api/v1/events?trigger_id={world['trigger']['id']}",
        f"/api/v1/enforcements?rule_id={world['rule']['id']}",
        f"/api/v1/enforcements?event_id={world['event']['id']}",
        f"/api/v1/executions?action={world['action']['ref']}",
        f"/api/v1/audit?entity_type=execution&entity_id={world['execution']['id']}",
    ):
        r = client.get(path, headers=b)
        assert r.status_code == 200, path
        assert r.json["data"] == [] and r.json["pagination"]["total"] == 0, path
    # B's audit trail holds only B's own sign-up.
    entries = client.get("/api/v1/audit", headers=b).json["data"]
    assert [(e["action"], e["entity_id"]) for e in entries] == [
        ("user.created", str(world["user_b"]["id"]))]


def test_same_datastore_key_in_two_tenants_stays_separate(client, world):
    a, b = world["a"], world["b"]
    assert client.post("/api/v1/datastore", headers=b,
                       json={"key": "a_key", "value": "b-value"}).status_code == 201
    assert client.get("/api/v1/datastore/a_key", headers=a).json["data"]["value"] == "a-value"
    assert client.get("/api/v1/datastore/a_key", headers=b).json["data"]["value"] == "b-value"


def test_a_ciphertext_moved_to_another_tenant_does_not_decrypt(client, engine, world):
    from sqlalchemy import update

    a, b = world["a"], world["b"]
    client.post("/api/v1/datastore", headers=a,
                json={"key": "moved", "value": "a-plain", "encrypted": True})
    client.post("/api/v1/datastore", headers=b,
                json={"key": "moved", "value": "b-plain", "encrypted": True})
    items = models.datastore_items
    with engine.begin() as conn:
        blob = conn.execute(select(items.c.ciphertext).where(
            items.c.tenant_id == world["user_a"]["tenant_id"], items.c.key == "moved")
        ).scalar_one()
        conn.execute(update(items).where(items.c.tenant_id == world["user_b"]["tenant_id"],
                                         items.c.key == "moved").values(ciphertext=blob))
    r = client.get("/api/v1/datastore/moved", headers=b)
    assert r.status_code == 500 and "cannot be decrypted" in r.json["error"]["message"]
    assert "plain" not in r.get_data(as_text=True)


@pytest.mark.parametrize("injection", INJECTIONS)
def test_injection_strings_never_cause_a_500_and_leave_tables_intact(
    client, engine, world, injection
):
    b = world["b"]
    before = row_counts(engine)
    quoted = urllib.parse.quote(injection, safe="")
    query = urllib.parse.quote_plus(injection)
    calls = [
        ("get", f"/api/v1/events/{quoted}"), ("get", f"/api/v1/enforcements/{quoted}"),
        ("get", f"/api/v1/executions/{quoted}"),
        ("post", f"/api/v1/executions/{quoted}/cancel"),
        ("post", f"/api/v1/executions/{quoted}/rerun"),
        ("get", f"/api/v1/datastore/{quoted}"), ("delete", f"/api/v1/datastore/{quoted}"),
        ("get", f"/api/v1/secrets/{quoted}"), ("delete", f"/api/v1/secrets/{quoted}"),
        ("post", f"/api/v1/webhooks/{quoted}"),
        ("get", f"/api/v1/events?trigger_id={query}"),
        ("get", f"/api/v1/enforcements?rule_id={query}"),
        ("get", f"/api/v1/executions?status={query}"),
        ("get", f"/api/v1/executions?parent_execution_id={query}"),
        ("get", f"/api/v1/executions?limit={query}"),
        ("get", f"/api/v1/executions?action={query}"),
        ("get", f"/api/v1/datastore?prefix={query}"),
        ("get", f"/api/v1/audit?entity_id={query}"),
    ]
    for method, path in calls:
        r = getattr(client, method)(path, headers=b)
        assert r.status_code in (200, 400, 404, 422), (path, r.status_code)
        if r.status_code == 200:
            assert r.json["data"] == [], path
        else:
            assert r.json["error"]["code"] in ("bad_request", "not_found", "validation_error")
    for body in ({"key": injection, "value": 1}, {"key": "k", "value": injection}):
        r = client.post("/api/v1/datastore", headers=b, json=body)
        assert r.status_code in (200, 201, 422), body
    r = client.post("/api/v1/executions", headers=b, json={"action": injection})
    assert r.status_code in (404, 422)
    after = row_counts(engine)
    assert after["events"] == before["events"] and after["executions"] == before["executions"]
    assert after["secrets"] == before["secrets"]
    assert client.get("/api/v1/datastore/a_key", headers=world["a"]).status_code == 200


def test_non_ascii_digits_in_path_ids_are_404(client, world):
    r = client.get("/api/v1/events/%C2%B2", headers=world["b"])
    assert r.status_code == 404


def _token(secret, user, **changes):
    now = int(time.time())
    claims = {"sub": str(user["id"]), "tenant_id": user["tenant_id"], "role": "admin",
              "type": "access", "iat": now, "exp": now + 60, "jti": "t", **changes}
    return {"Authorization": "Bearer " + jwt.encode(claims, secret, algorithm="HS256")}


def test_forged_expired_and_wrong_type_tokens_are_401_on_every_runtime_route(
    client, settings, world
):
    user_b = world["user_b"]
    good = settings.jwt_secret
    forged_secret = "not-the-secret-" + "z" * 40
    unsigned = jwt.encode({"sub": str(user_b["id"]), "tenant_id": world["user_a"]["tenant_id"],
                           "role": "admin", "type": "access", "iat": 0,
                           "exp": int(time.time()) + 60, "jti": "n"}, None, algorithm="none")
    bad_headers = [
        _token(forged_secret, user_b, tenant_id=world["user_a"]["tenant_id"]),
        _token(good, user_b, exp=int(time.time()) - 5),
        _token(good, user_b, type="refresh"),
        _token(good, user_b, type="bogus"),
        {"Authorization": f"Bearer {unsigned}"},
        {"Authorization": "Bearer garbage"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {},
    ]
    routes = [
        ("get", "/api/v1/events"), ("get", f"/api/v1/events/{world['event']['id']}"),
        ("get", "/api/v1/enforcements"), ("get", "/api/v1/executions"),
        ("post", "/api/v1/executions"),
        ("post", f"/api/v1/executions/{world['execution']['id']}/cancel"),
        ("get", "/api/v1/datastore"), ("get", "/api/v1/datastore/a_key"),
        ("post", "/api/v1/datastore"), ("delete", "/api/v1/datastore/a_key"),
        ("get", "/api/v1/secrets"), ("post", "/api/v1/secrets"), ("get", "/api/v1/audit"),
    ]
    for headers in bad_headers:
        for method, path in routes:
            r = getattr(client, method)(path, headers=headers, json={})
            assert r.status_code == 401, (headers, method, path, r.status_code)
            assert r.json["error"]["code"] == "unauthorized"
        r = client.post(f"/api/v1/webhooks/{world['trigger']['id']}", headers=headers, json={})
        assert r.status_code == 401, headers
    assert client.get("/api/v1/datastore/a_key", headers=world["a"]).status_code == 200
