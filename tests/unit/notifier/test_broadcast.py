"""The notifier's batched broadcast: what is ready while one batch is published goes out next."""

import eventlet
import pytest

from nameko_services.notifier.broadcast import Batcher


def test_alone_an_item_is_flushed_at_once_by_itself():
    flushed = []
    Batcher(flushed.append).submit("a")
    assert flushed == [["a"]]


def test_items_submitted_during_a_flush_leave_together_in_order_in_the_next_batch():
    flushed = []
    release = eventlet.event.Event()

    def flush(batch):
        flushed.append(batch)
        if len(flushed) == 1:
            release.wait()  # the first publish is slow: others queue meanwhile

    batcher = Batcher(flush)
    first = eventlet.spawn(batcher.submit, 0)
    eventlet.sleep(0)
    others = [eventlet.spawn(batcher.submit, i) for i in range(1, 6)]
    eventlet.sleep(0)
    assert flushed == [[0]] and not any(gt.dead for gt in others)  # they wait for their batch
    release.send()
    for gt in [first, *others]:
        gt.wait()
    assert flushed == [[0], [1, 2, 3, 4, 5]]


def test_a_failed_flush_raises_in_every_caller_of_that_batch_only():
    calls = []

    def flush(batch):
        calls.append(batch)
        if len(calls) == 1:
            eventlet.sleep(0)
            raise ConnectionError("broker gone")

    batcher = Batcher(flush)
    first = eventlet.spawn(batcher.submit, "a")
    eventlet.sleep(0)
    second = eventlet.spawn(batcher.submit, "b")
    with pytest.raises(ConnectionError):
        first.wait()
    second.wait()  # its own batch went out
    assert calls == [["a"], ["b"]]
