"""Executions API: request, validation failure, list filters, get, rerun, cancel."""

import pytest
from sqlalchemy import select

from nameko_services.domain import messages, models
from tests.support.factories import make_action, make_execution, make_pack

pytestmark = pytest.mark.integration


@pytest.fixture
def tenant(make_user):
    return make_user()


@pytest.fixture
def action(engine, tenant):
    return make_action(engine, tenant[0]["tenant_id"])


def audit_actions(engine, execution_id) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(
            select(models.audit_log.c.action)
            .where(models.audit_log.c.entity_type == "execution",
                   models.audit_log.c.entity_id == str(execution_id))
            .order_by(models.audit_log.c.id)
        ).scalars())


TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_requesting_by_ref_creates_a_requested_execution_and_publishes_it(
    client, tenant, action, published
):
    user, headers = tenant
    r = client.post("/api/v1/executions", headers=headers,
                    json={"action": action["ref"],
                          "parameters": {"url": "http://x", "token": "s3"}})
    assert r.status_code == 201, r.json
    data = r.json["data"]
    assert data["status"] == "requested" and data["action_ref"] == action["ref"]
    assert data["action_id"] == action["id"] and data["tenant_id"] == user["tenant_id"]
    assert data["parameters"] == {"url": "http://x", "token": "***"}
    (src1, type1, created), (src2, type2, requested) = published
    assert (src1, type1) == (messages.EXECUTIONS, messages.EXECUTION_CREATED)
    assert created["execution_id"] == data["id"] and created["execution"] == data
    assert (src2, type2) == (messages.GATEWAY, messages.EXECUTION_REQUESTED)
    assert requested == {"execution_id": data["id"], "tenant_id": user["tenant_id"],
                         "trace_id": data["trace_id"]}
    assert created["trace_id"] == data["trace_id"]
    # no traceparent: a trace of its own, named by the response's traceparent
    assert len(data["trace_id"]) == 32 and data["trace_id"] != TRACE
    assert r.headers["traceparent"].startswith(f"00-{data['trace_id']}-")


def test_a_run_joins_the_callers_trace_and_is_found_by_it(client, tenant, action):
    _user, headers = tenant
    runs = [client.post("/api/v1/executions", json={"action": action["ref"]}, headers={
        **headers, "traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"}) for _ in range(2)]
    bad = client.post("/api/v1/executions", json={"action": action["ref"]}, headers={
        **headers, "traceparent": f"00-{TRACE}-{'0' * 16}-01"})  # invalid: a new trace
    assert [r.status_code for r in [*runs, bad]] == [201] * 3
    assert {r.json["data"]["trace_id"] for r in runs} == {TRACE}
    assert bad.json["data"]["trace_id"] != TRACE
    assert runs[0].headers["traceparent"].startswith(f"00-{TRACE}-")
    found = client.get(f"/api/v1/executions?trace_id={TRACE.upper()}", headers=headers).json
    assert sorted(e["id"] for e in found["data"]) == sorted(r.json["data"]["id"] for r in runs)
    refused = client.get("/api/v1/executions?trace_id=xyz", headers=headers)
    assert refused.status_code == 400 and "trace_id" in refused.json["error"]["details"]["fields"]


def test_requesting_by_id_works_too(client, tenant, action):
    r = client.post("/api/v1/executions", headers=tenant[1],
                    json={"action": action["id"], "parameters": {"url": "u"}})
    assert r.status_code == 201 and r.json["data"]["action_id"] == action["id"]


def test_a_missing_required_parameter_fails_the_execution_at_once(
    client, engine, tenant, action, published
):
    r = client.post("/api/v1/executions", headers=tenant[1],
                    json={"action": action["ref"], "parameters": {}})
    assert r.status_code == 201
    data = r.json["data"]
    assert data["status"] == "failed" and data["finished_at"]
    assert data["result"]["error"] == {"type": "validation",
                                       "message": "Missing required parameter: url"}
    assert [p[1] for p in published] == [messages.EXECUTION_CREATED]  # never reaches a worker
    assert audit_actions(engine, data["id"]) == ["execution.created", "execution.failed"]


def test_system_actions_are_usable_and_the_execution_is_the_callers(client, engine, tenant):
    user, headers = tenant
    system_action = make_action(engine, None, parameters={})
    r = client.post("/api/v1/executions", headers=headers, json={"action": system_action["ref"]})
    assert r.status_code == 201
    assert r.json["data"]["tenant_id"] == user["tenant_id"]


