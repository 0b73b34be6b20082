"""Execution triggers (type `execution`): an event when a matching execution of the tenant ends,
with a real executor and worker. Rules on it run like any other; loop protection covers them."""

from __future__ import annotations

import json
import re

import pytest
from nameko.testing.services import entrypoint_waiter

from nameko_services.domain import executions, messages, models
from tests.integration import rows

pytestmark = pytest.mark.integration

E = models
ECHO = """
def run(**kw):
    return kw
"""
FAIL = """
def run(**kw):
    raise RuntimeError("deploy failed on purpose")
"""
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def execution_trigger(flow, **parameters):
    return rows.make_trigger(flow.engine, flow.tenant, type="execution", parameters=parameters)


def events_of(flow, trigger):
    return rows.rows(flow.engine, E.events, E.events.c.trigger_id == trigger["id"])


def events_caused_by(flow, execution_id):
    return rows.rows(flow.engine, E.events, E.events.c.caused_by_execution_id == execution_id)


def runs_of(flow, rule):
    return rows.rows(flow.engine, E.executions, E.executions.c.rule_id == rule["id"])


def finished_run_of(flow, rule):
    """The rule's one execution, once it is terminal."""
    return rows.wait_until(
        lambda: (found := runs_of(flow, rule)) and flow.get(found[0]["id"])["status"] in
        ("succeeded", "failed") and flow.get(found[0]["id"]), 60)


def test_a_failed_execution_fires_one_event_and_a_rule_on_it_runs_with_the_payload(flow):
    deploy = flow.action(code=FAIL)
    notify = flow.action(code=ECHO, parameters={"message": {"type": "string"}})
    trigger = execution_trigger(flow, action=deploy["ref"], status=["failed"])
    rule = rows.make_rule(flow.engine, flow.tenant, trigger, notify, parameters={
        "message": "{{ trigger.data.action_ref }} #{{ trigger.data.execution_id }} "
                   "{{ trigger.data.status }}"})

    failed = flow.wait(flow.run(deploy)["id"])
    ran = finished_run_of(flow, rule)

    assert failed["status"] == "failed"
    [event] = events_of(flow, trigger)
    assert (event["source"], event["caused_by_execution_id"]) == ("execution", failed["id"])
    assert event["chain_depth"] == 1 and event["error"] is None
    payload = event["payload"]
    assert {k: payload[k] for k in ("execution_id", "action_ref", "status",
                                    "parent_execution_id")} == {
        "execution_id": failed["id"], "action_ref": deploy["ref"], "status": "failed",
        "parent_execution_id": None}
    assert "deploy failed on purpose" in payload["result"]["error"]["message"]
    assert ISO.match(payload["started_at"]) and ISO.match(payload["finished_at"])
    assert payload["finished_at"] == executions.to_api(failed)["finished_at"]
    assert ran["status"] == "succeeded", ran["result"]
    assert ran["event_id"] == event["id"]
    assert ran["parameters"] == {"message": f"{deploy['ref']} #{failed['id']} failed"}
    assert payload["trace_id"] == failed["trace_id"] == event["trace_id"] is not None
    # The rule's own run ended too, but it matches no filter: still one event.
    assert events_of(flow, trigger) == [event]
    announced = {"event_id": event["id"], "tenant_id": flow.tenant}  # for the notifier
    rows.wait_until(lambda: announced in flow.news(messages.EVENT_CREATED), 30)


def test_other_statuses_actions_packs_and_tenants_fire_nothing(flow):
    watched = flow.action(code=FAIL)
    other_pack_action = rows.make_action(flow.engine, flow.tenant, code=FAIL)
    notify = flow.action(code=ECHO)
    by_status = execution_trigger(flow, status=["succeeded"])
    by_action = execution_trigger(flow, action=watched["ref"])
    by_pack = execution_trigger(flow, pack=flow.pack["ref"], status=["failed"])
    for trigger in (by_status, by_action, by_pack):
        rows.make_rule(flow.engine, flow.tenant, trigger, notify,
                       criteria=f"{{{{ trigger.data.action_ref != '{notify['ref']}' }}}}")
    stranger = rows.make_tenant(flow.engine)
    try:
        theirs = rows.make_action(flow.engine, stranger, code=FAIL)
        with flow.engine.begin() as conn:
            their_run = executions.create(conn, tenant_id=stranger, action=theirs,
                                          parameters={}, actor_type="user", actor="test")
        flow.dispatch(messages.GATEWAY, messages.EXECUTION_REQUESTED,
                      {"execution_id": their_run["id"], "tenant_id": stranger})
        other = flow.wait(flow.run(other_pack_action)["id"])
        failed = flow.wait(flow.run(watched)["id"])
        flow.wait(their_run["id"])
        # The failed run in the watched pack fires by_action and by_pack, never by_status.
        rows.wait_until(lambda: len(events_caused_by(flow, failed["id"])) == 2, 30)
        fired = {e["trigger_id"] for e in events_caused_by(flow, failed["id"])}
        assert fired == {by_action["id"], by_pack["id"]}
        assert other["status"] == "failed" and events_caused_by(flow, other["id"]) == []
        assert events_caused_by(flow, their_run["id"]) == []
        # Every notify run succeeded: each fires by_status, whose rule ignores it.
        notified = rows.wait_until(lambda: [
            r for r in rows.rows(flow.engine, E.executions, E.executions.c.action_id ==
                                 notify["id"]) if r["status"] == "succeeded"], 60)
        assert all(e["trigger_id"] == by_status["id"]
                   for r in notified for e in events_caused_by(flow, r["id"]))
    finally:
        rows.delete_tenant(flow.engine, stranger)


