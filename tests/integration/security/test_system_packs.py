"""T3.11 system packs: visible and runnable by every tenant, changed by none; tenant packs stay
isolated; one ref may exist in two tenants."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from nameko_services.domain import models
from tests.support.factories import make_action, make_pack, make_trigger, unique

pytestmark = pytest.mark.integration


@pytest.fixture
def system(engine):
    pack = make_pack(engine, None, ref=unique("sys"))
    action = make_action(engine, None, pack=pack, name="probe", parameters={})
    return {"pack": pack, "action": action}


@pytest.fixture
def tenants(make_user):
    return make_user()[1], make_user()[1]


def refs(client, path, headers):
    response = client.get(f"{path}?limit=200", headers=headers)
    assert response.status_code == 200
    return {item["ref"] for item in response.json["data"]}


def test_every_tenant_sees_the_system_pack_and_its_actions(client, system, tenants):
    for headers in tenants:
        assert system["pack"]["ref"] in refs(client, "/api/v1/packs", headers)
        assert system["action"]["ref"] in refs(client, "/api/v1/actions", headers)
        shown = client.get(f"/api/v1/packs/{system['pack']['id']}", headers=headers).json["data"]
        assert shown["system"] is True and shown["tenant_id"] is None
        assert shown["actions"] == [system["action"]["ref"]]


def test_every_tenant_runs_the_same_system_action(client, system, tenants):
    runs = []
    for headers in tenants:
        response = client.post("/api/v1/executions", headers=headers,
                               json={"action": system["action"]["ref"]})
        assert response.status_code == 201, response.json
        runs.append(response.json["data"])
    assert {r["status"] for r in runs} == {"requested"}
    # One action row (one pack folder, one environment) serves both tenants...
    assert {r["action_id"] for r in runs} == {system["action"]["id"]}
    # ...while each execution belongs to its own tenant.
    assert runs[0]["tenant_id"] != runs[1]["tenant_id"]


def test_no_tenant_may_change_or_delete_a_system_pack_or_its_contents(
    client, engine, system, tenants
):
    headers = tenants[0]
    pack_id, action_id = system["pack"]["id"], system["action"]["id"]
    attempts = [
        client.delete(f"/api/v1/packs/{pack_id}", headers=headers),
        client.post(f"/api/v1/packs/{pack_id}/reload", headers=headers, json={}),
        client.patch(f"/api/v1/actions/{action_id}", headers=headers,
                     json={"description": "mine now"}),
        client.delete(f"/api/v1/actions/{action_id}", headers=headers),
        client.post("/api/v1/actions", headers=headers,
                    json={"pack": system["pack"]["ref"], "name": "intruder",
                          "runner_type": "python", "code": "def run():\n    return 1\n"}),
    ]
    for response in attempts:
        assert response.status_code == 403, response.json
        assert response.json["error"]["code"] == "forbidden"
        assert "system" in response.json["error"]["message"]
    with engine.connect() as conn:
        row = conn.execute(select(models.actions).where(models.actions.c.id == action_id)
                           ).mappings().one()
        count = conn.execute(select(func.count()).select_from(models.actions)
                             .where(models.actions.c.pack_id == pack_id)).scalar_one()
    assert row["description"] == "" and count == 1


def test_a_system_trigger_cannot_be_deleted_by_a_tenant(client, engine, tenants):
    trigger = make_trigger(engine, None, type="interval")
    response = client.delete(f"/api/v1/triggers/{trigger['id']}", headers=tenants[0])
    assert response.status_code == 403
    with engine.connect() as conn:
        assert conn.execute(select(models.triggers.c.id)
                            .where(models.triggers.c.id == trigger["id"])).first()


def test_tenant_packs_stay_isolated_and_one_ref_may_exist_in_two_tenants(client, tenants):
    a, b = tenants
    ref = unique("shared").lower()
    made = [client.post("/api/v1/packs", headers=h, json={"ref": ref}) for h in (a, b)]
    assert [r.status_code for r in made] == [201, 201], [r.json for r in made]
    pack_a, pack_b = (r.json["data"] for r in made)
    assert pack_a["id"] != pack_b["id"] and pack_a["system"] is False
    assert client.get(f"/api/v1/packs/{pack_a['id']}", headers=b).status_code == 404
    assert client.delete(f"/api/v1/packs/{pack_a['id']}", headers=b).status_code == 404
    listed_b = client.get("/api/v1/packs?limit=200", headers=b).json["data"]
    assert pack_a["id"] not in {p["id"] for p in listed_b}
    assert pack_b["id"] in {p["id"] for p in listed_b}
    assert client.get(f"/api/v1/packs/{pack_a['id']}", headers=a).status_code == 200

