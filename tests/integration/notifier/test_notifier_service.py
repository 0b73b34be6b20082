"""NotifierService in a real container: domain news in, ordered notifications out, consumed
in batches whose news is acknowledged only once their broadcast is confirmed."""

import contextlib

import eventlet
import pytest
from kombu import Connection
from kombu.exceptions import OperationalError as BrokerUnavailable
from nameko.standalone.events import event_dispatcher

from nameko_services import extensions
from nameko_services.domain import messages as m
from nameko_services.domain import models
from nameko_services.notifier.broadcast import Broadcast
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
def notifier(tenant, container_factory, config):
    """(every broadcast the notifier makes, its container); `tenant` first so it outlives the
    containers."""
    drop_notifier_queues(config["AMQP_URI"])
    sink = []
    container_factory(
        rows.listener([(m.NOTIFIER, m.NOTIFICATION_PUBLISHED)], sink), config).start()
    container = container_factory(NotifierService, config)
    container.start()
    return sink, container


@pytest.fixture
def published(notifier):
    return notifier[0]


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


def gate_broadcasts(container, first):
    """Run `first()` before the container's first broadcast is published (later ones go as is)."""
    batcher = next(d for d in container.dependencies if isinstance(d, Broadcast)).batcher
    publish, calls = batcher._flush, []

    def flush(payloads):
        calls.append(payloads)
        if len(calls) == 1:
            first()
        publish(payloads)

    batcher._flush = flush


def pending_news(container):
    handler = next(e for e in container.entrypoints if e.method_name == "on_news")
    return handler.batches.of("on_news").pending


def broadcasts_of(published, tenant):
    """The messages of each broadcast that carries our tenant's."""
    return [[item["message"] for item in payload["notifications"]]
            for _, _, payload in published
            if any(item["tenant_id"] == tenant for item in payload["notifications"])]


def test_news_arriving_while_a_broadcast_is_out_leaves_in_one_broadcast_in_order(
        notifier, dispatch, tenant):
    published, container = notifier
    release = eventlet.event.Event()
    gate_broadcasts(container, release.wait)
    dispatch(m.EXECUTIONS, m.EXECUTION_CREATED, status_news(201, tenant, "requested", None))
    rows.wait_until(lambda: not pending_news(container) and container._worker_threads)
    later = [(m.EXECUTION_STATUS_CHANGED, status_news(201, tenant, "running", "requested")),
             (m.EXECUTION_OUTPUT, {"execution_id": 201, "tenant_id": tenant, "stream": "stdout",
                                   "seq": 1, "lines": ["hello"]}),
             (m.EXECUTION_STATUS_CHANGED, status_news(201, tenant, "succeeded", "running"))]
    for count, (event_type, payload) in enumerate(later, 1):
        dispatch(m.EXECUTIONS, event_type, payload)  # one at a time: arrival order is known
        rows.wait_until(lambda count=count: len(pending_news(container)) == count)
    release.send()
    rows.wait_until(lambda: len(messages_of(published, tenant)) == 4)
    assert [[(msg["event"], msg["data"].get("status")) for msg in broadcast]
            for broadcast in broadcasts_of(published, tenant)] == [
        [("execution.created", "requested")],
        [("execution.status_changed", "running"), ("execution.output", None),
         ("execution.status_changed", "succeeded")]]


def test_news_whose_broadcast_was_not_confirmed_is_not_acked(
        notifier, dispatch, tenant, container_factory, config):
    """The notifier dies while publishing: the broker gives its news to the next one."""
    published, container = notifier
    gate_broadcasts(container, eventlet.event.Event().wait)  # never published
    dispatch(m.EXECUTIONS, m.EXECUTION_CREATED, status_news(202, tenant, "requested", None))
    rows.wait_until(lambda: container._worker_threads)
    container.kill()
    container_factory(NotifierService, config).start()
    [message] = rows.wait_until(lambda: messages_of(published, tenant))
    assert (message["event"], message["entity_id"]) == ("execution.created", 202)


def test_news_of_a_failed_broadcast_is_delivered_again(notifier, dispatch, tenant, monkeypatch):
    monkeypatch.setattr(extensions, "OUTAGE_RETRY_SECONDS", 0)
    published, container = notifier

    def broker_gone():
        raise BrokerUnavailable("[Errno 111] ECONNREFUSED")

    gate_broadcasts(container, broker_gone)
    dispatch(m.EXECUTIONS, m.EXECUTION_CREATED, status_news(203, tenant, "requested", None))
    [message] = rows.wait_until(lambda: messages_of(published, tenant))
    assert (message["event"], message["entity_id"]) == ("execution.created", 203)