def test_a_rule_whose_action_ends_fires_itself_again_stops_at_the_chain_depth_limit(
    flow, config
):
    limit = int(config["ATTUNE"].get("max_chain_depth", 10))
    echo = flow.action(code=ECHO)
    trigger = execution_trigger(flow, action=echo["ref"])
    rule = rows.make_rule(flow.engine, flow.tenant, trigger, echo)

    flow.wait(flow.run(echo)["id"])

    refused = rows.wait_until(
        lambda: [e for e in events_of(flow, trigger) if e["error"]], 120)
    assert [e["chain_depth"] for e in refused] == [limit + 1]
    assert "exceeds the limit" in refused[0]["error"]
    fired = events_of(flow, trigger)
    assert [e["chain_depth"] for e in fired] == list(range(1, limit + 2))
    assert len(runs_of(flow, rule)) == limit


def test_a_workflow_childs_end_carries_its_parent_and_its_result_is_masked(flow):
    secret = flow.action(code=ECHO, parameters={"password": {"type": "string",
                                                             "secret": True}})
    trigger = execution_trigger(flow, action=secret["ref"])
    rows.make_rule(flow.engine, flow.tenant, trigger, flow.action(code=ECHO))
    wf = flow.workflow([{"name": "login", "action": secret["ref"],
                         "parameters": {"password": "pw-s3cr3t-value"}}])

    done = flow.wait(flow.run(wf)["id"])

    assert done["status"] == "succeeded", done["result"]
    child = flow.tasks(done["id"])["login"]
    [event] = rows.wait_until(lambda: events_of(flow, trigger), 30)
    assert event["payload"]["execution_id"] == child["id"]
    assert event["payload"]["parent_execution_id"] == done["id"]
    assert event["payload"]["result"]["output"] == {"password": "***"}
    assert "pw-s3cr3t-value" not in json.dumps(event["payload"])


def test_a_redelivered_end_evaluates_the_event_once(flow, platform):
    watched = flow.action(code=ECHO)
    notify = flow.action(code=FAIL)
    trigger = execution_trigger(flow, action=watched["ref"], status=["succeeded"])
    rule = rows.make_rule(flow.engine, flow.tenant, trigger, notify)
    done = flow.wait(flow.run(watched)["id"])
    rows.wait_until(lambda: runs_of(flow, rule), 30)
    [event] = events_of(flow, trigger)
    again = {**executions.status_message(done, "running"), "events": [event["id"]]}

    with entrypoint_waiter(platform["executor"], "on_execution_follow_up", timeout=30):
        flow.dispatch(messages.EXECUTIONS, messages.EXECUTION_STATUS_CHANGED, again)

    assert len(runs_of(flow, rule)) == 1
    assert events_of(flow, trigger) == [event]


def test_an_end_whose_news_was_lost_is_evaluated_by_the_next_executor(
    flow, start_executor
):
    watched = flow.action(code=ECHO)
    trigger = execution_trigger(flow, action=watched["ref"])
    rule = rows.make_rule(flow.engine, flow.tenant, trigger, flow.action(code=ECHO))
    with flow.engine.begin() as conn:  # ended, and the process died before publishing
        row = executions.create(conn, tenant_id=flow.tenant, action=watched, parameters={},
                                actor_type="user", actor="test")
        ended = executions.transition(
            conn, row["id"], executions.S.FAILED, actor_type="service", actor="test",
            result=executions.error_result("lost", "the worker died"))
    assert ended is not None and len(ended["fired_events"]) == 1
    [event] = events_of(flow, trigger)
    assert event["processed_at"] is None

    start_executor()

    [run] = rows.wait_until(lambda: runs_of(flow, rule), 30)
    assert run["event_id"] == event["id"]


def test_an_execution_born_failed_by_its_parameters_fires_too(flow):
    strict = flow.action(code=ECHO, parameters={"host": {"type": "string", "required": True}})
    trigger = execution_trigger(flow, action=strict["ref"], status=["failed"])
    rule = rows.make_rule(flow.engine, flow.tenant, trigger, flow.action(code=ECHO))
    with flow.engine.begin() as conn:
        born_failed = executions.create(conn, tenant_id=flow.tenant, action=strict,
                                        parameters={}, actor_type="user", actor="test")
    # As the gateway does after the commit: the creation's news (with the events' ids).
    flow.dispatch(messages.EXECUTIONS, messages.EXECUTION_CREATED,
                  executions.status_message(born_failed, None))

    [run] = rows.wait_until(lambda: runs_of(flow, rule), 30)
    assert born_failed["status"] == "failed"
    [event] = events_of(flow, trigger)
    assert born_failed["fired_events"] == [event["id"]] and run["event_id"] == event["id"]
    assert event["payload"]["result"]["error"]["type"] == "validation"
    assert event["payload"]["started_at"] is None
