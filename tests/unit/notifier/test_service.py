"""NotifierService entrypoints with nameko's worker_factory (dependencies replaced by mocks)."""

from nameko.testing.services import worker_factory

from nameko_services.domain import messages as m
from nameko_services.extensions import Delivery
from nameko_services.notifier import notifications as n
from nameko_services.notifier.service import NotifierService


def published(service):
    """(NOTIFICATION_PUBLISHED, payload) per notification the service handed to its broadcast."""
    return [(m.NOTIFICATION_PUBLISHED, payload)
            for call in service.broadcast.call_args_list for payload in call.args]


def news(event_type, payload, source=m.EXECUTOR):
    return Delivery(source, event_type, payload)


def test_ping_answers_ok():
    assert worker_factory(NotifierService).ping() == {"service": "notifier", "status": "ok"}


def test_execution_status_change_is_broadcast_for_its_tenant():
    service = worker_factory(NotifierService)
    service.on_news([news(m.EXECUTION_STATUS_CHANGED, {
        "execution_id": 1, "tenant_id": 2, "status": "running", "previous": "scheduled",
        "parent_execution_id": None, "execution": {"id": 1, "action_ref": "core.echo"},
    })])
    [(event_type, payload)] = published(service)
    assert event_type == m.NOTIFICATION_PUBLISHED
    assert payload["tenant_id"] == 2
    assert payload["message"]["event"] == "execution.status_changed"
    assert payload["message"]["data"]["status"] == "running"


def test_changes_folded_into_the_created_news_follow_it_in_order():
    service = worker_factory(NotifierService)
    created = {"execution_id": 1, "tenant_id": 2, "status": "requested", "previous": None,
               "parent_execution_id": None, "execution": {"id": 1, "action_ref": "core.echo"}}
    service.on_news([news(m.EXECUTION_CREATED, {**created, "then": [
        {**created, "status": "scheduled", "previous": "requested"}]})])
    assert [(p["message"]["event"], p["message"]["data"]["status"])
            for _, p in published(service)] == [
        ("execution.created", "requested"), ("execution.status_changed", "scheduled")]
    assert service.broadcast.call_count == 1  # one batch: nothing can come between them


def test_event_created_reads_the_event_row(monkeypatch):
    row = {"id": 5, "trigger_id": 3, "trigger_ref": "t.ref", "source": "webhook",
           "payload": {"a": 1}, "tenant_id": 2, "created_at": "2026-01-27T10:30:00.000Z"}
    monkeypatch.setattr(n, "read_event", lambda conn, tenant_id, event_id: row)
    for source in (m.GATEWAY, m.SENSOR, m.EXECUTOR):
        service = worker_factory(NotifierService)
        service.on_news([news(m.EVENT_CREATED, {"event_id": 5, "tenant_id": 2}, source)])
        [(_, payload)] = published(service)
        assert payload["message"]["event"] == "event.created"
        assert payload["message"]["data"]["payload"] == {"a": 1}


def test_an_announced_event_is_not_read_back(monkeypatch):
    def unexpected(*args):
        raise AssertionError("read the event although its news carried it")

    monkeypatch.setattr(n, "read_event", unexpected)
    row = {"id": 5, "trigger_id": 3, "trigger_ref": "t.ref", "source": "webhook",
           "payload": {"a": 1}, "tenant_id": 2, "created_at": "2026-01-27T10:30:00.000Z"}
    service = worker_factory(NotifierService)
    service.on_news([news(m.EVENT_CREATED, {"event_id": 5, "tenant_id": 2, "event": row})])
    [(_, payload)] = published(service)
    assert payload["message"]["data"]["event"] == row


def test_vanished_event_sends_nothing(monkeypatch):
    monkeypatch.setattr(n, "read_event", lambda conn, tenant_id, event_id: None)
    service = worker_factory(NotifierService)
    service.on_news([news(m.EVENT_CREATED, {"event_id": 5, "tenant_id": 2})])
    assert published(service) == []
    assert not service.broadcast.called  # nothing to publish: no empty broadcast


