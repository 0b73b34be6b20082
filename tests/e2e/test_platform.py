"""The platform as a whole: health, OpenAPI, service logs and live notifications over /ws."""

from __future__ import annotations

import pytest
import requests

from tests.support.e2e import SERVICE_NAMES, service_log_errors, wait_for_execution

pytestmark = pytest.mark.e2e

# `supervisor`: the processes `attune up` started all run (docs/deploy.md "One host").
CHECKS = {"database", "broker", "executor", "worker", "sensor", "notifier", "supervisor"}


def test_health_is_green_for_every_check(platform):
    response = requests.get(f"{platform.api_url}/health", timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"] == dict.fromkeys(CHECKS, "ok")


def test_openapi_document_is_served_without_a_token(platform):
    response = requests.get(f"{platform.api_url}/api/v1/openapi.json", timeout=10)
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.0")
    for path in ("/health", "/ws", "/auth/register", "/api/v1/executions"):
        assert path in document["paths"], path
    assert document["paths"]["/api/v1/executions"]["post"]["x-attune-permission"] == "execute"


def test_every_service_writes_its_own_log_without_errors(platform):
    for name in SERVICE_NAMES:
        log = platform.log(name)
        assert log.is_file() and log.stat().st_size > 0, f"{log} missing or empty"
    assert service_log_errors(platform.run_dir) == []


def test_execution_news_reaches_the_tenants_websocket_in_order(platform, make_api, make_ws):
    owner, stranger = make_api(), make_api()
    feed, other_feed = make_ws(owner), make_ws(stranger)
    feed.subscribe("execution")
    other_feed.subscribe("execution")

    created = owner.data(owner.post("/api/v1/executions", json={
        "action": "core.echo", "parameters": {"message": "hello over the socket"}}), 201)
    execution_id = created["id"]

    news = feed.collect_until(
        lambda m: m["data"]["status"] in ("succeeded", "failed", "canceled"),
        timeout=60, keep=lambda m: m.get("entity_id") == execution_id)
    assert news[0]["event"] == "execution.created"
    assert [m["event"] for m in news[1:]] == ["execution.status_changed"] * (len(news) - 1)
    statuses = [m["data"]["status"] for m in news]
    assert statuses == ["requested", "scheduled", "running", "succeeded"], statuses
    for previous, message in zip(statuses, news[1:], strict=False):
        assert message["data"]["previous"] == previous
    last = news[-1]
    assert last["entity_type"] == "execution"
    assert last["data"]["action_ref"] == "core.echo"
    assert last["data"]["execution_id"] == execution_id
    assert last["data"]["execution"]["id"] == execution_id
    assert last["data"]["execution"]["status"] == "succeeded"
    assert last["timestamp"].endswith("Z")

    assert wait_for_execution(owner, execution_id)["status"] == "succeeded"
    strays = [m for m in other_feed.sync() if m.get("entity_id") == execution_id]
    assert strays == [], "another tenant saw this execution"


def test_websocket_closes_4401_on_a_bad_token(platform, make_ws, api):
    api.token = "not-a-token"
    assert make_ws(api, header_auth=False).close_code() == 4401
