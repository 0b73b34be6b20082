"""T3.28 audit trail: every lifecycle step of an execution with its actor, queryable by
execution; the database refuses to change it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.support.e2e import wait_for_execution


def parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_an_execution_leaves_a_complete_trail_with_actors(api):
    began = datetime.now(UTC)
    run = api.data(api.post("/api/v1/executions", json={
        "action": "core.echo", "parameters": {"message": "audited"}}), 201)
    done = wait_for_execution(api, run["id"])
    assert done["status"] == "succeeded", done

    entries = api.data(api.get(
        f"/api/v1/audit?entity_type=execution&entity_id={run['id']}"))
    steps = [(e["action"], e["actor_type"]) for e in entries]
    assert steps == [("execution.created", "user"), ("execution.scheduled", "service"),
                     ("execution.started", "worker"), ("execution.succeeded", "worker")]
    created, scheduled, started, finished = entries
    assert created["actor"] == f"user:{api.user['id']}"
    assert scheduled["actor"] == "executor"
    assert started["actor"] == finished["actor"] == done["worker"]
    stamps = [parse(e["timestamp"]) for e in entries]
    assert stamps == sorted(stamps)
    assert began - timedelta(seconds=5) <= stamps[0] and stamps[-1] <= datetime.now(UTC)
    assert all(e["entity_id"] == str(run["id"]) for e in entries)


def test_definition_and_datastore_changes_are_audited(api):
    pack = api.data(api.post("/api/v1/packs", json={"ref": "audit_e2e"}), 201)
    api.data(api.post("/api/v1/datastore", json={"key": "ak", "value": 1}), 201)
    assert api.delete("/api/v1/datastore/ak").status_code == 204
    assert api.delete(f"/api/v1/packs/{pack['id']}").status_code == 204
    me = f"user:{api.user['id']}"
    pack_trail = api.data(api.get(f"/api/v1/audit?entity_type=pack&entity_id={pack['id']}"))
    assert [(e["action"], e["actor"]) for e in pack_trail] == [
        ("pack.created", me), ("pack.deleted", me)]
    data_trail = api.data(api.get("/api/v1/audit?entity_type=datastore&entity_id=ak"))
    assert [e["action"] for e in data_trail] == ["datastore.created", "datastore.deleted"]


@pytest.mark.parametrize("statement", ["UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log"])
def test_the_audit_log_is_immutable(database, statement):
    with pytest.raises(DBAPIError, match="append-only"), database.begin() as conn:
        conn.execute(text(statement))
