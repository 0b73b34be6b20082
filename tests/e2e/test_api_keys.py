"""API keys and logout on the running platform: a script's key runs an action and watches it
over /ws; a logout is refused at once; a revoked key too (issue 17, item 6)."""

from tests.support.e2e import ApiClient, wait_for_execution


def test_a_key_runs_an_action_and_watches_it_and_is_refused_once_revoked(api, make_ws):
    made = api.data(api.post("/api/v1/apikeys", json={"name": "ci", "role": "executor"}), 201)
    script = ApiClient(api.base_url, made["key"], ws_url=api.ws_url)
    try:
        me = script.data(script.get("/api/v1/me"))
        assert me["id"] == api.user["id"]
        ws = make_ws(script)  # the key authenticates the WebSocket too
        ws.subscribe("execution")
        execution = script.data(script.post("/api/v1/executions", json={
            "action": "core.echo", "parameters": {"message": "from CI"}}), 201)
        done = wait_for_execution(script, execution["id"])
        assert done["status"] == "succeeded"
        ws.collect_until(lambda m: m.get("entity_id") == execution["id"]
                         and m["data"]["status"] == "succeeded", timeout=30)
        # the key's role (executor) is what it may do, whatever its user's (admin)
        denied = script.post("/api/v1/datastore", json={"key": "k", "value": 1})
        assert denied.status_code == 403
        api.data(api.delete(f"/api/v1/apikeys/{made['id']}"))
        refused = script.get("/api/v1/me")
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
        audit = api.data(api.get("/api/v1/audit", params={"entity_type": "execution",
                                                          "entity_id": execution["id"]}))
        assert audit[0]["actor"] == f"user:{api.user['id']}:key:{made['id']}"
    finally:
        script.close()


def test_logout_refuses_the_session_at_once(make_api):
    api = make_api()
    assert api.get("/api/v1/me").status_code == 200
    api.data(api.post("/auth/logout"))
    refused = api.get("/api/v1/me")
    assert refused.status_code == 401 and "revoked" in refused.json()["error"]["message"]
    again = api.post("/auth/refresh", json={"refresh_token": api.refresh_token})
    assert again.status_code == 401
