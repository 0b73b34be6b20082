"""Events become rule evaluations, enforcements and scheduled executions, exactly once."""

import pytest
from nameko.testing.services import entrypoint_waiter

from nameko_services.domain import messages, models
from nameko_services.domain.db import transaction
from nameko_services.executor import repository
from tests.integration import rows

pytestmark = pytest.mark.integration

E = models


def of(received, event_type, execution_id=None):
    return [p for _, t, p in received if t == event_type
            and (execution_id is None or p.get("execution_id") == execution_id)]


def processed(received, event):
    """The EVENT_PROCESSED news of this event (the listener's queue may hold older ones)."""
    return [p for p in of(received, messages.EVENT_PROCESSED) if p["event_id"] == event["id"]]


def about(key, value):
    """An entrypoint_waiter callback: wait for the worker handling *this* message (a queue may
    still hold messages of earlier runs); a batch handler's argument is a list of deliveries."""
    def handled(worker_ctx, result, exc_info):
        arg = worker_ctx.args[0]
        payloads = [d.payload for d in arg] if isinstance(arg, list) else [arg]
        return any(p.get(key) == value for p in payloads)
    return handled


def deliver_event(executor, dispatch, event, source=messages.GATEWAY):
    with entrypoint_waiter(executor, "on_event_created", timeout=15,
                           callback=about("event_id", event["id"])):
        dispatch(source, messages.EVENT_CREATED,
                 {"event_id": event["id"], "tenant_id": event["tenant_id"]})


def test_an_event_with_two_rules_enforces_only_the_matching_one(
    executor, dispatch, engine, tenant, received
):
    action = rows.make_action(engine, tenant, parameters={
        "message": {"type": "string", "required": True}, "count": {"type": "integer"}})
    trigger = rows.make_trigger(engine, tenant)
    high = rows.make_rule(
        engine, tenant, trigger, action, notify_on_trigger=True,
        criteria="{{ trigger.data.severity == 'high' }}",
        parameters={"message": "got {{ trigger.data.msg }}", "count": "{{ trigger.data.n }}"},
    )
    low = rows.make_rule(engine, tenant, trigger, action,
                         criteria="{{ trigger.data.severity == 'low' }}")
    event = rows.make_event(engine, tenant, trigger, {"severity": "high", "msg": "hi", "n": 3})

    deliver_event(executor, dispatch, event)

    evaluations = {r["rule_id"]: r for r in rows.rows(
        engine, E.rule_evaluations, E.rule_evaluations.c.event_id == event["id"])}
    assert {k: v["matched"] for k, v in evaluations.items()} == {high["id"]: True,
                                                                   low["id"]: False}
    [enforcement] = rows.rows(engine, E.enforcements, E.enforcements.c.event_id == event["id"])
    [execution] = rows.rows(engine, E.executions, E.executions.c.event_id == event["id"])
    assert enforcement["rule_id"] == high["id"]
    assert enforcement["execution_id"] == execution["id"]
    assert enforcement["status"] == "scheduled"
    assert execution["status"] == "scheduled"
    assert execution["parameters"] == {"message": "got hi", "count": 3}
    assert execution["rule_id"] == high["id"]
    assert execution["enforcement_id"] == enforcement["id"]
    assert execution["trigger_data"] == {"severity": "high", "msg": "hi", "n": 3}
    assert rows.rows(engine, E.events, E.events.c.id == event["id"])[0]["processed_at"]

    rows.wait_until(lambda: of(received, messages.EXECUTION_SCHEDULED, execution["id"]))
    rows.wait_until(lambda: of(received, messages.RULE_TRIGGERED))
    [created] = of(received, messages.EXECUTION_CREATED, execution["id"])
    assert created["status"] == "requested"
    # requested → scheduled rides in the same message (news.merged): no message of its own
    [changed] = created["then"]
    assert (changed["previous"], changed["status"]) == ("requested", "scheduled")
    assert of(received, messages.EXECUTION_STATUS_CHANGED, execution["id"]) == []
    [triggered] = of(received, messages.RULE_TRIGGERED)
    assert triggered == {"rule_id": high["id"], "rule_ref": high["ref"], "tenant_id": tenant,
                         "event_id": event["id"], "execution_id": execution["id"]}

    # a redelivered (or duplicated) event changes nothing and schedules nothing again
    deliver_event(executor, dispatch, event, source=messages.SENSOR)
    assert len(rows.rows(engine, E.executions, E.executions.c.event_id == event["id"])) == 1
    assert len(rows.rows(engine, E.enforcements, E.enforcements.c.event_id == event["id"])) == 1
    assert len(rows.rows(engine, E.rule_evaluations,
                         E.rule_evaluations.c.event_id == event["id"])) == 2
    assert len(of(received, messages.EXECUTION_SCHEDULED, execution["id"])) == 1
    # an event that started an execution is told by it: no event.processed
    assert processed(received, event) == []


