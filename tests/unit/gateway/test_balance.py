"""gateway/balance.py: which process takes the next connection on the shared API port."""

import socket

import eventlet

from gateway.balance import Balance


def test_a_process_waits_while_it_has_more_connections_than_another_or_took_the_last():
    balance = Balance(2)
    pools = [balance.pool(1, 10), balance.pool(2, 10)]
    assert not balance.should_wait(0) and not balance.should_wait(1)  # nobody took one yet
    balance.accepted(0)
    assert balance.should_wait(0) and not balance.should_wait(1)  # a tie: the other's turn
    release = eventlet.event.Event()
    pools[1].spawn(release.wait)  # process 2 serves one connection, process 1 none
    assert not balance.should_wait(0) and balance.should_wait(1)
    release.send(None)
    pools[1].waitall()
    assert balance.should_wait(0) and not balance.should_wait(1)  # ended: a tie again


def test_the_pool_counts_a_connection_while_it_is_served_and_returns_what_it_returns():
    balance = Balance(3)
    pool = balance.pool(3, 10)
    gate = eventlet.event.Event()
    thread = pool.spawn(lambda: gate.wait() * 2)
    eventlet.sleep(0)
    assert [balance.should_wait(slot) for slot in range(3)] == [False, False, True]
    gate.send(21)
    assert thread.wait() == 42
    assert [balance.should_wait(slot) for slot in range(3)] == [False, False, False]


def test_a_waiting_process_still_accepts_when_the_others_never_take_it():
    """A stopped or stuck sibling delays a connection by MAX_DEFER_SECONDS, no more."""
    balance = Balance(2)
    busy = eventlet.event.Event()
    balance.pool(2, 10).spawn(busy.wait)
    balance.pool(1, 10).spawn(busy.wait)
    balance.pool(1, 10).spawn(busy.wait)  # process 1 has two, process 2 one: 1 should wait
    listener = eventlet.listen(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    try:
        assert balance.should_wait(0)
        accepted, _ = balance.listener(listener, 1).accept()
        accepted.sendall(b"ok")
        assert client.recv(2) == b"ok"
        accepted.close()
    finally:
        busy.send(None)
        client.close()
        listener.close()
