"""The AMQP entrypoints every service uses: one tolerant queue consumer behind rpc and events."""

import sys
from types import SimpleNamespace

import pytest
from kombu.exceptions import OperationalError as BrokerError
from nameko import messaging
from sqlalchemy.exc import OperationalError as DatabaseError

from nameko_services import extensions, green
from nameko_services.domain import backlog, messages
from nameko_services.executor.service import ExecutorService
from nameko_services.extensions import EventHandler, QueueConsumer
from nameko_services.notifier.service import NotifierService
from nameko_services.sensor.service import SensorService
from nameko_services.worker.service import WorkerService


class DroppedMessage:
    """A message whose connection the broker reset between the liveness check and the ack."""

    def __init__(self):
        self.channel = SimpleNamespace(connection=object())

    def ack(self):
        raise ConnectionResetError(104, "Connection reset by peer")

    def requeue(self):
        raise BrokenPipeError(32, "Broken pipe")


def test_nameko_alone_lets_the_socket_error_escape():
    """Why the subclass exists: this exception kills a nameko container."""
    with pytest.raises(ConnectionResetError):
        messaging.QueueConsumer().ack_message(DroppedMessage())


def test_a_reset_connection_makes_ack_and_requeue_no_ops(caplog):
    consumer = QueueConsumer()
    consumer.ack_message(DroppedMessage())
    consumer.requeue_message(DroppedMessage())
    assert "redelivered" in caplog.text and "the broker has it" in caplog.text


@pytest.mark.parametrize("service", [ExecutorService, WorkerService, SensorService,
                                     NotifierService])
def test_every_amqp_entrypoint_uses_the_tolerant_consumer(service):
    entrypoints = [getattr(service, name) for name in dir(service)
                   if getattr(getattr(service, name), "nameko_entrypoints", None)]
    consumers = []
    for method in entrypoints:
        for entrypoint in method.nameko_entrypoints:
            owner = getattr(entrypoint, "rpc_consumer", entrypoint)
            if hasattr(owner, "queue_consumer"):
                consumers.append(type(owner.queue_consumer))
    assert consumers and all(issubclass(c, QueueConsumer) for c in consumers)


class Recorder:
    def __init__(self):
        self.calls = []

    def ack_message(self, message):
        self.calls.append("ack")

    def requeue_message(self, message):
        self.calls.append("requeue")


def failure(exc):
    try:
        raise exc
    except Exception:
        return sys.exc_info()


@pytest.mark.parametrize(("error", "expected"), [
    (DatabaseError("SELECT 1", {}, Exception("terminating connection")), ["requeue"]),
    (BrokerError("[Errno 111] ECONNREFUSED"), ["requeue"]),
    (ValueError("a bad message"), ["ack"]),  # retrying would never help: nameko's ack stands
    (None, ["ack"]),
])
def test_an_outage_puts_the_message_back_anything_else_is_acked(monkeypatch, error, expected):
    monkeypatch.setattr(extensions, "OUTAGE_RETRY_SECONDS", 0)
    handler = EventHandler("executor", "execution.scheduled")
    handler.queue_consumer = Recorder()
    handler.handle_message_processed(object(), exc_info=failure(error) if error else None)
    assert handler.queue_consumer.calls == expected


PRIORITY_QUEUES = {
    (ExecutorService, "on_event_created"), (ExecutorService, "on_execution_requested"),
    (WorkerService, "on_execution_scheduled"),
}


@pytest.mark.parametrize("service", [ExecutorService, WorkerService, SensorService,
                                     NotifierService])
def test_the_queues_of_work_messages_and_only_those_are_priority_queues(service):
    """The executor's and the worker's consumers of work messages (messages.PRIORITISED) take
    them by priority; news (the notifier's copy of event.created, say) stays in order."""
    for name in dir(service):
        for entrypoint in getattr(getattr(service, name), "nameko_entrypoints", ()):
            if isinstance(entrypoint, EventHandler):
                wanted = (service, name) in PRIORITY_QUEUES
                assert entrypoint.prioritised is wanted, (service.__name__, name)
                assert not wanted or entrypoint.event_type in messages.PRIORITISED


def declared_queue(prioritised):
    handler = EventHandler("executor", messages.EXECUTION_SCHEDULED, prioritised=prioritised)
    handler.container = SimpleNamespace(service_name="worker", config={})
    handler.method_name = "on_execution_scheduled"
    handler.queue_consumer = SimpleNamespace(register_provider=lambda provider: None)
    handler.setup()
    return handler.queue


def test_a_prioritised_handler_declares_x_max_priority():
    queue = declared_queue(prioritised=True)
    assert queue.name == "evt-executor-execution.scheduled--worker.on_execution_scheduled"
    assert queue.queue_arguments == {"x-max-priority": backlog.MAX_PRIORITY}
    assert not declared_queue(prioritised=False).queue_arguments


class FakeBacklog:
    def priority(self, tenant_id):
        return {1: 0, 2: 8}[tenant_id]


