"""The AMQP entrypoints every service uses: one tolerant queue consumer behind rpc and events."""

from types import SimpleNamespace

import pytest
from nameko import messaging

from nameko_services.executor.service import ExecutorService
from nameko_services.extensions import QueueConsumer
from nameko_services.notifier.service import NotifierService
from nameko_services.sensor.service import SensorService
from nameko_services.worker.service import WorkerService


class DroppedMessage:
    """A message whose connection the broker reset between the liveness check and the ack."""

    def __init__(self):
        self.channel = SimpleNamespace(connection=object())

    def ack(self):
        raise ConnectionResetError(104, "Connection reset by peer")

    def requeue(self):
        raise BrokenPipeError(32, "Broken pipe")


def test_nameko_alone_lets_the_socket_error_escape():
    """Why the subclass exists: this exception kills a nameko container."""
    with pytest.raises(ConnectionResetError):
        messaging.QueueConsumer().ack_message(DroppedMessage())


def test_a_reset_connection_makes_ack_and_requeue_no_ops(caplog):
    consumer = QueueConsumer()
    consumer.ack_message(DroppedMessage())
    consumer.requeue_message(DroppedMessage())
    assert "redelivered" in caplog.text and "the broker has it" in caplog.text


@pytest.mark.parametrize("service", [ExecutorService, WorkerService, SensorService,
                                     NotifierService])
def test_every_amqp_entrypoint_uses_the_tolerant_consumer(service):
    entrypoints = [getattr(service, name) for name in dir(service)
                   if getattr(getattr(service, name), "nameko_entrypoints", None)]
    consumers = []
    for method in entrypoints:
        for entrypoint in method.nameko_entrypoints:
            owner = getattr(entrypoint, "rpc_consumer", entrypoint)
            if hasattr(owner, "queue_consumer"):
                consumers.append(type(owner.queue_consumer))
    assert consumers and set(consumers) == {QueueConsumer}
