"""Searching executions and events: time range, pack, trigger and JSON containment filters
(issue 20, item 3), against the real database through the API."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from tests.support.factories import (
    make_action,
    make_event,
    make_execution,
    make_pack,
    make_rule,
    make_trigger,
)

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def world(engine, make_user):
    """Executions of two packs, made by rules of two triggers, at known times, with known
    parameters (one secret) and results; events with known payloads."""
    user, headers = make_user()
    tid = user["tenant_id"]
    deploy_pack = make_pack(engine, tid, ref="deploy")
    other_pack = make_pack(engine, tid, ref="deployx")  # a ref that shares the prefix
    ship = make_action(engine, tid, pack=deploy_pack, name="ship")
    probe = make_action(engine, tid, pack=other_pack, name="probe")
    hook = make_trigger(engine, tid, ref="custom.hook")
    tick = make_trigger(engine, tid, ref="custom.tick")
    by_hook = make_rule(engine, tid, trigger=hook, action=ship)
    by_tick = make_rule(engine, tid, trigger=tick, action=probe)
    made = {}
    for name, action, rule, minutes, params, result in (
        ("web1", ship, by_hook, 0, {"url": "http://web1", "host": "web1"},
         {"output": {"changed": True}}),
        ("web2", ship, by_hook, 10, {"url": "http://web2", "host": "web2"},
         {"output": {"changed": False}}),
        ("db1", probe, by_tick, 20, {"url": "http://db1", "host": "db1", "token": "hunter2"},
         {"output": {"changed": True}}),
    ):
        made[name] = make_execution(engine, tid, action=action, rule_id=rule["id"],
                                    status="succeeded", parameters=params, result=result,
                                    secret_parameters=["token"],
                                    created_at=T0 + timedelta(minutes=minutes))
    events = [make_event(engine, tid, trigger=hook, payload={"repo": "attune", "n": n},
                         created_at=T0 + timedelta(minutes=n)) for n in (1, 2)]
    events.append(make_event(engine, tid, trigger=tick, payload={"repo": "other"},
                             created_at=T0 + timedelta(minutes=3)))
    return {"headers": headers, "executions": made, "events": events, "hook": hook}


def ids(client, path, headers, **params):
    r = client.get(path, headers=headers, query_string=params)
    assert r.status_code == 200, r.json
    assert r.json["pagination"]["total"] == len(r.json["data"])
    return [item["id"] for item in r.json["data"]]


def test_executions_by_time_range_pack_and_trigger(client, world):
    e, h = world["executions"], world["headers"]
    path = "/api/v1/executions"
    assert ids(client, path, h, since=(T0 + timedelta(minutes=5)).isoformat()) == [
        e["db1"]["id"], e["web2"]["id"]]
    assert ids(client, path, h, since="2026-03-01T12:00:00Z", until="2026-03-01T12:10:00Z") == [
        e["web1"]["id"]]  # until is exclusive
    assert ids(client, path, h, until="2026-03-01T12:10:00.001") == [  # no offset: UTC
        e["web2"]["id"], e["web1"]["id"]]
    assert ids(client, path, h, pack="deploy") == [e["web2"]["id"], e["web1"]["id"]]
    assert ids(client, path, h, pack="deployx") == [e["db1"]["id"]]
    assert ids(client, path, h, pack="deplo") == []
    assert ids(client, path, h, trigger="custom.tick") == [e["db1"]["id"]]
    assert ids(client, path, h, trigger=str(world["hook"]["id"])) == [
        e["web2"]["id"], e["web1"]["id"]]


def test_executions_by_parameters_and_result_containment(client, world):
    e, h = world["executions"], world["headers"]
    path = "/api/v1/executions"
    assert ids(client, path, h, parameters=json.dumps({"host": "web1"})) == [e["web1"]["id"]]
    assert ids(client, path, h, result=json.dumps({"output": {"changed": True}})) == [
        e["db1"]["id"], e["web1"]["id"]]
    assert ids(client, path, h, result=json.dumps({"output": {"changed": True}}),
               pack="deploy") == [e["web1"]["id"]]
    assert ids(client, path, h, parameters=json.dumps({"host": "nowhere"})) == []


def test_a_secret_parameter_is_never_a_search_oracle(client, world):
    h = world["headers"]
    for guess in ("hunter2", "wrong"):
        found = ids(client, "/api/v1/executions", h,
                    parameters=json.dumps({"token": guess}))
        assert found == []
    # the same search with the secret name beside a public one finds nothing either
    assert ids(client, "/api/v1/executions", h,
               parameters=json.dumps({"host": "db1", "token": "hunter2"})) == []


def test_events_by_time_trigger_and_payload(client, world):
    ev, h = world["events"], world["headers"]
    path = "/api/v1/events"
    assert ids(client, path, h, payload=json.dumps({"repo": "attune"})) == [
        ev[1]["id"], ev[0]["id"]]
    assert ids(client, path, h, trigger="custom.tick") == [ev[2]["id"]]
    assert ids(client, path, h, since="2026-03-01T12:02:00+00:00") == [ev[2]["id"], ev[1]["id"]]


def test_other_tenants_see_nothing_of_it(client, world, make_user):
    _, stranger = make_user()
    for path, params in (("/api/v1/executions", {"pack": "deploy"}),
                         ("/api/v1/executions", {"parameters": '{"host": "web1"}'}),
                         ("/api/v1/executions", {"trigger": "custom.tick"}),
                         ("/api/v1/events", {"payload": '{"repo": "attune"}'})):
        assert ids(client, path, stranger, **params) == []


@pytest.mark.parametrize(("params", "field"), [
    ({"since": "yesterday"}, "since"),
    ({"until": "2026-13-01T00:00:00Z"}, "until"),
    ({"since": "2026-03-02T00:00:00Z", "until": "2026-03-01T00:00:00Z"}, "since"),
    ({"parameters": "host=web1"}, "parameters"),
    ({"parameters": "[1, 2]"}, "parameters"),
    ({"parameters": "{}"}, "parameters"),
    ({"result": '{"a": "\\u0000"}'}, "result"),
    ({"result": '{"a": NaN}'}, "result"),
])
def test_bad_filters_are_400_naming_the_parameter(client, world, params, field):
    r = client.get("/api/v1/executions", headers=world["headers"], query_string=params)
    assert r.status_code == 400, r.json
    assert list(r.json["error"]["details"]["fields"]) == [field]


def test_containment_searches_use_the_gin_indexes(engine, world):
    """EXPLAIN of the statements the filters build, on a table the planner sees as large."""
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        for table, column in (("executions", "parameters"), ("executions", "result"),
                              ("events", "payload")):
            plan = "\n".join(conn.execute(text(
                f"EXPLAIN SELECT id FROM {table} WHERE {column} @> '{{\"a\": 1}}'::jsonb"
            )).scalars())
            assert f"ix_{table}_{column}" in plan, plan
