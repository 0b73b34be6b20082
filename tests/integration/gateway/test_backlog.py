"""The backlog bound at the gateway: 429 over the tenant's bound, 503 over the platform's,
accepted under them, and nothing stored for a refused request (docs/reliability.md "Backlog")."""

import copy

import pytest
from sqlalchemy import func, select

from gateway.app import create_app
from nameko_services.domain import models
from nameko_services.domain.backlog import queued_counts
from nameko_services.domain.db import transaction
from tests.support.factories import make_action, make_execution, make_trigger

pytestmark = pytest.mark.integration

TENANT_BOUND = 3


def app_with(config, published, **backlog):
    """An app whose bounds are `backlog` (counts re-read on every request: refresh 0)."""
    cfg = copy.deepcopy(config)
    cfg["ATTUNE"]["backlog"] = {"refresh_seconds": 0, **backlog}
    return create_app(cfg, publish=lambda *args: published.append(args))


@pytest.fixture
def bounded(config, engine, published):
    app = app_with(config, published, tenant_max_queued=TENANT_BOUND,
                   global_max_queued=1_000_000)
    yield app.test_client()
    app.extensions["attune"].dispose()


def hook(client, trigger, n):
    return client.post(f"/api/v1/webhooks/{trigger['id']}", json={"n": n},
                       headers={"X-Attune-Webhook-Token": trigger["webhook_token"]})


def stored_events(engine, trigger) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(models.events)
                            .where(models.events.c.trigger_id == trigger["id"])).scalar_one()


def assert_refused(response, status, scope):
    assert response.status_code == status, response.json
    assert response.headers["Retry-After"] == "2"
    error = response.json["error"]
    assert error["code"] == "backlog_full"
    assert error["details"]["scope"] == scope
    assert error["details"]["retry_after"] == 2
    assert "retry in 2 s" in error["message"]


def test_a_tenant_over_its_bound_gets_429_and_nothing_is_stored(bounded, engine, make_user):
    user, _ = make_user()
    trigger = make_trigger(engine, user["tenant_id"])
    # No executor runs here: every accepted event stays queued (processed_at NULL).
    assert [hook(bounded, trigger, n).status_code for n in range(TENANT_BOUND)] == [202] * 3
    refused = hook(bounded, trigger, 99)
    assert_refused(refused, 429, "tenant")
    assert refused.json["error"]["details"] == {
        "scope": "tenant", "queued": TENANT_BOUND, "limit": TENANT_BOUND, "retry_after": 2}
    assert stored_events(engine, trigger) == TENANT_BOUND

    # Another tenant is under its own bound: accepted.
    other, _ = make_user()
    assert hook(bounded, make_trigger(engine, other["tenant_id"]), 1).status_code == 202

    # Once the executor has evaluated them, the tenant is under its bound again.
    with transaction(engine) as conn:
        conn.execute(models.events.update().where(models.events.c.trigger_id == trigger["id"])
                     .values(processed_at=func.now()))
    assert hook(bounded, trigger, 100).status_code == 202


def test_api_runs_and_reruns_count_and_are_refused_over_the_bound(bounded, engine, make_user,
                                                                  published):
    user, headers = make_user()
    action = make_action(engine, user["tenant_id"], parameters={})
    first = bounded.post("/api/v1/executions", headers=headers, json={"action": action["ref"]})
    assert first.status_code == 201, first.json
    make_execution(engine, user["tenant_id"], action=action, status="scheduled")
    rerun = bounded.post(f"/api/v1/executions/{first.json['data']['id']}/rerun", headers=headers)
    assert rerun.status_code == 201, rerun.json
    # requested + scheduled + requested: at the bound.
    sent = len(published)
    assert_refused(bounded.post("/api/v1/executions", headers=headers,
                                json={"action": action["ref"]}), 429, "tenant")
    assert_refused(bounded.post(f"/api/v1/executions/{first.json['data']['id']}/rerun",
                                headers=headers), 429, "tenant")
    assert len(published) == sent  # a refused request announces nothing
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(models.executions)
                            .where(models.executions.c.tenant_id == user["tenant_id"])
                            ).scalar_one() == 3


def test_over_the_global_bound_every_tenant_gets_503(config, engine, published, make_user):
    with transaction(engine) as conn:
        queued_now = sum(queued_counts(conn).values())
    app = app_with(config, published, tenant_max_queued=1000,
                   global_max_queued=queued_now + 2)
    client = app.test_client()
    try:
        user, _ = make_user()
        trigger = make_trigger(engine, user["tenant_id"])
        assert [hook(client, trigger, n).status_code for n in range(2)] == [202, 202]
        other, headers = make_user()
        assert_refused(hook(client, make_trigger(engine, other["tenant_id"]), 1), 503,
                       "platform")
        action = make_action(engine, other["tenant_id"], parameters={})
        assert_refused(client.post("/api/v1/executions", headers=headers,
                                   json={"action": action["ref"]}), 503, "platform")
    finally:
        app.extensions["attune"].dispose()


def test_the_openapi_document_lists_the_503_of_the_views_that_accept_work(client):
    paths = client.get("/api/v1/openapi.json").json["paths"]
    for path in ("/api/v1/webhooks/{trigger_id}", "/api/v1/executions",
                 "/api/v1/executions/{execution_id}/rerun"):
        assert "503" in paths[path]["post"]["responses"], path