@pytest.mark.parametrize(("event_type", "tenant_id", "priority"), [
    (messages.EVENT_CREATED, 1, 0),
    (messages.EXECUTION_REQUESTED, 2, 8),
    (messages.EXECUTION_SCHEDULED, 2, 8),
    (messages.EXECUTION_CREATED, 2, None),  # news: no priority
])
def test_the_publisher_gives_work_messages_their_tenants_priority(event_type, tenant_id,
                                                                  priority):
    publisher = green.Publisher({"AMQP_URI": "amqp://nobody@127.0.0.1:1/none"})
    sent = []
    publisher._publisher = SimpleNamespace(publish=lambda payload, **kw: sent.append(kw))
    publisher._backlog = FakeBacklog()
    publisher("gateway", event_type, {"tenant_id": tenant_id, "execution_id": 1})
    assert sent[0]["priority"] == priority


@pytest.mark.parametrize(("event_type", "payload", "persistent"), [
    (messages.EXECUTION_CREATED, {"status": "requested"}, False),
    (messages.EXECUTION_STATUS_CHANGED, {"status": "succeeded", "previous": "running"}, False),
    (messages.NOTIFICATION_PUBLISHED, {"notifications": []}, False),
    # a child's end moves its parent: the executor consumes it too (EXECUTION_FOLLOW_UP)
    (messages.EXECUTION_STATUS_CHANGED,
     {"status": "succeeded", "previous": "running", "parent_execution_id": 7}, True),
    (messages.EXECUTION_SCHEDULED, {}, True),
    (messages.EVENT_CREATED, {}, True),
    (messages.INQUIRY_RESPONDED, {}, True),
])
def test_news_only_for_notifications_is_transient_and_the_rest_persistent(
        event_type, payload, persistent):
    publisher = green.Publisher({"AMQP_URI": "amqp://nobody@127.0.0.1:1/none"})
    sent = []
    publisher._publisher = SimpleNamespace(publish=lambda payload, **kw: sent.append(kw))
    publisher._backlog = None
    publisher("executions", event_type, {"tenant_id": 1, "execution_id": 1, **payload})
    assert sent[0]["delivery_mode"] == (2 if persistent else 1)
    assert bool(sent[0]["headers"]) == (event_type == messages.EXECUTION_STATUS_CHANGED
                                        and persistent)


def test_the_publisher_makes_each_source_exchange_once(monkeypatch):
    """Building kombu's Exchange was ~7 % of a notifier's publish: it is kept per source."""
    made = []
    monkeypatch.setattr(green, "get_event_exchange",
                        lambda source, config: made.append(source) or f"{source}.events")
    publisher = green.Publisher({"AMQP_URI": "amqp://nobody@127.0.0.1:1/none"})
    sent = []
    publisher._publisher = SimpleNamespace(publish=lambda payload, **kw: sent.append(kw))
    publisher._backlog = None
    for source in ("notifier", "notifier", "executions", "notifier"):
        publisher(source, messages.NOTIFICATION_PUBLISHED, {"notifications": []})
    assert made == ["notifier", "executions"]
    assert [kw["exchange"] for kw in sent] == [
        "notifier.events", "notifier.events", "executions.events", "notifier.events"]


@pytest.mark.parametrize(("event_type", "payload", "sent_unwatched"), [
    (messages.EXECUTION_CREATED, {"status": "requested"}, False),
    (messages.EXECUTION_STATUS_CHANGED, {"status": "succeeded", "previous": "running"}, False),
    (messages.EXECUTION_OUTPUT, {"lines": ["x"]}, False),
    # what moves state goes whoever listens: a parent's follow-up, work, inquiries
    (messages.EXECUTION_STATUS_CHANGED,
     {"status": "succeeded", "previous": "running", "parent_execution_id": 7}, True),
    (messages.EXECUTION_SCHEDULED, {}, True),
    (messages.EVENT_CREATED, {}, True),
    (messages.INQUIRY_RESPONDED, {}, True),
])
def test_a_tenants_live_news_goes_only_while_someone_listens(event_type, payload,
                                                             sent_unwatched):
    listened = {1}
    publisher = green.Publisher({"AMQP_URI": "amqp://nobody@127.0.0.1:1/none"},
                                listening=lambda tenant_id: tenant_id in listened)
    sent = []
    publisher._publisher = SimpleNamespace(publish=lambda payload, **kw: sent.append(payload))
    publisher._backlog = None
    for tenant_id in (1, 2):
        publisher("executions", event_type, {"tenant_id": tenant_id, "execution_id": 1, **payload})
    assert [p["tenant_id"] for p in sent] == ([1, 2] if sent_unwatched else [1])
    # news of no tenant (a revocation, the notifier's broadcasts) always goes
    publisher("gateway", messages.TOKENS_REVOKED, {"user_id": 1})
    assert sent[-1] == {"user_id": 1}
