"""Fixtures for sensor tests: a tenant per test, started sensor containers, a rule helper."""

import pytest
from nameko.standalone.events import event_dispatcher
from nameko.testing.services import entrypoint_waiter

from nameko_services.domain import messages
from nameko_services.sensor.service import SensorService
from nameko_services.sensor.timer_extensions import TimerHeap
from tests.integration import rows

pytestmark = pytest.mark.integration


@pytest.fixture
def received():
    return []


@pytest.fixture
def start_sensor(tenant, container_factory, config, received):
    """Start a sensor container (its start-up resync done). A listener on the sensor's events
    comes first; `tenant` comes first so it is deleted after the containers die."""
    container_factory(
        rows.listener([(messages.SENSOR, messages.EVENT_CREATED)], received), config
    ).start()

    def start():
        container = container_factory(SensorService, config)
        with entrypoint_waiter(container, "resync", timeout=30):
            container.start()
        return container

    return start


@pytest.fixture
def dispatch(config):
    return event_dispatcher(config)


def timers_held(container):
    """The trigger ids in the container's timer heap."""
    [heap] = [ext for ext in container.subextensions if isinstance(ext, TimerHeap)]
    return heap.scheduler.keys()
