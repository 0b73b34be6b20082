"""/ws over a real eventlet.wsgi server, and the broadcast relay that feeds it."""

import logging
import os
from types import SimpleNamespace

import eventlet
import eventlet.wsgi
import pytest
from nameko.runners import ServiceRunner
from nameko.standalone.events import event_dispatcher

from gateway.api import ws as ws_view
from gateway.serve import relay_service
from nameko_services.domain import messages as m
from tests.integration.rows import wait_until
from tests.support.e2e import NotificationSocket

pytestmark = pytest.mark.integration


@pytest.fixture
def ws_server(app):
    """The app on a real eventlet.wsgi server: its /ws URL and its pool of connection handlers."""
    listener = eventlet.listen(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    handlers = eventlet.GreenPool()
    server = eventlet.spawn(eventlet.wsgi.server, listener, app, log_output=False,
                            log=logging.getLogger("tests.wsgi"), custom_pool=handlers)
    yield SimpleNamespace(url=f"ws://127.0.0.1:{port}/ws", handlers=handlers)
    server.kill()
    # Stop this test's connection handlers too, and wait until they have released their sockets.
    for handler in list(handlers.coroutines_running):
        handler.kill()
    with eventlet.Timeout(10):
        handlers.waitall()
    listener.close()


@pytest.fixture
def ws_url(ws_server):
    return ws_server.url


@pytest.fixture
def hub(app):
    return app.extensions["attune"].notifications


@pytest.fixture
def user(make_user):
    """(tenant_id, access token) of a new tenant's admin."""
    info, headers = make_user()
    return info["tenant_id"], headers["Authorization"].split(" ", 1)[1]


@pytest.fixture
def sockets():
    made = []
    yield made
    for sock in made:
        sock.close()


def connect(sockets, url, token, **kwargs):
    sock = NotificationSocket.connect(url, token, **kwargs)
    sockets.append(sock)
    return sock


def note(entity_type="execution", entity_id=1, **data):
    return {"event": f"{entity_type}.status_changed", "entity_type": entity_type,
            "entity_id": entity_id, "data": data, "timestamp": "2026-01-27T10:30:00.000Z"}


def test_bearer_header_subscribe_and_receive(ws_url, hub, user, sockets):
    tenant_id, token = user
    feed = connect(sockets, ws_url, token)
    feed.subscribe("execution", 7)
    hub.publish(tenant_id, note(entity_id=6))
    hub.publish(tenant_id, note(entity_id=7, status="running"))
    assert feed.recv() == note(entity_id=7, status="running")


def test_first_message_auth_for_browsers(ws_url, hub, user, sockets):
    tenant_id, token = user
    feed = connect(sockets, ws_url, token, header_auth=False)
    feed.subscribe("event")
    hub.publish(tenant_id, note("event", 3))
    assert feed.recv()["entity_id"] == 3


def test_ping_pong_and_errors(ws_url, user, sockets):
    feed = connect(sockets, ws_url, user[1])
    feed.send({"action": "ping"})
    assert feed.recv() == {"event": "pong"}
    feed.ws.send("not json")
    assert feed.recv() == {"event": "error", "message": "Messages must be JSON objects"}
    feed.send({"action": "subscribe", "entity_type": "user"})
    assert feed.recv()["event"] == "error"


@pytest.mark.parametrize("first", [None, {"action": "ping"}, {"action": "auth", "token": "x"}])
def test_no_valid_auth_within_the_window_closes_4401(ws_url, sockets, monkeypatch, first):
    monkeypatch.setattr(ws_view, "AUTH_TIMEOUT_SECONDS", 0.3)
    feed = connect(sockets, ws_url, None)
    if first is not None:
        feed.send(first)
    assert feed.close_code() == 4401


def test_a_bad_bearer_header_closes_4401(ws_url, sockets):
    assert connect(sockets, ws_url, "forged.token.value").close_code() == 4401


def readers_on_closed_fds() -> list[int]:
    """File descriptors that are closed but still have an eventlet hub reader registered."""
    hub = eventlet.hubs.get_hub()
    stale = []
    for fd in list(hub.listeners[hub.READ]):
        try:
            os.fstat(fd)
        except OSError:
            stale.append(fd)
    return stale


def test_a_server_side_close_leaves_no_reader_on_a_freed_fd(ws_server, sockets):
    """A database connection reusing that fd number would fail with 'Second simultaneous read'.
    Judged on what this close leaves: the suite's process may hold earlier tests' readers."""
    before = set(readers_on_closed_fds())
    connect(sockets, ws_server.url, "forged.token.value")  # closed with 4401; we never answer
    wait_until(lambda: ws_server.handlers.running() == 0)
    assert set(readers_on_closed_fds()) - before == set()


def test_other_tenants_messages_never_arrive(ws_url, hub, user, make_user, sockets):
    tenant_id, token = user
    other_info, _ = make_user()
    feed = connect(sockets, ws_url, token)
    feed.subscribe("execution")
    hub.publish(other_info["tenant_id"], note(entity_id=1))
    hub.publish(tenant_id, note(entity_id=2))
    assert feed.recv()["entity_id"] == 2
    assert feed.sync() == []


def test_large_messages_arrive_intact(ws_url, hub, user, sockets):
    """stack-notes P8: frames of a few hundred kB are written whole."""
    tenant_id, token = user
    feed = connect(sockets, ws_url, token)
    feed.subscribe("execution")
    big = [note(entity_id=n, blob=chr(65 + n) * 200_000) for n in range(5)]
    for message in big:
        hub.publish(tenant_id, message)
    assert [feed.recv() for _ in big] == big


def test_shutdown_closes_every_socket_with_1001(ws_url, hub, user, sockets):
    feed = connect(sockets, ws_url, user[1])
    feed.sync()
    assert hub.close_all() == 1
    assert feed.close_code() == 1001


def test_a_disconnected_client_is_forgotten(ws_url, hub, user, sockets):
    feed = connect(sockets, ws_url, user[1])
    feed.sync()
    assert len(hub.clients()) == 1
    feed.close()
    wait_until(lambda: hub.clients() == [])


class Capture:
    def __init__(self):
        self.published = []

    def publish(self, tenant_id, message):
        self.published.append((tenant_id, message))

    def on_broadcast(self, payload):  # as gateway.revocations.Revocations
        self.published.append(("revoked", payload))


def test_every_gateway_process_relay_receives_every_notification_and_revocation(config):
    """BROADCAST: each relay (one per gateway process) has its own queue."""
    hubs, runners = [Capture(), Capture()], []
    revoked = {"user_id": 3, "valid_after": 1796425012.349}
    try:
        for hub in hubs:
            runner = ServiceRunner(config)
            runner.add_service(relay_service(hub, hub))
            runner.start()
            runners.append(runner)
        dispatch = event_dispatcher(config)
        dispatch(m.NOTIFIER, m.NOTIFICATION_PUBLISHED,
                 {"notifications": [{"tenant_id": 4, "message": note()}]})
        dispatch(m.GATEWAY, m.TOKENS_REVOKED, revoked)
        wait_until(lambda: all(len(hub.published) == 2 for hub in hubs))
    finally:
        for runner in runners:
            runner.stop()
    assert sorted(map(str, hubs[0].published)) == sorted(map(str, hubs[1].published))
    assert sorted(map(str, hubs[0].published)) == sorted(
        map(str, [(4, note()), ("revoked", revoked)]))
