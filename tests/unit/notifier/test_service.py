"""NotifierService entrypoints with nameko's worker_factory (dependencies replaced by mocks)."""

from nameko.testing.services import worker_factory

from nameko_services.domain import messages as m
from nameko_services.notifier import notifications as n
from nameko_services.notifier.service import NotifierService


def published(service):
    """(NOTIFICATION_PUBLISHED, payload) per notification the service handed to its broadcast."""
    return [(m.NOTIFICATION_PUBLISHED, payload)
            for call in service.broadcast.call_args_list for payload in call.args]


def test_ping_answers_ok():
    assert worker_factory(NotifierService).ping() == {"service": "notifier", "status": "ok"}


def test_execution_status_change_is_broadcast_for_its_tenant():
    service = worker_factory(NotifierService)
    service.on_execution_status_changed({
        "execution_id": 1, "tenant_id": 2, "status": "running", "previous": "scheduled",
        "parent_execution_id": None, "execution": {"id": 1, "action_ref": "core.echo"},
    })
    [(event_type, payload)] = published(service)
    assert event_type == m.NOTIFICATION_PUBLISHED
    assert payload["tenant_id"] == 2
    assert payload["message"]["event"] == "execution.status_changed"
    assert payload["message"]["data"]["status"] == "running"


def test_changes_folded_into_the_created_news_follow_it_in_order():
    service = worker_factory(NotifierService)
    news = {"execution_id": 1, "tenant_id": 2, "status": "requested", "previous": None,
            "parent_execution_id": None, "execution": {"id": 1, "action_ref": "core.echo"}}
    service.on_execution_created({**news, "then": [
        {**news, "status": "scheduled", "previous": "requested"}]})
    assert [(p["message"]["event"], p["message"]["data"]["status"])
            for _, p in published(service)] == [
        ("execution.created", "requested"), ("execution.status_changed", "scheduled")]
    assert service.broadcast.call_count == 1  # one batch: nothing can come between them


def test_event_created_reads_the_event_row(monkeypatch):
    row = {"id": 5, "trigger_id": 3, "trigger_ref": "t.ref", "source": "webhook",
           "payload": {"a": 1}, "tenant_id": 2, "created_at": "2026-01-27T10:30:00.000Z"}
    monkeypatch.setattr(n, "read_event", lambda conn, tenant_id, event_id: row)
    for handler in ("on_event_created", "on_sensor_event_created"):
        service = worker_factory(NotifierService)
        getattr(service, handler)({"event_id": 5, "tenant_id": 2})
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
    service.on_event_created({"event_id": 5, "tenant_id": 2, "event": row})
    [(_, payload)] = published(service)
    assert payload["message"]["data"]["event"] == row


def test_vanished_event_sends_nothing(monkeypatch):
    monkeypatch.setattr(n, "read_event", lambda conn, tenant_id, event_id: None)
    service = worker_factory(NotifierService)
    service.on_event_created({"event_id": 5, "tenant_id": 2})
    assert published(service) == []


def test_malformed_news_is_dropped_not_raised():
    service = worker_factory(NotifierService)
    service.on_execution_status_changed({"execution_id": 1})  # no tenant
    assert published(service) == []


def test_rule_triggered_and_inquiries_are_forwarded(monkeypatch):
    monkeypatch.setattr(n, "read_rule_ref", lambda conn, tenant_id, rule_id: "custom.r")
    monkeypatch.setattr(n, "read_event", lambda conn, tenant_id, event_id: {"id": event_id})
    monkeypatch.setattr(n, "read_inquiry",
                        lambda conn, tenant_id, inquiry_id: {"id": inquiry_id, "status": "x"})
    service = worker_factory(NotifierService)
    service.on_rule_triggered({"rule_id": 1, "tenant_id": 2, "event_id": 3, "execution_id": 4})
    service.on_inquiry_created({"inquiry_id": 8, "tenant_id": 2, "execution_id": 4})
    service.on_inquiry_responded({"inquiry_id": 8, "tenant_id": 2, "execution_id": 4})
    service.on_inquiry_expired({"inquiry_id": 8, "tenant_id": 2, "execution_id": 4})
    events = [payload["message"]["event"] for _, payload in published(service)]
    assert events == ["rule.triggered", "inquiry.created", "inquiry.responded", "inquiry.expired"]
