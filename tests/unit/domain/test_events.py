"""The EVENT_CREATED news: a small event travels with it, a large one is only named."""

from datetime import UTC, datetime

from nameko_services.domain import events

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def row(payload):
    return {"id": 7, "tenant_id": 3, "trigger_id": 2, "trigger_ref": "t.hook", "source": "webhook",
            "payload": payload, "caused_by_execution_id": None, "chain_depth": 0, "error": None,
            "trace_id": TRACE, "created_at": datetime(2026, 12, 4, 20, 0, tzinfo=UTC)}


def test_a_small_event_is_announced_with_its_api_shape():
    news = events.announcement(row({"n": 1}))
    assert news == {"event_id": 7, "tenant_id": 3, "trace_id": TRACE,
                    "event": events.to_api(row({"n": 1}))}
    assert news["event"]["trace_id"] == TRACE
    assert news["event"]["created_at"] == "2026-12-04T20:00:00.000Z"


def test_a_large_event_is_announced_by_id_only():
    big = {"blob": "x" * (events.ANNOUNCED_PAYLOAD_BYTES + 1)}
    assert events.announcement(row(big)) == {"event_id": 7, "tenant_id": 3, "trace_id": TRACE}
