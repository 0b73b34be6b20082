"""The waiter registry of synchronous runs: what wakes a waiting request, and its bounds."""

import time

import eventlet
import pytest
from flask import Flask

from gateway.waiters import Waiters, wait_seconds
from nameko_services.domain.errors import BadRequestError, TooManyWaitersError

TENANT, OTHER = 1, 2


def execution_news(status, execution_id=10, event_id=None, event="execution.status_changed"):
    return {"event": event, "entity_type": "execution", "entity_id": execution_id,
            "data": {"execution_id": execution_id, "status": status,
                     "execution": {"id": execution_id, "status": status, "event_id": event_id}}}


def processed_news(event_id):
    return {"event": "event.processed", "entity_type": "event", "entity_id": event_id,
            "data": {"event_id": event_id, "executions": 0}}


class Reads:
    """A stand-in for the database read: the values it returns, and how often it was asked."""

    def __init__(self, *values):
        self.values, self.count = list(values), 0

    def __call__(self):
        self.count += 1
        return self.values[min(self.count, len(self.values)) - 1]


def woken_by(watch, news, tenant=TENANT):
    registry = Waiters(10, 10)
    with registry.slot() as slot:
        slot.reserve(TENANT)
        watch(slot)
        return registry.publish(tenant, news)


@pytest.mark.parametrize("news, woken", [
    (execution_news("succeeded"), 1),
    (execution_news("failed", event="execution.created"), 1),  # failed at once: validation
    (execution_news("canceled"), 1),
    (execution_news("running"), 0),
    (execution_news("scheduled"), 0),
    (execution_news("succeeded", execution_id=11), 0),
    (processed_news(10), 0),  # an event's news never wakes an execution's waiter
])
def test_an_execution_waiter_wakes_for_that_executions_end_only(news, woken):
    assert woken_by(lambda slot: slot.watch_execution(10), news) == woken


@pytest.mark.parametrize("news, woken", [
    (execution_news("succeeded", execution_id=11, event_id=5), 1),
    (execution_news("failed", execution_id=12, event_id=5), 1),
    (execution_news("running", execution_id=11, event_id=5), 0),
    (execution_news("succeeded", execution_id=11, event_id=6), 0),
    (processed_news(5), 1),
    (processed_news(6), 0),
])
def test_an_event_waiter_wakes_for_its_executions_ending_or_its_processing(news, woken):
    assert woken_by(lambda slot: slot.watch_event(5), news) == woken


def test_another_tenants_news_never_wakes_a_waiter():
    assert woken_by(lambda slot: slot.watch_execution(10), execution_news("succeeded"),
                    tenant=OTHER) == 0
    assert woken_by(lambda slot: slot.watch_event(5), processed_news(5), tenant=OTHER) == 0


@pytest.mark.parametrize("news", [None, {}, {"entity_type": "execution", "data": "x"},
                                  {"entity_type": "execution", "entity_id": "x",
                                   "data": {"status": "succeeded"}}])
def test_malformed_news_wakes_nobody(news):
    assert woken_by(lambda slot: slot.watch_execution(10), news) == 0


def test_wait_for_reads_once_then_after_each_wake_until_done():
    registry = Waiters(10, 10)
    reads = Reads("running", "running", "succeeded")
    with registry.slot() as slot:
        slot.reserve(TENANT)
        slot.watch_execution(10)
        waiting = eventlet.spawn(slot.wait_for, reads, lambda s: s == "succeeded",
                                 time.monotonic() + 60)
        eventlet.sleep(0)
        assert reads.count == 1  # read once, now asleep: nothing polls
        for _ in range(2):
            registry.publish(TENANT, execution_news("succeeded"))
            eventlet.sleep(0)
        assert waiting.wait() == ("succeeded", True)
        assert reads.count == 3


def test_an_execution_already_ended_is_answered_without_waiting():
    registry = Waiters(10, 10)
    with registry.slot() as slot:
        slot.reserve(TENANT)
        slot.watch_execution(10)
        reads = Reads("failed")
        assert slot.wait_for(reads, lambda s: s == "failed", time.monotonic() + 60) == (
            "failed", True)


def test_the_deadline_answers_with_the_last_read():
    registry = Waiters(10, 10)
    with registry.slot() as slot:
        slot.reserve(TENANT)
        slot.watch_execution(10)
        assert slot.wait_for(Reads("running"), lambda s: False, time.monotonic()) == (
            "running", False)


def test_shutdown_answers_every_waiting_request_at_once():
    registry = Waiters(10, 10)
    with registry.slot() as slot:
        slot.reserve(TENANT)
        slot.watch_execution(10)
        waiting = eventlet.spawn(slot.wait_for, Reads("running"), lambda s: False,
                                 time.monotonic() + 60)
        eventlet.sleep(0)
        assert registry.release_all() == 1
        assert waiting.wait() == ("running", False)


def test_the_tenant_share_is_429_and_the_process_bound_503_and_slots_are_given_back():
    registry = Waiters(max_waiters=3, tenant_max_waiters=2)
    with registry.slot() as a, registry.slot() as b, registry.slot() as c:
        a.reserve(TENANT)
        b.reserve(TENANT)
        with registry.slot() as refused, pytest.raises(TooManyWaitersError) as info:
            refused.reserve(TENANT)
        assert info.value.http_status == 429 and info.value.details["scope"] == "tenant"
        c.reserve(OTHER)
        with registry.slot() as refused, pytest.raises(TooManyWaitersError) as info:
            refused.reserve(OTHER)
        assert info.value.http_status == 503 and info.value.details["limit"] == 3
        assert registry.waiting() == 3 and registry.waiting(TENANT) == 2
    assert registry.waiting() == 0 and registry.waiting(TENANT) == 0
    with registry.slot() as again:
        again.reserve(TENANT)
        again.watch_event(1)
    assert registry.publish(TENANT, processed_news(1)) == 0  # gone with its request


@pytest.mark.parametrize("raw, expected", [("5", 5.0), ("0.25", 0.25), ("60", 60.0)])
def test_wait_seconds_accepts_a_number_up_to_the_maximum(raw, expected):
    with Flask(__name__).test_request_context(f"/?wait={raw}"):
        assert wait_seconds(60) == expected
    with Flask(__name__).test_request_context("/"):
        assert wait_seconds(60) is None


@pytest.mark.parametrize("raw", ["0", "-1", "61", "soon", "", "nan", "inf", "1e9"])
def test_wait_seconds_refuses_anything_else_naming_the_parameter(raw):
    with Flask(__name__).test_request_context(f"/?wait={raw}"), \
            pytest.raises(BadRequestError) as info:
        wait_seconds(60)
    assert info.value.details == {"fields": {"wait": "seconds, 0 < wait <= 60"}}
    assert "'wait'" in info.value.message


def test_a_reservation_is_announced_before_anything_is_stored_and_its_tenant_listed():
    arrived = []
    registry = Waiters(10, 10, on_arrival=arrived.append)
    with registry.slot() as slot:
        slot.reserve(TENANT)
        assert arrived == [TENANT]
        assert registry.tenants() == {TENANT}
    assert registry.tenants() == set()
    full = Waiters(0, 0, on_arrival=arrived.append)
    with full.slot() as refused, pytest.raises(TooManyWaitersError):
        refused.reserve(OTHER)
    assert arrived == [TENANT]  # a refused request is not announced
