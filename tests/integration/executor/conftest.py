"""Fixtures for executor tests: a tenant per test, a listener, an executor container."""

import pytest
from nameko.testing.services import entrypoint_waiter

from nameko_services import green
from nameko_services.domain import messages
from nameko_services.executor.service import ExecutorService
from tests.integration import rows

pytestmark = pytest.mark.integration


@pytest.fixture
def received():
    return []


@pytest.fixture
def executor(tenant, container_factory, config, received):
    """A listener for everything the executor publishes, then a started executor (its start-up
    resume finished). `tenant` comes first so it is deleted after the containers die."""
    subscriptions = [
        (messages.EXECUTOR, messages.EXECUTION_SCHEDULED),
        (messages.EXECUTOR, messages.RULE_TRIGGERED),
        (messages.EXECUTOR, messages.EVENT_PROCESSED),
        (messages.EXECUTIONS, messages.EXECUTION_CREATED),
        (messages.EXECUTIONS, messages.EXECUTION_STATUS_CHANGED),
    ]
    container_factory(rows.listener(subscriptions, received), config).start()
    container = container_factory(ExecutorService, config)
    with entrypoint_waiter(container, "resume", timeout=30):
        container.start()
    return container


@pytest.fixture
def dispatch(config):
    """Publish as another service would: dispatch(source, event_type, payload) (with the
    follow-ups the services' publisher derives)."""
    return green.Publisher(config)
