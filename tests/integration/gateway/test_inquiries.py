"""Inquiries API: list, get, respond (schema 422, second answer / expired 409, roles 403)."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from nameko_services.domain import inquiries, messages, models
from tests.support.factories import make_action, make_execution

pytestmark = pytest.mark.integration

SCHEMA = {"type": "object", "properties": {"approved": {"type": "boolean"}},
          "required": ["approved"]}


@pytest.fixture
def tenant(make_user):
    return make_user()


@pytest.fixture
def make_inquiry(engine, tenant):
    """A paused execution and its pending inquiry, in the admin's tenant."""

    def make(**overrides):
        tenant_id = tenant[0]["tenant_id"]
        action = make_action(engine, tenant_id, runner_type="inquiry", code=None, parameters={})
        execution = make_execution(engine, tenant_id, action=action, status="paused",
                                   parameters={})
        values = {"prompt": "Deploy?", "schema": SCHEMA, "ttl_seconds": 600,
                  "default_response": None, "roles": None, **overrides}
        with engine.begin() as conn:
            return inquiries.create(conn, tenant_id=tenant_id, execution_id=execution["id"],
                                    **values)

    return make


def test_listing_filters_by_status_and_getting_one_shows_the_api_shape(
    client, tenant, make_inquiry
):
    _, headers = tenant
    first, second = make_inquiry(), make_inquiry(prompt="Second?")
    r = client.get("/api/v1/inquiries?status=pending", headers=headers)
    assert r.status_code == 200, r.json
    assert [i["id"] for i in r.json["data"]] == [second["id"], first["id"]]
    assert r.json["pagination"]["total"] == 2
    assert client.get("/api/v1/inquiries?status=expired",
                      headers=headers).json["data"] == []
    assert client.get("/api/v1/inquiries?status=nope", headers=headers).status_code == 400

    one = client.get(f"/api/v1/inquiries/{first['id']}", headers=headers).json["data"]
    assert set(one) >= {"id", "execution_id", "prompt", "schema", "status", "ttl_seconds",
                        "expires_at", "default_response", "response", "responded_by",
                        "responded_at", "created_at"}
    assert (one["status"], one["prompt"], one["ttl_seconds"]) == ("pending", "Deploy?", 600)
    assert one["expires_at"].endswith("Z")


def test_answering_validates_against_the_schema_then_stores_and_publishes(
    client, tenant, make_inquiry, published
):
    user, headers = tenant
    inquiry = make_inquiry()
    url = f"/api/v1/inquiries/{inquiry['id']}/respond"

    bad = client.post(url, headers=headers, json={"response": {"approved": "yes"}})
    assert bad.status_code == 422
    assert "response.approved" in bad.json["error"]["details"]["fields"]
    assert client.post(url, headers=headers, json={}).status_code == 422
    assert client.post(url, headers=headers,
                       json={"response": {"approved": True}, "x": 1}).status_code == 422
    assert published == []

    ok = client.post(url, headers=headers, json={"response": {"approved": True}})
    assert ok.status_code == 200, ok.json
    data = ok.json["data"]
    assert (data["status"], data["response"]) == ("responded", {"approved": True})
    assert data["responded_by"] == user["username"] and data["responded_at"]
    assert published == [(messages.GATEWAY, messages.INQUIRY_RESPONDED, {
        "inquiry_id": inquiry["id"], "tenant_id": user["tenant_id"],
        "execution_id": inquiry["execution_id"]})]

    again = client.post(url, headers=headers, json={"response": {"approved": False}})
    assert again.status_code == 409 and again.json["error"]["code"] == "conflict"


def test_an_expired_inquiry_cannot_be_answered(client, tenant, engine, make_inquiry):
    _, headers = tenant
    inquiry = make_inquiry()
    with engine.begin() as conn:  # its TTL passed, the executor's timer has not fired yet
        conn.execute(update(models.inquiries).where(models.inquiries.c.id == inquiry["id"])
                     .values(expires_at=models.inquiries.c.created_at))
    r = client.post(f"/api/v1/inquiries/{inquiry['id']}/respond", headers=headers,
                    json={"response": {"approved": True}})
    assert r.status_code == 409 and "expired" in r.json["error"]["message"]


def test_roles_decide_who_may_answer(client, tenant, make_user, make_inquiry):
    _, admin = tenant
    _, viewer = make_user("viewer", admin)
    _, editor = make_user("editor", admin)
    _, executor = make_user("executor", admin)
    inquiry = make_inquiry(roles=["executor"])
    url = f"/api/v1/inquiries/{inquiry['id']}/respond"
    body = {"response": {"approved": True}}

    assert client.get(url.rsplit("/", 1)[0], headers=viewer).status_code == 200
    assert client.post(url, headers=viewer, json=body).status_code == 403
    denied = client.post(url, headers=editor, json=body)
    assert denied.status_code == 403 and "executor" in denied.json["error"]["message"]
    assert client.post(url, headers=executor, json=body).status_code == 200


def test_another_tenants_inquiry_is_not_found(client, make_user, make_inquiry):
    inquiry = make_inquiry()
    _, stranger = make_user()
    assert client.get(f"/api/v1/inquiries/{inquiry['id']}", headers=stranger).status_code == 404
    r = client.post(f"/api/v1/inquiries/{inquiry['id']}/respond", headers=stranger,
                    json={"response": {"approved": True}})
    assert r.status_code == 404
    assert client.get("/api/v1/inquiries/abc", headers=stranger).status_code == 404
