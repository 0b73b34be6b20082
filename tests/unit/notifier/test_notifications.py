"""Domain news → api.md notification messages."""

from nameko_services.domain import messages as m
from nameko_services.notifier import notifications as n

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"  # the notification names its execution's trace


def execution_news(status="succeeded", previous="running", **execution):
    row = {"id": 123, "action_ref": "core.echo", "status": status, "parent_execution_id": None,
           "trace_id": TRACE, "updated_at": "2026-01-27T10:30:00.123Z", **execution}
    return {"execution_id": 123, "tenant_id": 7, "status": status, "previous": previous,
            "parent_execution_id": row["parent_execution_id"], "trace_id": row["trace_id"],
            "execution": row}


def test_status_change_becomes_the_api_md_message():
    note = n.for_execution(m.EXECUTION_STATUS_CHANGED, execution_news())
    assert note.tenant_id == 7
    assert note.key == "execution:123"
    assert note.message == {
        "event": "execution.status_changed",
        "entity_type": "execution",
        "entity_id": 123,
        "data": {
            "execution_id": 123, "status": "succeeded", "previous": "running",
            "action_ref": "core.echo", "parent_execution_id": None, "trace_id": TRACE,
            "execution": execution_news()["execution"],
        },
        "timestamp": "2026-01-27T10:30:00.123Z",
    }
    assert note.to_payload() == {"tenant_id": 7, "message": note.message}


def test_created_execution_is_execution_created_with_no_previous_status():
    note = n.for_execution(m.EXECUTION_CREATED, execution_news("requested", None))
    assert note.message["event"] == "execution.created"
    assert note.message["data"]["status"] == "requested"
    assert note.message["data"]["previous"] is None


def test_message_without_a_domain_timestamp_is_stamped_now_in_rfc3339_utc():
    news = execution_news()
    del news["execution"]["updated_at"]
    stamp = n.for_execution(m.EXECUTION_STATUS_CHANGED, news).message["timestamp"]
    assert stamp.endswith("Z") and stamp[10] == "T"


def test_child_execution_keeps_its_parent_in_the_data():
    note = n.for_execution(m.EXECUTION_STATUS_CHANGED, execution_news(parent_execution_id=99))
    assert note.message["data"]["parent_execution_id"] == 99


def test_event_created_carries_trigger_and_payload():
    row = {"id": 5, "trigger_id": 3, "trigger_ref": "custom.hook", "source": "webhook",
           "payload": {"severity": "high"}, "tenant_id": 7,
           "created_at": "2026-01-27T10:30:00.000Z"}
    note = n.for_event(row)
    assert note.tenant_id == 7
    assert note.message["event"] == "event.created"
    assert (note.message["entity_type"], note.message["entity_id"]) == ("event", 5)
    assert note.message["data"]["payload"] == {"severity": "high"}
    assert note.message["data"]["event"] == row
    assert note.message["timestamp"] == row["created_at"]


def test_rule_triggered_names_rule_event_and_execution():
    payload = {"rule_id": 4, "tenant_id": 7, "event_id": 5, "execution_id": 6}
    event = {"id": 5, "trigger_ref": "custom.hook", "tenant_id": 7}
    note = n.for_rule_triggered(payload, "custom.my_rule", event)
    assert note.message["event"] == "rule.triggered"
    assert (note.message["entity_type"], note.message["entity_id"]) == ("rule", 4)
    data = note.message["data"]
    assert (data["rule_ref"], data["event_id"], data["execution_id"]) == ("custom.my_rule", 5, 6)
    assert data["event"] == event and data["trigger_ref"] == "custom.hook"


def test_inquiry_news_uses_the_inquiry_row_when_given():
    inquiry = {"id": 8, "execution_id": 6, "status": "pending", "prompt": "Deploy?"}
    for event in n.INQUIRY_EVENTS:
        note = n.for_inquiry(event, {"inquiry_id": 8, "tenant_id": 7}, inquiry)
        assert note.message["event"] == event
        assert (note.message["entity_type"], note.message["entity_id"]) == ("inquiry", 8)
        assert note.message["data"]["inquiry"] == inquiry
        assert note.message["data"]["execution_id"] == 6
        assert note.key == "inquiry:8"


def test_inquiry_id_may_come_inside_an_embedded_inquiry():
    payload = {"tenant_id": 7, "inquiry": {"id": 9, "status": "responded", "execution_id": 1}}
    note = n.for_inquiry(m.INQUIRY_RESPONDED, payload, None)
    assert note.message["entity_id"] == 9
    assert note.message["data"]["status"] == "responded"


def test_an_event_that_started_no_execution_becomes_event_processed():
    note = n.for_event_processed({"event_id": 5, "tenant_id": 7, "trigger_id": 3,
                                  "rules_matched": 1, "error": None})
    assert (note.tenant_id, note.key) == (7, "event:5")
    assert {k: note.message[k] for k in ("event", "entity_type", "entity_id")} == {
        "event": "event.processed", "entity_type": "event", "entity_id": 5}
    assert note.message["data"] == {"event_id": 5, "trigger_id": 3, "executions": 0,
                                    "rules_matched": 1, "error": None}


def test_execution_output_carries_the_stream_its_sequence_number_lines_and_drops():
    note = n.for_execution_output({"execution_id": 9, "tenant_id": 4, "stream": "stderr",
                                   "seq": 3, "lines": ["a", "b"], "dropped": 1,
                                   "trace_id": TRACE})
    assert note.tenant_id == 4 and note.key == "execution:9"
    assert note.message["event"] == "execution.output"
    assert (note.message["entity_type"], note.message["entity_id"]) == ("execution", 9)
    assert note.message["data"] == {"execution_id": 9, "stream": "stderr", "seq": 3,
                                    "lines": ["a", "b"], "dropped": 1, "trace_id": TRACE}
