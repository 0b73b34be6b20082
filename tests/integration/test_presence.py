"""News nobody listens to is not published (domain/presence.py), on a real broker: a service's
Dispatcher holds back a tenant's live news once the announcements it hears leave that tenant
out, sends it again as soon as one names it, always sends what moves state, and fails open
when the announcements stop."""

import copy
import threading

import pytest
from nameko.testing.services import entrypoint_hook

from nameko_services import green
from nameko_services.domain import messages as m
from nameko_services.domain import presence
from nameko_services.extensions import Dispatcher, ListenerTable, rpc
from tests.integration import rows

pytestmark = pytest.mark.integration

INTERVAL = 0.2  # seconds: the whole test plays out in a few of them
WATCHED, UNWATCHED = 1, 2


class Gateways:
    """Stands in for the gateways' relay timers: announces `tenants` every interval."""

    def __init__(self, config):
        self.publish = green.Publisher(config)
        self.tenants: set[int] = set()
        self.speaking = threading.Event()
        self.speaking.set()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def announce(self):
        self.publish(m.GATEWAY, m.LISTENERS_PRESENT,
                     presence.announcement(self.tenants, INTERVAL))

    def _run(self):
        while not self.stopped.wait(INTERVAL):
            if self.speaking.is_set():
                self.announce()


@pytest.fixture
def news_config(config):
    cfg = copy.deepcopy(config)
    cfg["ATTUNE"]["news"] = {"interval_seconds": INTERVAL}
    return cfg


@pytest.fixture
def gateways(news_config):
    gateways = Gateways(news_config)
    yield gateways
    gateways.stopped.set()
    gateways.thread.join()


def test_live_news_goes_only_for_tenants_a_gateway_announced(container_factory, news_config,
                                                            gateways):
    received: list = []
    subscriptions = [(m.EXECUTIONS, m.EXECUTION_STATUS_CHANGED),
                     (m.EXECUTIONS, m.EXECUTION_FOLLOW_UP)]
    container_factory(rows.listener(subscriptions, received), news_config).start()

    class Newsy:
        name = rows.unique("newsy")
        dispatch = Dispatcher()

        @rpc
        def send(self, tenant_id, **extra):
            self.dispatch(m.EXECUTION_STATUS_CHANGED, {
                "execution_id": 1, "tenant_id": tenant_id, "status": "running",
                "previous": "scheduled", "parent_execution_id": None, **extra},
                source=m.EXECUTIONS)

    container = container_factory(Newsy, news_config)
    container.start()
    [table] = [ext for ext in container.subextensions if isinstance(ext, ListenerTable)]

    def news(kind=m.EXECUTION_STATUS_CHANGED):
        return [payload["tenant_id"] for _, event_type, payload in received
                if event_type == kind]

    def sent(tenant_id, **extra):
        with entrypoint_hook(container, "send") as call:
            call(tenant_id, **extra)

    sent(UNWATCHED)  # learning: it publishes everything
    rows.wait_until(lambda: news() == [UNWATCHED])

    gateways.tenants = {WATCHED}
    rows.wait_until(table.table.knows, deadline=10)
    sent(UNWATCHED)
    sent(UNWATCHED, status="succeeded", parent_execution_id=7)  # moves its parent: always sent
    sent(WATCHED)
    rows.wait_until(lambda: news(m.EXECUTION_FOLLOW_UP) == [UNWATCHED]
                    and news() == [UNWATCHED, UNWATCHED, WATCHED])

    gateways.tenants = {WATCHED, UNWATCHED}
    gateways.announce()  # as the gateway does when a tenant's first listener arrives
    rows.wait_until(lambda: table.listening(UNWATCHED))
    sent(UNWATCHED)
    rows.wait_until(lambda: news() == [UNWATCHED, UNWATCHED, WATCHED, UNWATCHED])

    gateways.tenants = {WATCHED}
    rows.wait_until(lambda: not table.listening(UNWATCHED), deadline=10)
    gateways.speaking.clear()  # no gateway any more: after three silent intervals, fail open
    rows.wait_until(lambda: not table.table.knows(), deadline=10)
    sent(UNWATCHED)
    rows.wait_until(lambda: news().count(UNWATCHED) == 4)
