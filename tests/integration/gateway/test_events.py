"""GET /api/v1/events, /api/v1/enforcements and /api/v1/audit."""

import pytest

from tests.support.factories import make_enforcement, make_event, make_rule, make_trigger

pytestmark = pytest.mark.integration


@pytest.fixture
def tenant(make_user):
    return make_user()


def test_events_list_newest_first_and_filters_by_trigger(client, engine, tenant):
    user, headers = tenant
    tid = user["tenant_id"]
    t1, t2 = make_trigger(engine, tid), make_trigger(engine, tid)
    first = make_event(engine, tid, trigger=t1)
    second = make_event(engine, tid, trigger=t2)
    third = make_event(engine, tid, trigger=t1)
    r = client.get("/api/v1/events", headers=headers)
    assert r.status_code == 200
    assert [e["id"] for e in r.json["data"]] == [third["id"], second["id"], first["id"]]
    assert r.json["pagination"] == {"total": 3, "limit": 50, "offset": 0, "next_offset": None}
    r = client.get(f"/api/v1/events?trigger_id={t1['id']}", headers=headers)
    assert [e["id"] for e in r.json["data"]] == [third["id"], first["id"]]


def test_events_list_paginates_with_exact_totals(client, engine, tenant):
    user, headers = tenant
    made = [make_event(engine, user["tenant_id"]) for _ in range(5)]
    r = client.get("/api/v1/events?limit=2&offset=2", headers=headers)
    assert [e["id"] for e in r.json["data"]] == [made[2]["id"], made[1]["id"]]
    assert r.json["pagination"] == {"total": 5, "limit": 2, "offset": 2, "next_offset": 4}
    # a page past the end still knows the total (the page's rows carry it otherwise)
    r = client.get("/api/v1/events?limit=2&offset=9", headers=headers)
    assert r.json["data"] == []
    assert r.json["pagination"] == {"total": 5, "limit": 2, "offset": 9, "next_offset": None}


def test_one_event_has_the_api_shape(client, engine, tenant):
    user, headers = tenant
    trigger = make_trigger(engine, user["tenant_id"])
    event = make_event(engine, user["tenant_id"], trigger=trigger, payload={"a": [1]})
    r = client.get(f"/api/v1/events/{event['id']}", headers=headers)
    assert r.status_code == 200
    data = r.json["data"]
    assert {k: data[k] for k in ("id", "trigger_id", "trigger_ref", "source", "payload",
                                  "tenant_id")} == {
        "id": event["id"], "trigger_id": trigger["id"], "trigger_ref": trigger["ref"],
        "source": "webhook", "payload": {"a": [1]}, "tenant_id": user["tenant_id"]}
    assert data["created_at"].endswith("Z")


@pytest.mark.parametrize("path", ["/api/v1/events/99999999", "/api/v1/events/abc"])
def test_missing_event_is_404(client, tenant, path):
    r = client.get(path, headers=tenant[1])
    assert r.status_code == 404 and r.json["error"]["code"] == "not_found"


@pytest.mark.parametrize("query", ["trigger_id=abc", "limit=0", "limit=201", "offset=-1"])
def test_bad_event_query_is_400(client, tenant, query):
    r = client.get(f"/api/v1/events?{query}", headers=tenant[1])
    assert r.status_code == 400 and r.json["error"]["code"] == "bad_request"


def test_events_need_a_token(client):
    assert client.get("/api/v1/events").status_code == 401


def test_enforcements_list_filters_by_rule_and_event(client, engine, tenant):
    user, headers = tenant
    tid = user["tenant_id"]
    rule_a, rule_b = make_rule(engine, tid), make_rule(engine, tid)
    event = make_event(engine, tid)
    e1 = make_enforcement(engine, tid, rule=rule_a, event=event)
    e2 = make_enforcement(engine, tid, rule=rule_b, event=event)
    e3 = make_enforcement(engine, tid, rule=rule_a)
    r = client.get("/api/v1/enforcements", headers=headers)
    assert [e["id"] for e in r.json["data"]] == [e3["id"], e2["id"], e1["id"]]
    r = client.get(f"/api/v1/enforcements?rule_id={rule_a['id']}", headers=headers)
    assert [e["id"] for e in r.json["data"]] == [e3["id"], e1["id"]]
    r = client.get(f"/api/v1/enforcements?rule_id={rule_a['id']}&event_id={event['id']}",
                   headers=headers)
    assert [e["id"] for e in r.json["data"]] == [e1["id"]]
    assert r.json["pagination"]["total"] == 1


def test_one_enforcement_has_the_api_shape(client, engine, tenant):
    user, headers = tenant
    enforcement = make_enforcement(engine, user["tenant_id"])
    r = client.get(f"/api/v1/enforcements/{enforcement['id']}", headers=headers)
    assert r.status_code == 200
    data = r.json["data"]
    assert data["id"] == enforcement["id"] and data["status"] == "created"
    assert data["rule_id"] == enforcement["rule_id"]
    assert data["event_id"] == enforcement["event_id"] and data["execution_id"] is None
    assert client.get("/api/v1/enforcements/99999999", headers=headers).status_code == 404
    assert client.get("/api/v1/enforcements?event_id=x", headers=headers).status_code == 400


def test_audit_lists_the_tenants_entries_oldest_first_by_entity(client, tenant):
    _, headers = tenant
    for value in (1, 2):
        client.post("/api/v1/datastore", headers=headers, json={"key": "audited", "value": value})
    client.delete("/api/v1/datastore/audited", headers=headers)
    r = client.get("/api/v1/audit?entity_type=datastore&entity_id=audited", headers=headers)
    assert r.status_code == 200
    assert [e["action"] for e in r.json["data"]] == [
        "datastore.created", "datastore.updated", "datastore.deleted"]
    assert all(e["actor_type"] == "user" for e in r.json["data"])
    assert r.json["pagination"]["total"] == 3


def test_audit_rejects_overlong_filters(client, tenant):
    r = client.get("/api/v1/audit?entity_type=" + "x" * 60, headers=tenant[1])
    assert r.status_code == 400
