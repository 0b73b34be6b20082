"""NotifierService in a real container: domain news in, ordered notifications out."""

import contextlib

import pytest
from kombu import Connection
from nameko.standalone.events import event_dispatcher

from nameko_services.domain import messages as m
from nameko_services.domain import models
from nameko_services.notifier.service import NotifierService
from tests.integration import rows

pytestmark = pytest.mark.integration


def drop_notifier_queues(amqp_uri):
    """News that earlier tests left in the notifier's durable queues is not ours to read."""
    handlers = [name for name in dir(NotifierService) if name.startswith("on_")]
    with Connection(amqp_uri) as conn:
        for name in handlers:
            for extension in getattr(NotifierService, name).nameko_entrypoints:
                queue = (f"evt-{extension.source_service}-{extension.event_type}"
                         f"--notifier.{name}")
                with conn.channel() as channel, contextlib.suppress(Exception):
                    channel.queue_delete(queue)


@pytest.fixture
def published(tenant, container_factory, config):
    """Everything the notifier broadcasts; `tenant` first so it outlives the containers."""
    drop_notifier_queues(config["AMQP_URI"])
    sink = []
    container_factory(
        rows.listener([(m.NOTIFIER, m.NOTIFICATION_PUBLISHED)], sink), config).start()
    container_factory(NotifierService, config).start()
    return sink


@pytest.fixture
def dispatch(config):
    return event_dispatcher(config)


def status_news(execution_id, tenant_id, status, previous):
    return {"execution_id": execution_id, "tenant_id": tenant_id, "status": status,
            "previous": previous, "parent_execution_id": None,
            "execution": {"id": execution_id, "status": status, "action_ref": "core.echo"}}


def messages_of(published, tenant):
    """Our tenant's messages (the durable queues may hold news from earlier tests)."""
    return [item["message"] for _, _, payload in published for item in payload["notifications"]
            if item["tenant_id"] == tenant]


def test_transitions_of_one_execution_leave_in_the_order_they_arrived(
        published, dispatch, tenant):
    statuses = ["requested", "scheduled", "running", "paused", "running", "succeeded"] * 5
    for execution_id in (101, 102):
        previous = None
        for status in statuses:
            event = m.EXECUTION_CREATED if previous is None else m.EXECUTION_STATUS_CHANGED
            dispatch(m.EXECUTIONS, event, status_news(execution_id, tenant, status, previous))
            previous = status
    rows.wait_until(lambda: len(messages_of(published, tenant)) == 2 * len(statuses))
    for execution_id in (101, 102):
        mine = [msg for msg in messages_of(published, tenant) if msg["entity_id"] == execution_id]
        assert [msg["data"]["status"] for msg in mine] == statuses
        assert mine[0]["event"] == "execution.created"


def test_event_created_is_read_back_from_the_database(published, dispatch, engine, tenant):
    trigger = rows.make_trigger(engine, tenant)
    event = rows.make_event(engine, tenant, trigger, {"severity": "high"})
    dispatch(m.GATEWAY, m.EVENT_CREATED, {"event_id": event["id"], "tenant_id": tenant})
    [message] = rows.wait_until(lambda: messages_of(published, tenant))
    assert message["event"] == "event.created"
    assert (message["entity_type"], message["entity_id"]) == ("event", event["id"])
    assert message["data"]["payload"] == {"severity": "high"}
    assert message["data"]["trigger_ref"] == trigger["ref"]


def test_an_execution_triggers_event_announced_by_the_executor_is_sent(
    published, dispatch, engine, tenant
):
    trigger = rows.make_trigger(engine, tenant, type="execution")
    event = rows.insert_row(engine, models.events, tenant_id=tenant, trigger_id=trigger["id"],
                            trigger_ref=trigger["ref"], source="execution",
                            payload={"execution_id": 1, "status": "failed"})
    dispatch(m.EXECUTOR, m.EVENT_CREATED, {"event_id": event["id"], "tenant_id": tenant})
    [message] = rows.wait_until(lambda: messages_of(published, tenant))
    assert message["event"] == "event.created"
    assert (message["entity_type"], message["entity_id"]) == ("event", event["id"])
    assert message["data"]["source"] == "execution"


def test_rule_triggered_names_the_rule(published, dispatch, engine, tenant):
    trigger = rows.make_trigger(engine, tenant)
    rule = rows.make_rule(engine, tenant, trigger, rows.make_action(engine, tenant),
                          notify_on_trigger=True)
    event = rows.make_event(engine, tenant, trigger, {"n": 1})
    dispatch(m.EXECUTOR, m.RULE_TRIGGERED, {"rule_id": rule["id"], "tenant_id": tenant,
                                           "event_id": event["id"], "execution_id": None})
    [message] = rows.wait_until(lambda: messages_of(published, tenant))
    assert message["event"] == "rule.triggered"
    assert message["data"]["rule_ref"] == rule["ref"]
    assert message["data"]["event"]["payload"] == {"n": 1}


def test_news_of_an_event_from_another_tenant_is_not_sent(published, dispatch, engine, tenant):
    trigger = rows.make_trigger(engine, tenant)
    event = rows.make_event(engine, tenant, trigger, {})
    other = rows.make_tenant(engine)
    try:
        dispatch(m.SENSOR, m.EVENT_CREATED, {"event_id": event["id"], "tenant_id": other})
        dispatch(m.SENSOR, m.EVENT_CREATED, {"event_id": event["id"], "tenant_id": tenant})
        rows.wait_until(lambda: messages_of(published, tenant))
    finally:
        rows.delete_tenant(engine, other)
    assert messages_of(published, other) == []
    assert len(messages_of(published, tenant)) == 1
