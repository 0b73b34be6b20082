"""The executor's news: a new execution's requested → scheduled rides in its created message."""

from nameko_services.domain import messages as m
from nameko_services.executor.news import Outgoing, merged, scheduled


def status(execution_id, status, previous):
    return {"execution_id": execution_id, "tenant_id": 1, "status": status,
            "previous": previous, "parent_execution_id": None, "execution": {}}


def created(execution_id):
    return Outgoing(m.EXECUTION_CREATED, status(execution_id, "requested", None), m.EXECUTIONS)


def changed(execution_id, to, previous):
    return Outgoing(m.EXECUTION_STATUS_CHANGED, status(execution_id, to, previous), m.EXECUTIONS)


def test_scheduled_is_folded_into_created_and_the_work_message_stays_last():
    work = scheduled({"id": 1, "tenant_id": 1})
    out = merged([created(1), changed(1, "scheduled", "requested"), work])
    assert [item.event_type for item in out] == [m.EXECUTION_CREATED, m.EXECUTION_SCHEDULED]
    assert out[0].payload["then"] == [status(1, "scheduled", "requested")]
    assert out[1] == work


def test_other_changes_and_other_executions_keep_their_own_messages_in_order():
    items = [created(1), changed(2, "scheduled", "requested"), changed(1, "running", "requested"),
             created(3), changed(3, "failed", "requested")]
    assert merged(items) == items


def test_each_execution_gets_its_own_change():
    out = merged([created(1), created(2), changed(2, "scheduled", "requested"),
                  changed(1, "scheduled", "requested")])
    assert [(o.payload["execution_id"], [t["execution_id"] for t in o.payload["then"]])
            for o in out] == [(1, [1]), (2, [2])]
