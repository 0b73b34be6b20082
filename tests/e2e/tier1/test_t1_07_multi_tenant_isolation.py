"""T1.7 — a tenant never sees or touches another tenant's resources (404, not 403)."""

import base64
import json
import time

import jwt
import pytest

from tests.support.e2e import wait_for_execution, wait_until
from tests.support.flows import (
    fire_webhook,
    list_all,
    make_rule,
    make_trigger,
    register_pack,
)

INJECTIONS = ["1 OR 1=1", "1; DROP TABLE executions", "' OR ''='", "1)--", "%27%20OR%201=1"]


@pytest.fixture
def world(make_api):
    """Tenant A with a pack, rule, event, enforcement, execution, datastore key and secret."""
    a, b = make_api(), make_api()
    assert a.tenant_id != b.tenant_id
    pack = register_pack(a)
    action = a.data(a.get("/api/v1/actions", params={"pack": "test_pack"}))
    echo = next(x for x in action if x["ref"] == "test_pack.echo")
    trigger = make_trigger(a, "webhook")
    rule = make_rule(a, trigger, "test_pack.echo", parameters={"message": "{{ trigger.data.m }}"})
    receipt = fire_webhook(a, trigger, {"m": "hello"})
    enforcement = wait_until(lambda: list_all(a, "/api/v1/enforcements",
                                              event_id=receipt["event_id"]), timeout=15)[0]
    execution = wait_for_execution(a, enforcement["execution_id"])
    a.data(a.post("/api/v1/datastore", json={"key": "shared_name", "value": "a-value"}), 201)
    a.data(a.post("/api/v1/secrets", json={"key": "a_secret", "value": "a-secret-value"}), 201)
    return {"a": a, "b": b, "pack": pack, "action": echo, "trigger": trigger, "rule": rule,
            "event_id": receipt["event_id"], "enforcement": enforcement, "execution": execution}


def test_owner_sees_and_executes_its_own_resources(world):
    a = world["a"]
    assert world["execution"]["status"] == "succeeded"
    assert a.get(f"/api/v1/packs/{world['pack']['id']}").status_code == 200
    run = a.data(a.post("/api/v1/executions", json={
        "action": world["action"]["id"], "parameters": {"message": "mine"}}), 201)
    assert wait_for_execution(a, run["id"])["status"] == "succeeded"


def test_other_tenant_lists_are_empty_of_foreign_resources(world):
    b = world["b"]
    packs = list_all(b, "/api/v1/packs")
    assert all(p["tenant_id"] is None for p in packs)  # only system packs such as core
    assert world["pack"]["id"] not in [p["id"] for p in packs]
    for path in ("/api/v1/rules", "/api/v1/events", "/api/v1/enforcements",
                 "/api/v1/executions", "/api/v1/datastore", "/api/v1/secrets",
                 "/api/v1/triggers"):
        assert list_all(b, path) == [], path
    assert all(x["tenant_id"] is None for x in list_all(b, "/api/v1/actions"))
    # Filters naming A's ids do not leak either.
    assert list_all(b, "/api/v1/executions", rule_id=world["rule"]["id"]) == []
    assert list_all(b, "/api/v1/events", trigger_id=world["trigger"]["id"]) == []


def test_guessing_ids_of_another_tenant_gives_404(world):
    b = world["b"]
    paths = [
        f"/api/v1/packs/{world['pack']['id']}",
        f"/api/v1/actions/{world['action']['id']}",
        f"/api/v1/triggers/{world['trigger']['id']}",
        f"/api/v1/rules/{world['rule']['id']}",
        f"/api/v1/events/{world['event_id']}",
        f"/api/v1/enforcements/{world['enforcement']['id']}",
        f"/api/v1/executions/{world['execution']['id']}",
        "/api/v1/datastore/shared_name",
    ]
    for path in paths:
        response = b.get(path)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["error"]["code"] == "not_found"
    executing = b.post("/api/v1/executions", json={"action": world["action"]["id"],
                                                   "parameters": {"message": "steal"}})
    assert executing.status_code == 404
    by_ref = b.post("/api/v1/executions", json={"action": "test_pack.echo",
                                                "parameters": {"message": "steal"}})
    assert by_ref.status_code == 404
    assert b.delete(f"/api/v1/rules/{world['rule']['id']}").status_code == 404
    assert b.patch(f"/api/v1/rules/{world['rule']['id']}",
                   json={"enabled": False}).status_code == 404
    assert b.delete("/api/v1/secrets/a_secret").status_code == 404
    assert b.post(f"/api/v1/executions/{world['execution']['id']}/rerun").status_code == 404
    # Nothing changed for A.
    a = world["a"]
    assert a.data(a.get(f"/api/v1/rules/{world['rule']['id']}"))["enabled"] is True
    assert [s["key"] for s in list_all(a, "/api/v1/secrets")] == ["a_secret"]


def test_sql_injection_strings_are_plain_not_found_or_bad_request(world):
    b, a = world["b"], world["a"]
    for attempt in INJECTIONS:
        for path in (f"/api/v1/executions/{attempt}", f"/api/v1/packs/{attempt}",
                     f"/api/v1/datastore/{attempt}", f"/api/v1/events/{attempt}"):
            response = b.get(path)
            assert response.status_code in (400, 404, 422), (path, response.status_code)
        for param in ("status", "action", "rule_id"):
            response = b.get("/api/v1/executions", params={param: attempt})
            assert response.status_code in (200, 400, 422), (param, response.status_code)
            if response.status_code == 200:
                assert response.json()["data"] == []
    # A's data is intact.
    assert a.data(a.get(f"/api/v1/executions/{world['execution']['id']}"))["status"] == \
        "succeeded"


def _forge(token: str, **changes) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{header}.{body}.{signature}"


def test_manipulated_tokens_are_rejected(world):
    a, b = world["a"], world["b"]
    path = f"/api/v1/executions/{world['execution']['id']}"

    def get_with(token):
        return b.session.get(f"{b.base_url}{path}", timeout=10,
                             headers={"Authorization": f"Bearer {token}"})

    # B rewrites its tenant_id to A's without the key: the signature no longer matches.
    assert get_with(_forge(b.token, tenant_id=a.tenant_id)).status_code == 401
    # A token signed with another key, an unsigned one, an expired one, a refresh token.
    now = int(time.time())
    claims = {"sub": str(b.user["id"]), "tenant_id": a.tenant_id, "role": "admin",
              "type": "access", "iat": now, "exp": now + 60, "jti": "x"}
    assert get_with(jwt.encode(claims, "not-the-secret-" + "z" * 40)).status_code == 401
    unsigned = jwt.encode(claims, key=None, algorithm="none")
    assert get_with(unsigned).status_code == 401
    assert get_with(_forge(b.token, exp=now - 10)).status_code == 401
    assert get_with(b.refresh_token).status_code == 401
    assert get_with("garbage").status_code == 401
