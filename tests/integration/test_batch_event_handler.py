"""batch_event_handler on a real broker: messages that arrive while a batch runs form the next
batch (those of every queue of the method, in arrival order), each message is handled once,
all of them are acknowledged, and a batch that met an outage is delivered again."""

import eventlet
import pytest
from sqlalchemy.exc import OperationalError as DatabaseUnavailable

from nameko_services import extensions, green
from nameko_services.extensions import batch_event_handler
from tests.integration import rows

pytestmark = pytest.mark.integration


def test_messages_arriving_during_a_batch_are_handled_together_next(container_factory, config):
    source = rows.unique("batchsrc")
    batches: list[list[int]] = []
    release = eventlet.event.Event()

    class Batching:
        name = rows.unique("batching")

        @batch_event_handler(source, "thing.happened")
        def on_things(self, batch):
            batches.append([delivery.payload["n"] for delivery in batch])
            if len(batches) == 1:
                release.wait()  # busy: the next messages queue up meanwhile

    container = container_factory(Batching, config)
    container.start()
    publish = green.Publisher(config)
    publish(source, "thing.happened", {"n": 0})
    rows.wait_until(lambda: batches == [[0]])
    for n in range(1, 6):
        publish(source, "thing.happened", {"n": n})
    handler = next(iter(container.entrypoints))
    rows.wait_until(lambda: len(handler.batches.of("on_things").pending) == 5)
    release.send()
    rows.wait_until(lambda: len(batches) == 2)
    assert batches == [[0], [1, 2, 3, 4, 5]]
    container.stop()
    # everything was acknowledged: a new consumer of the same queue gets nothing
    seen: list[list[int]] = []

    class Again(Batching):
        @batch_event_handler(source, "thing.happened")
        def on_things(self, batch):
            seen.append([delivery.payload["n"] for delivery in batch])

    Again.name = Batching.name
    container_factory(Again, config).start()
    publish(source, "thing.happened", {"n": 6})
    rows.wait_until(lambda: seen)
    assert seen == [[6]]


def test_the_queues_of_one_method_share_its_batch_in_arrival_order(container_factory, config):
    source = rows.unique("batchsrc")
    batches: list[list[tuple[str, int]]] = []
    release = eventlet.event.Event()

    class Batching:
        name = rows.unique("batching")

        @batch_event_handler(source, "thing.created")
        @batch_event_handler(source, "thing.changed")
        def on_things(self, batch):
            batches.append([(d.event_type, d.payload["n"]) for d in batch])
            if len(batches) == 1:
                release.wait()

    container = container_factory(Batching, config)
    container.start()
    publish = green.Publisher(config)
    publish(source, "thing.created", {"n": 0})
    rows.wait_until(lambda: batches)
    handler = next(iter(container.entrypoints))
    sent = [("thing.changed", 1), ("thing.created", 2), ("thing.changed", 3)]
    for count, (event_type, n) in enumerate(sent, 1):
        publish(source, event_type, {"n": n})
        rows.wait_until(lambda count=count: len(handler.batches.of("on_things").pending) == count)
    release.send()
    rows.wait_until(lambda: len(batches) == 2)
    assert batches == [[("thing.created", 0)], sent]  # one worker at a time, in arrival order


def test_a_batch_that_met_an_outage_is_delivered_again_whole(container_factory, config,
                                                             monkeypatch):
    monkeypatch.setattr(extensions, "OUTAGE_RETRY_SECONDS", 0)
    source = rows.unique("batchsrc")
    batches: list[list[int]] = []
    release = eventlet.event.Event()

    class Batching:
        name = rows.unique("batching")

        @batch_event_handler(source, "thing.happened")
        def on_things(self, batch):
            batches.append(sorted(delivery.payload["n"] for delivery in batch))
            if len(batches) == 1:
                release.wait()
            if len(batches) == 2:
                raise DatabaseUnavailable("SELECT 1", {}, Exception("the database restarts"))

    container = container_factory(Batching, config)
    container.start()
    publish = green.Publisher(config)
    publish(source, "thing.happened", {"n": 0})
    rows.wait_until(lambda: batches)
    handler = next(iter(container.entrypoints))
    for n in (1, 2, 3):
        publish(source, "thing.happened", {"n": n})
    rows.wait_until(lambda: len(handler.batches.of("on_things").pending) == 3)
    release.send()
    rows.wait_until(lambda: sum(len(b) for b in batches[2:]) >= 3)
    assert batches[1] == [1, 2, 3]
    assert sorted(n for batch in batches[2:] for n in batch) == [1, 2, 3]  # each once again