def test_the_tenants_own_action_wins_over_a_system_action_with_the_same_ref(
    client, engine, tenant
):
    user, headers = tenant
    system_pack = make_pack(engine, None)
    system_action = make_action(engine, None, pack=system_pack, name="dup", parameters={})
    own_pack = make_pack(engine, user["tenant_id"], ref=system_pack["ref"])
    own = make_action(engine, user["tenant_id"], pack=own_pack, name="dup", parameters={})
    assert own["ref"] == system_action["ref"]
    r = client.post("/api/v1/executions", headers=headers, json={"action": own["ref"]})
    assert r.json["data"]["action_id"] == own["id"]


@pytest.mark.parametrize("ref", ["nope.nothing", 99999999, "99999999999999999999999"])
def test_unknown_action_is_404(client, tenant, ref):
    r = client.post("/api/v1/executions", headers=tenant[1], json={"action": ref})
    assert r.status_code == 404 and r.json["error"]["code"] == "not_found"


def test_another_tenants_action_is_404(client, engine, make_user):
    owner, _ = make_user()
    _, stranger = make_user()
    action = make_action(engine, owner["tenant_id"])
    for ref in (action["ref"], action["id"]):
        r = client.post("/api/v1/executions", headers=stranger,
                        json={"action": ref, "parameters": {"url": "x"}})
        assert r.status_code == 404


@pytest.mark.parametrize("body", [
    {"parameters": {}},
    {"action": True},
    {"action": ["a"]},
    {"action": "x.y", "parameters": [1]},
    {"action": "x.y", "extra": 1},
])
def test_malformed_execution_requests_are_422(client, tenant, body):
    r = client.post("/api/v1/executions", headers=tenant[1], json=body)
    assert r.status_code == 422, r.json


def test_malformed_json_is_400(client, tenant):
    r = client.post("/api/v1/executions", headers=tenant[1], data="{x",
                    content_type="application/json")
    assert r.status_code == 400


def test_viewer_cannot_execute(client, make_user, action):
    _, admin = make_user()
    _, viewer = make_user(role="viewer", admin_headers=admin)
    r = client.post("/api/v1/executions", headers=viewer, json={"action": "a.b"})
    assert r.status_code == 403


def test_list_filters_and_orders_newest_first(client, engine, tenant, action):
    user, headers = tenant
    tid = user["tenant_id"]
    parent = make_execution(engine, tid, action=action, status="running")
    child = make_execution(engine, tid, action=action, parent_execution_id=parent["id"],
                           status="succeeded", enforcement_id=77, rule_id=None)
    other = make_execution(engine, tid, status="failed")

    def ids(query):
        r = client.get(f"/api/v1/executions?{query}", headers=headers)
        assert r.status_code == 200, r.json
        return [e["id"] for e in r.json["data"]]

    assert ids("") == [other["id"], child["id"], parent["id"]]
    assert ids("status=running") == [parent["id"]]
    assert ids("status=running,failed") == [other["id"], parent["id"]]
    assert ids(f"action={action['ref']}") == [child["id"], parent["id"]]
    assert ids(f"parent_execution_id={parent['id']}") == [child["id"]]
    assert ids("enforcement_id=77") == [child["id"]]
    assert ids("top_level=true") == [other["id"], parent["id"]]
    assert ids("top_level=false") == [child["id"]]
    r = client.get("/api/v1/executions?limit=1&offset=1", headers=headers)
    assert r.json["pagination"] == {"total": 3, "limit": 1, "offset": 1, "next_offset": 2}


@pytest.mark.parametrize("query", ["status=bogus", "rule_id=x", "top_level=maybe",
                                   "parent_execution_id=1%20OR%201=1", "limit=1000"])
def test_bad_list_queries_are_400(client, tenant, query):
    r = client.get(f"/api/v1/executions?{query}", headers=tenant[1])
    assert r.status_code == 400


def test_get_one_and_missing_is_404(client, engine, tenant):
    user, headers = tenant
    execution = make_execution(engine, user["tenant_id"])
    r = client.get(f"/api/v1/executions/{execution['id']}", headers=headers)
    assert r.status_code == 200 and r.json["data"]["id"] == execution["id"]
    r = client.get("/api/v1/executions/99999999", headers=headers)
    assert r.status_code == 404
    assert r.json["error"]["message"] == "Execution 99999999 not found"


