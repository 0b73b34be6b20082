"""The heap scheduler: order, replacement, removal, wake-ups (real green time, short waits)."""

import threading
from datetime import UTC, datetime, timedelta

import pytest

from nameko_services.sensor.scheduler import Scheduler


def now():
    return datetime.now(UTC)


@pytest.fixture
def running():
    """A scheduler whose loop runs in a thread; calls are recorded as (key, due, called_at)."""
    scheduler, calls, done = Scheduler(), [], threading.Event()
    repeat = {}

    def on_due(key, item, due):
        calls.append((key, due, now()))
        done.set()
        return repeat.get(key, lambda d: None)(due)

    thread = threading.Thread(target=scheduler.run, args=(on_due,), daemon=True)
    thread.start()
    yield scheduler, calls, done, repeat
    scheduler.stop()
    thread.join(5)


def wait_for(predicate, timeout=5.0):
    deadline = now() + timedelta(seconds=timeout)
    while not predicate():
        assert now() < deadline, "condition not met before the deadline"
        threading.Event().wait(0.005)


def test_due_entries_fire_in_time_order_never_early(running):
    scheduler, calls, _, _ = running
    start = now()
    scheduler.put("b", start + timedelta(milliseconds=80), None)
    scheduler.put("a", start + timedelta(milliseconds=40), None)
    wait_for(lambda: len(calls) == 2)
    assert [c[0] for c in calls] == ["a", "b"]
    assert all(called >= due for _, due, called in calls)


def test_an_earlier_entry_wakes_a_sleeping_loop(running):
    scheduler, calls, _, _ = running
    scheduler.put("late", now() + timedelta(hours=1), None)
    threading.Event().wait(0.02)  # let the loop go to sleep on the far entry
    scheduler.put("soon", now() + timedelta(milliseconds=20), None)
    wait_for(lambda: len(calls) == 1)
    assert calls[0][0] == "soon"


def test_replaced_and_removed_entries_do_not_fire(running):
    scheduler, calls, _, _ = running
    t = now()
    scheduler.put("moved", t + timedelta(milliseconds=20), None)
    scheduler.put("moved", t + timedelta(milliseconds=60), None)
    scheduler.put("gone", t + timedelta(milliseconds=30), None)
    scheduler.remove("gone")
    scheduler.put("marker", t + timedelta(milliseconds=120), None)
    wait_for(lambda: any(c[0] == "marker" for c in calls))
    assert [(c[0], c[1]) for c in calls] == [
        ("moved", t + timedelta(milliseconds=60)), ("marker", t + timedelta(milliseconds=120))
    ]
    assert scheduler.keys() == set()


def test_the_callback_returns_the_next_due_time(running):
    scheduler, calls, _, repeat = running
    t = now()
    repeat["tick"] = lambda due: due + timedelta(milliseconds=20)
    scheduler.put("tick", t + timedelta(milliseconds=20), None)
    wait_for(lambda: len(calls) >= 3)
    dues = [c[1] for c in calls[:3]]
    assert dues == [t + timedelta(milliseconds=20 * k) for k in (1, 2, 3)]


def test_a_failing_callback_drops_its_key_and_the_loop_goes_on():
    scheduler, calls = Scheduler(), []

    def on_due(key, item, due):
        calls.append(key)
        if key == "bad":
            raise RuntimeError("boom")
        return None

    thread = threading.Thread(target=scheduler.run, args=(on_due,), daemon=True)
    thread.start()
    t = now()
    scheduler.put("bad", t, None)
    scheduler.put("good", t + timedelta(milliseconds=20), None)
    wait_for(lambda: calls == ["bad", "good"])
    assert scheduler.keys() == set()
    scheduler.stop()
    thread.join(5)
