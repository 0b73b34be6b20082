"""Per-entity FIFO locks: news about one entity leaves in arrival order."""

import eventlet

from nameko_services.notifier.ordering import KeyedFifoLocks


def test_waiters_of_one_key_get_the_lock_in_arrival_order():
    locks = KeyedFifoLocks()
    order = []

    def forward(n):
        with locks.hold("execution:1"):
            eventlet.sleep(0.001 * (10 - n))  # earlier arrivals take longer: no overtaking
            order.append(n)

    pool = eventlet.GreenPool()
    for n in range(10):
        pool.spawn(forward, n)
    pool.waitall()
    assert order == list(range(10))


def test_different_keys_do_not_wait_for_each_other():
    locks = KeyedFifoLocks()
    release = eventlet.event.Event()
    done = []

    def slow():
        with locks.hold("execution:1"):
            release.wait()
            done.append("slow")

    def fast():
        with locks.hold("execution:2"):
            done.append("fast")

    slow_thread = eventlet.spawn(slow)
    eventlet.sleep(0)
    eventlet.spawn(fast).wait()
    assert done == ["fast"]
    release.send()
    slow_thread.wait()
    assert done == ["fast", "slow"]


def test_locks_are_forgotten_once_nobody_needs_them():
    locks = KeyedFifoLocks()
    with locks.hold("a"), locks.hold("b"):
        assert len(locks) == 2
    assert len(locks) == 0


def test_a_failing_holder_releases_its_key():
    locks = KeyedFifoLocks()
    try:
        with locks.hold("a"):
            raise ValueError("boom")
    except ValueError:
        pass
    with eventlet.Timeout(1), locks.hold("a"):
        pass
    assert len(locks) == 0