def test_malformed_news_is_dropped_not_raised_and_the_rest_of_its_batch_goes_out():
    service = worker_factory(NotifierService)
    service.on_news([news(m.EXECUTION_STATUS_CHANGED, {"execution_id": 1}),  # no tenant
                     news(m.EXECUTION_OUTPUT, {"execution_id": 1, "tenant_id": 2,
                                               "stream": "stdout", "seq": 1, "lines": ["hi"]})])
    assert [p["message"]["event"] for _, p in published(service)] == ["execution.output"]


def test_rule_triggered_and_inquiries_are_forwarded(monkeypatch):
    monkeypatch.setattr(n, "read_rule_ref", lambda conn, tenant_id, rule_id: "custom.r")
    monkeypatch.setattr(n, "read_event", lambda conn, tenant_id, event_id: {"id": event_id})
    monkeypatch.setattr(n, "read_inquiry",
                        lambda conn, tenant_id, inquiry_id: {"id": inquiry_id, "status": "x"})
    service = worker_factory(NotifierService)
    inquiry = {"inquiry_id": 8, "tenant_id": 2, "execution_id": 4}
    service.on_news([
        news(m.RULE_TRIGGERED, {"rule_id": 1, "tenant_id": 2, "event_id": 3, "execution_id": 4}),
        news(m.INQUIRY_CREATED, inquiry), news(m.INQUIRY_RESPONDED, inquiry),
        news(m.INQUIRY_EXPIRED, inquiry)])
    events = [payload["message"]["event"] for _, payload in published(service)]
    assert events == ["rule.triggered", "inquiry.created", "inquiry.responded", "inquiry.expired"]


def test_the_news_of_a_batch_leaves_in_one_broadcast_in_arrival_order():
    service = worker_factory(NotifierService)
    base = {"tenant_id": 2, "parent_execution_id": None}
    service.on_news([
        news(m.EXECUTION_CREATED, {**base, "execution_id": 1, "status": "requested"},
             m.EXECUTIONS),
        news(m.EXECUTION_STATUS_CHANGED, {**base, "execution_id": 1, "status": "running",
                                          "previous": "requested"}, m.EXECUTIONS),
        news(m.EXECUTION_OUTPUT, {**base, "execution_id": 1, "stream": "stdout", "seq": 1,
                                  "lines": ["hi"]}, m.EXECUTIONS),
        news(m.EXECUTION_STATUS_CHANGED, {**base, "execution_id": 1, "status": "succeeded",
                                          "previous": "running"}, m.EXECUTIONS),
        news(m.PACK_ENVIRONMENT, {"tenant_id": 2, "pack_id": 3, "status": "ready"}, m.WORKER),
    ])
    assert service.broadcast.call_count == 1
    assert [(p["message"]["event"], p["message"]["data"].get("status"))
            for _, p in published(service)] == [
        ("execution.created", "requested"), ("execution.status_changed", "running"),
        ("execution.output", None), ("execution.status_changed", "succeeded"),
        ("pack.env_ready", "ready")]


def test_news_of_a_tenant_nobody_listens_to_is_dropped_unmapped(monkeypatch):
    """Events and inquiries reach the notifier whoever listens (the executor needs them too);
    a tenant no gateway announced a listener for gets no notification, and costs no read."""
    monkeypatch.setattr(n, "read_event", lambda *args: (_ for _ in ()).throw(AssertionError))
    service = worker_factory(NotifierService)
    service.listening.side_effect = lambda tenant_id: tenant_id == 2
    service.on_news([news(m.EVENT_CREATED, {"event_id": 5, "tenant_id": 3}, m.GATEWAY),
                     news(m.EXECUTION_STATUS_CHANGED, {
                         "execution_id": 1, "tenant_id": 2, "status": "running",
                         "previous": "scheduled", "parent_execution_id": None,
                         "execution": {"id": 1, "action_ref": "core.echo"}})])
    assert [p["tenant_id"] for _, p in published(service)] == [2]
