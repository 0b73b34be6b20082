"""T3.15 — inquiry.created, inquiry.responded and inquiry.expired reach the tenant's clients
with the inquiry's details, and only theirs."""

from __future__ import annotations

from tests.support.e2e import wait_for_execution

SCHEMA = {"type": "object", "required": ["approved"],
          "properties": {"approved": {"type": "boolean"}}}


def inquiry_news(event: str):
    return lambda m: m.get("entity_type") == "inquiry" and m.get("event") == event


def test_creation_and_response_of_an_inquiry_are_notified(api, make_api, make_ws):
    ws = make_ws(api)
    ws.subscribe("inquiry")
    stranger = make_ws(make_api())
    stranger.subscribe("inquiry")

    execution = api.data(api.post("/api/v1/executions", json={
        "action": "core.ask", "parameters": {"prompt": "Deploy?", "schema": SCHEMA}}), 201)
    [created] = ws.collect_until(lambda m: True, timeout=30, keep=inquiry_news("inquiry.created"))
    inquiry = created["data"]["inquiry"]
    assert created["entity_id"] == created["data"]["inquiry_id"] == inquiry["id"]
    assert created["data"]["execution_id"] == execution["id"]
    assert inquiry["prompt"] == "Deploy?" and inquiry["schema"] == SCHEMA
    assert inquiry["status"] == "pending"
    assert api.data(api.get(f"/api/v1/inquiries/{inquiry['id']}"), 200)["status"] == "pending"

    api.data(api.post(f"/api/v1/inquiries/{inquiry['id']}/respond",
                      json={"response": {"approved": True}}), 200)
    [responded] = ws.collect_until(lambda m: True, timeout=30,
                                   keep=inquiry_news("inquiry.responded"))
    assert responded["entity_id"] == inquiry["id"]
    assert responded["data"]["status"] == "responded"
    assert responded["data"]["inquiry"]["response"] == {"approved": True}
    assert wait_for_execution(api, execution["id"])["status"] == "succeeded"
    assert stranger.sync() == []


def test_expiry_is_notified_too(api, make_ws):
    ws = make_ws(api)
    ws.subscribe("inquiry")
    execution = api.data(api.post("/api/v1/executions", json={
        "action": "core.ask", "parameters": {"prompt": "Quick?", "ttl_seconds": 1,
                                              "default": {"approved": False}}}), 201)
    [expired] = ws.collect_until(lambda m: True, timeout=30, keep=inquiry_news("inquiry.expired"))
    assert expired["data"]["execution_id"] == execution["id"]
    assert expired["data"]["status"] == "expired"
    done = wait_for_execution(api, execution["id"])
    assert done["status"] == "succeeded" and done["result"]["output"] == {"approved": False}