def test_rerun_makes_a_new_execution_with_the_same_action_and_parameters(
    client, engine, tenant, action, published
):
    user, headers = tenant
    original = make_execution(engine, user["tenant_id"], action=action, status="failed",
                              parameters={"url": "http://again", "token": "t"},
                              secret_parameters=["token"])
    r = client.post(f"/api/v1/executions/{original['id']}/rerun", headers=headers)
    assert r.status_code == 201
    data = r.json["data"]
    assert data["id"] != original["id"] and data["rerun_of"] == original["id"]
    assert data["action_id"] == action["id"] and data["status"] == "requested"
    with engine.connect() as conn:
        stored = conn.execute(select(models.executions.c.parameters)
                              .where(models.executions.c.id == data["id"])).scalar_one()
    assert stored == {"url": "http://again", "token": "t"}
    assert [p[1] for p in published] == [messages.EXECUTION_CREATED,
                                         messages.EXECUTION_REQUESTED]


def test_rerun_of_missing_execution_is_404_and_of_a_deleted_action_409(client, engine, tenant):
    user, headers = tenant
    assert client.post("/api/v1/executions/99999999/rerun", headers=headers).status_code == 404
    orphan = make_execution(engine, user["tenant_id"], action_id=None)
    r = client.post(f"/api/v1/executions/{orphan['id']}/rerun", headers=headers)
    assert r.status_code == 409


@pytest.mark.parametrize("status", ["requested", "scheduled", "paused"])
def test_cancel_before_running_cancels_at_once(client, engine, tenant, published, status):
    user, headers = tenant
    execution = make_execution(engine, user["tenant_id"], status=status)
    r = client.post(f"/api/v1/executions/{execution['id']}/cancel", headers=headers)
    assert r.status_code == 202
    data = r.json["data"]
    assert data["status"] == "canceled" and data["finished_at"]
    assert data["result"]["error"]["type"] == "canceled"
    [(source, event_type, payload)] = published
    assert (source, event_type) == (messages.EXECUTIONS, messages.EXECUTION_STATUS_CHANGED)
    assert payload["status"] == "canceled" and payload["previous"] == status
    assert audit_actions(engine, execution["id"]) == ["execution.canceled"]


def test_cancel_of_a_running_execution_asks_the_worker(client, engine, tenant, published):
    user, headers = tenant
    execution = make_execution(engine, user["tenant_id"], status="running")
    r = client.post(f"/api/v1/executions/{execution['id']}/cancel", headers=headers)
    assert r.status_code == 202 and r.json["data"]["status"] == "canceling"
    assert [(p[0], p[1]) for p in published] == [
        (messages.EXECUTIONS, messages.EXECUTION_STATUS_CHANGED),
        (messages.GATEWAY, messages.EXECUTION_CANCEL_REQUESTED),
    ]
    assert published[0][2]["previous"] == "running"
    assert published[1][2]["execution_id"] == execution["id"]
    again = client.post(f"/api/v1/executions/{execution['id']}/cancel", headers=headers)
    assert again.status_code == 202 and again.json["data"]["status"] == "canceling"


@pytest.mark.parametrize("status", ["succeeded", "failed", "canceled", "succeeded_with_errors"])
def test_cancel_of_a_finished_execution_is_409(client, engine, tenant, published, status):
    user, headers = tenant
    execution = make_execution(engine, user["tenant_id"], status=status)
    r = client.post(f"/api/v1/executions/{execution['id']}/cancel", headers=headers)
    assert r.status_code == 409 and r.json["error"]["code"] == "conflict"
    assert published == []


def test_cancel_of_missing_execution_is_404(client, tenant):
    assert client.post("/api/v1/executions/99999999/cancel", headers=tenant[1]).status_code == 404


def test_execution_tokens_cannot_request_executions(client, engine, tenant, settings, action):
    from nameko_services.domain.auth import issue_token

    user, _ = tenant
    token = issue_token(settings.jwt_secret, user_id=user["id"], tenant_id=user["tenant_id"],
                        role="admin", token_type="execution", ttl_seconds=60, execution_id=1)
    r = client.post("/api/v1/executions", headers={"Authorization": f"Bearer {token}"},
                    json={"action": action["ref"], "parameters": {"url": "x"}})
    assert r.status_code == 401
