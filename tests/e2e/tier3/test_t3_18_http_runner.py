"""T3.18 — an http action sends its templated request (secret header, params body) and the
response's status, headers and body become the result; HTTP errors and timeouts fail clearly."""

from __future__ import annotations

import uuid

from tests.support.e2e import unique_name
from tests.support.pack_envs import execute, recording_server


def make_http_action(api, pack: str, name: str, http_config: dict, **fields) -> dict:
    created = api.post("/api/v1/packs", json={"ref": pack, "version": "1.0.0"})
    assert created.status_code in (201, 409), created.text
    body = {"pack": pack, "name": name, "runner_type": "http", "http_config": http_config,
            **fields}
    return api.data(api.post("/api/v1/actions", json=body), 201)


def test_an_http_action_posts_its_templated_request_and_records_the_response(api):
    token = f"tok-{uuid.uuid4().hex}"
    api.data(api.post("/api/v1/secrets", json={"key": "api_token", "value": token}), 201)
    pack = unique_name("http").replace("-", "_")
    with recording_server() as server:
        server.routes["/users"] = (201, {"id": 42, "created": True}, 0.0)
        action = make_http_action(api, pack, "api_call", {
            "method": "POST",
            "url": f"{server.url}/users",
            "headers": {"Content-Type": "application/json",
                        "Authorization": "Bearer {{ secret.api_token }}"},
            "body": "{{ params | tojson }}",
        }, secrets=["api_token"], parameters={
            "name": {"type": "string", "required": True},
            "email": {"type": "string", "required": True}})
        run = execute(api, action["ref"], {"name": "Ada", "email": "ada@example.com"})
        assert run["status"] == "succeeded", run["result"]
        sent = server.received[-1]

    assert (sent.method, sent.path) == ("POST", "/users")
    assert sent.headers["Authorization"] == f"Bearer {token}"
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.json() == {"name": "Ada", "email": "ada@example.com"}
    result = run["result"]
    assert result["status_code"] == 201
    assert result["headers"]["X-Served-By"] == "attune-tests"
    assert result["output"] == {"id": 42, "created": True}
    assert result["error"] is None and result["duration_ms"] >= 0
    assert token not in str(run)  # the secret never comes back


def test_http_errors_and_timeouts_fail_the_execution_clearly(api):
    pack = unique_name("http").replace("-", "_")
    with recording_server() as server:
        server.routes["/broken"] = (500, {"error": "boom"}, 0.0)
        server.routes["/slow"] = (200, {"late": True}, 5.0)
        broken = make_http_action(api, pack, "broken", {"url": f"{server.url}/broken"})
        slow = make_http_action(api, pack, "slow", {"url": f"{server.url}/slow", "timeout": 1})
        failed = execute(api, broken["ref"])
        timed_out = execute(api, slow["ref"])
    refused = make_http_action(api, pack, "refused", {"url": "http://127.0.0.1:9/nothing"})
    unreachable = execute(api, refused["ref"])

    assert failed["status"] == "failed"
    assert failed["result"]["status_code"] == 500
    assert failed["result"]["output"] == {"error": "boom"}  # the body is kept
    assert failed["result"]["error"]["type"] == "http_status"
    assert "HTTP 500" in failed["result"]["error"]["message"]

    assert timed_out["status"] == "failed"
    assert timed_out["result"]["error"]["type"] == "timeout"

    assert unreachable["status"] == "failed"
    assert unreachable["result"]["error"]["type"] == "connection_error"
