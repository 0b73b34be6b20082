"""batch_event_handler on a real broker: messages that arrive while a batch runs form the next
batch, each message is handled once, and all of them are acknowledged."""

import eventlet
import pytest

from nameko_services import green
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
        def on_things(self, payloads):
            batches.append([p["n"] for p in payloads])
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
    rows.wait_until(lambda: len(handler._pending) == 5)
    release.send()
    rows.wait_until(lambda: len(batches) == 2)
    assert batches == [[0], [1, 2, 3, 4, 5]]
    container.stop()
    # everything was acknowledged: a new consumer of the same queue gets nothing
    seen: list[list[int]] = []

    class Again(Batching):
        @batch_event_handler(source, "thing.happened")
        def on_things(self, payloads):
            seen.append([p["n"] for p in payloads])

    Again.name = Batching.name
    container_factory(Again, config).start()
    publish(source, "thing.happened", {"n": 6})
    rows.wait_until(lambda: seen)
    assert seen == [[6]]
