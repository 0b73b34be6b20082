"""T3.14 — a WebSocket client sees every transition of an execution, in order, with the full
execution object, and only its own tenant's news; auth and the command protocol per api.md."""

from __future__ import annotations

from tests.support.e2e import NotificationSocket, wait_for_execution
from tests.support.flows import ts

EXECUTION_FIELDS = {
    "id", "action_id", "action_ref", "status", "parameters", "result", "parent_execution_id",
    "task_name", "item_index", "attempt", "max_attempts", "rule_id", "event_id",
    "enforcement_id", "rerun_of", "worker", "tenant_id", "created_at", "scheduled_at",
    "started_at", "finished_at",
}


def about(execution_id: int):
    return lambda m: m.get("entity_type") == "execution" and m.get("entity_id") == execution_id


def test_every_transition_arrives_in_order_with_the_full_execution(api, make_api, make_ws):
    ws = make_ws(api)
    ws.subscribe("execution")
    stranger = make_ws(make_api())  # another tenant, subscribed to everything it may see
    stranger.subscribe("execution")

    created = api.data(api.post("/api/v1/executions", json={
        "action": "core.echo", "parameters": {"message": "hello ws"}}), 201)
    messages = ws.collect_until(
        lambda m: m["data"]["status"] in ("succeeded", "failed"), timeout=60,
        keep=about(created["id"]))

    assert [m["event"] for m in messages] == (
        ["execution.created"] + ["execution.status_changed"] * (len(messages) - 1))
    assert [m["data"]["status"] for m in messages] == [
        "requested", "scheduled", "running", "succeeded"]
    assert [m["data"].get("previous") for m in messages[1:]] == [
        "requested", "scheduled", "running"]
    for message in messages:
        assert message["entity_id"] == created["id"]
        assert message["data"]["execution_id"] == created["id"]
        assert message["data"]["action_ref"] == "core.echo"
        execution = message["data"]["execution"]
        assert set(execution) >= EXECUTION_FIELDS, EXECUTION_FIELDS - set(execution)
        assert execution["status"] == message["data"]["status"]
        assert execution["tenant_id"] == api.tenant_id
        ts(message["timestamp"])  # RFC 3339
    final = messages[-1]["data"]["execution"]
    served = wait_for_execution(api, created["id"])  # the same object the API serves
    assert {k: final[k] for k in EXECUTION_FIELDS} == {k: served[k] for k in EXECUTION_FIELDS}
    assert final["result"]["output"] == "hello ws"

    assert stranger.sync() == []  # nothing of another tenant, ever


def test_subscriptions_by_id_unsubscribe_ping_and_first_message_auth(api, make_ws, platform):
    ws = make_ws(api, header_auth=False)  # browser style: {"action": "auth", "token"} first
    ws.send({"action": "ping"})
    assert ws.recv() == {"event": "pong"}
    first = api.data(api.post("/api/v1/executions", json={
        "action": "core.noop", "parameters": {}}), 201)
    ws.subscribe("execution", first["id"])
    other = api.data(api.post("/api/v1/executions", json={
        "action": "core.noop", "parameters": {}}), 201)
    wait_for_execution(api, other["id"])
    wait_for_execution(api, first["id"])
    received = ws.sync()
    assert received, "the subscribed execution's news"
    assert {m["entity_id"] for m in received} == {first["id"]}

    ws.send({"action": "unsubscribe", "entity_type": "execution", "entity_id": first["id"]})
    ws.sync()
    third = api.data(api.post("/api/v1/executions", json={"action": "core.noop"}), 201)
    wait_for_execution(api, third["id"])
    assert ws.sync() == []

    ws.send({"action": "subscribe", "entity_type": "nonsense"})
    assert ws.recv()["event"] == "error"

    anonymous = NotificationSocket.connect(platform.ws_url, None)
    try:
        anonymous.send({"action": "subscribe", "entity_type": "execution"})
        assert anonymous.close_code() == 4401
    finally:
        anonymous.close()
    bad = NotificationSocket.connect(platform.ws_url, "not-a-token")
    try:
        assert bad.close_code() == 4401
    finally:
        bad.close()