def test_criteria_and_template_errors_are_recorded_without_executions(
    executor, dispatch, engine, tenant, received
):
    action = rows.make_action(engine, tenant)
    trigger = rows.make_trigger(engine, tenant)
    broken = rows.make_rule(engine, tenant, trigger, action, criteria="{{ trigger.data.n / 0 }}")
    bad_params = rows.make_rule(engine, tenant, trigger, action,
                                parameters={"message": "{{ trigger.data.n / 0 }}"})
    disabled = rows.make_rule(engine, tenant, trigger, action, enabled=False)
    event = rows.make_event(engine, tenant, trigger, {"n": 1})

    deliver_event(executor, dispatch, event)

    evaluations = {r["rule_id"]: r for r in rows.rows(
        engine, E.rule_evaluations, E.rule_evaluations.c.event_id == event["id"])}
    assert set(evaluations) == {broken["id"], bad_params["id"]}  # disabled rules are skipped
    assert evaluations[broken["id"]]["matched"] is False
    assert "ZeroDivisionError" in evaluations[broken["id"]]["error"]
    [enforcement] = rows.rows(engine, E.enforcements, E.enforcements.c.event_id == event["id"])
    assert enforcement["rule_id"] == bad_params["id"]
    assert enforcement["status"] == "failed"
    assert enforcement["execution_id"] is None
    assert "ZeroDivisionError" in enforcement["error"]
    assert rows.rows(engine, E.executions, E.executions.c.event_id == event["id"]) == []
    assert disabled["id"] not in evaluations
    # no execution started: event.processed says so (a waiting webhook answers on it)
    rows.wait_until(lambda: processed(received, event))
    assert processed(received, event) == [{
        "event_id": event["id"], "tenant_id": tenant, "trigger_id": trigger["id"],
        "rules_matched": 1, "error": None}]


def test_invalid_rule_parameters_fail_the_execution_and_the_enforcement(
    executor, dispatch, engine, tenant, received
):
    action = rows.make_action(engine, tenant, parameters={
        "url": {"type": "string", "required": True}})
    trigger = rows.make_trigger(engine, tenant)
    rows.make_rule(engine, tenant, trigger, action)
    event = rows.make_event(engine, tenant, trigger, {})

    deliver_event(executor, dispatch, event)

    [execution] = rows.rows(engine, E.executions, E.executions.c.event_id == event["id"])
    assert execution["status"] == "failed"
    assert execution["result"]["error"]["type"] == "validation"
    [enforcement] = rows.rows(engine, E.enforcements, E.enforcements.c.event_id == event["id"])
    assert (enforcement["status"], enforcement["execution_id"]) == ("failed", execution["id"])
    assert enforcement["error"] == "Missing required parameter: url"
    assert of(received, messages.EXECUTION_SCHEDULED, execution["id"]) == []


def test_events_handled_together_survive_one_that_fails(engine, tenant, config, monkeypatch):
    """A batch whose shared transaction fails is retried event by event: the good events get
    their executions, the bad one stays unprocessed (for the recovery sweep), nothing twice."""
    from nameko_services.domain.crypto import Cipher
    from nameko_services.domain.settings import Settings
    from nameko_services.executor import enforcement

    action = rows.make_action(engine, tenant)
    trigger = rows.make_trigger(engine, tenant)
    rows.make_rule(engine, tenant, trigger, action)
    good, bad, other = (rows.make_event(engine, tenant, trigger, {"n": n}) for n in range(3))
    real = enforcement.evaluate_event

    def evaluate(conn, cipher, event_id, *args):
        out = real(conn, cipher, event_id, *args)
        if event_id == bad["id"]:
            raise RuntimeError("a bug while evaluating this one")
        return out

    monkeypatch.setattr(enforcement, "evaluate_event", evaluate)
    settings = Settings.from_mapping(config)
    sent = []
    enforcement.handle_events(
        engine, Cipher(settings.encryption_keys, settings.active_key_id),
        lambda *news: sent.append(news),
        [(event["id"], tenant) for event in (good, bad, other)])

    def executions_of(event):
        return rows.rows(engine, E.executions, E.executions.c.event_id == event["id"])

    assert [len(executions_of(e)) for e in (good, bad, other)] == [1, 0, 1]
    assert rows.rows(engine, E.events, E.events.c.id == bad["id"])[0]["processed_at"] is None
    scheduled = [news for news in sent if news[0] == messages.EXECUTION_SCHEDULED]
    assert sorted(news[1]["execution_id"] for news in scheduled) == sorted(
        executions_of(e)[0]["id"] for e in (good, other))



def test_claiming_an_event_reads_its_enabled_rules_in_the_same_statement(engine, tenant):
    """repository.claim_event: the event claimed once, with its trigger's enabled rules of the
    tenant, oldest first, each with its action (None when the tenant may not see it)."""
    stranger = rows.make_tenant(engine)
    try:
        foreign = rows.make_action(engine, stranger)
        action = rows.make_action(engine, tenant)
        trigger = rows.make_trigger(engine, tenant)
        first = rows.make_rule(engine, tenant, trigger, action)
        rows.make_rule(engine, tenant, trigger, action, enabled=False)
        rows.make_rule(engine, tenant, rows.make_trigger(engine, tenant), action)
        second = rows.make_rule(engine, tenant, trigger, foreign)
        event = rows.make_event(engine, tenant, trigger, {"n": 1})
        lonely = rows.make_event(engine, tenant, rows.make_trigger(engine, tenant), {"n": 2})

        with transaction(engine) as conn:
            claimed = repository.claim_event(conn, tenant, event["id"])
            assert claimed is not None
            row, enabled = claimed
            assert row["id"] == event["id"] and row["processed_at"] is not None
            assert row["payload"] == {"n": 1} and row["trigger_id"] == trigger["id"]
            assert [(rule["id"], found and found["id"]) for rule, found in enabled] == [
                (first["id"], action["id"]), (second["id"], None)]
            assert repository.claim_event(conn, tenant, event["id"]) is None  # claimed already
            assert repository.claim_event(conn, stranger, lonely["id"]) is None  # not its tenant
            alone = repository.claim_event(conn, tenant, lonely["id"])
            assert alone is not None and alone[0]["id"] == lonely["id"] and alone[1] == []
    finally:
        rows.delete_tenant(engine, stranger)
