"""NotificationHub: tenant scoping, subscriptions, bounded outboxes and shutdown."""

import json

import eventlet

from gateway.api.ws import handle_command
from gateway.notifications import Client, NotificationHub


def message(entity_type="execution", entity_id=1, **data):
    return {"event": f"{entity_type}.x", "entity_type": entity_type, "entity_id": entity_id,
            "data": data, "timestamp": "2026-01-27T10:30:00Z"}


class Recorder:
    """A fake connection: collects what is sent, can be made slow, and records the close."""

    def __init__(self, gate=None):
        self.sent, self.closed_with, self.gate = [], None, gate

    def send(self, text):
        if self.gate is not None:
            self.gate.wait()
        self.sent.append(json.loads(text))

    def close(self, code, reason):
        self.closed_with = (code, reason)


def connect(hub, tenant_id, recorder):
    client = hub.client(tenant_id, recorder.send, recorder.close)
    eventlet.spawn(client.pump)
    return client


def drain():
    for _ in range(5):
        eventlet.sleep(0)


def test_a_client_gets_only_its_own_tenants_messages():
    hub = NotificationHub()
    mine, theirs = Recorder(), Recorder()
    connect(hub, 1, mine).subscribe("execution")
    connect(hub, 2, theirs).subscribe("execution")
    assert hub.publish(1, message(entity_id=10)) == 1
    drain()
    assert [m["entity_id"] for m in mine.sent] == [10]
    assert theirs.sent == []


def test_a_client_without_subscriptions_gets_nothing():
    hub = NotificationHub()
    quiet = Recorder()
    connect(hub, 1, quiet)
    assert hub.publish(1, message()) == 0
    drain()
    assert quiet.sent == []


def test_subscriptions_filter_by_type_and_id():
    hub = NotificationHub()
    rec = Recorder()
    client = connect(hub, 1, rec)
    client.subscribe("execution", 5)
    client.subscribe("event")
    for msg in (message("execution", 4), message("execution", 5), message("event", 9),
                message("rule", 5), message("inquiry", 5)):
        hub.publish(1, msg)
    drain()
    assert [(m["entity_type"], m["entity_id"]) for m in rec.sent] == [
        ("execution", 5), ("event", 9)]


def test_unsubscribe_by_id_type_or_everything():
    client = Client(1, lambda text: None)
    client.subscribe("execution", 5)
    client.subscribe("execution")
    client.subscribe("event")
    client.unsubscribe("execution", 5)
    assert client.subscriptions == {("execution", None), ("event", None)}
    client.unsubscribe("execution")
    assert client.subscriptions == {("event", None)}
    client.unsubscribe()
    assert client.subscriptions == set()


def test_a_slow_client_loses_messages_and_is_told_how_many_without_blocking_others():
    hub = NotificationHub(max_queue=3)
    gate = eventlet.event.Event()
    slow, fast = Recorder(gate), Recorder()
    connect(hub, 1, slow).subscribe("execution")
    connect(hub, 1, fast).subscribe("execution")
    drain()
    for n in range(10):
        hub.publish(1, message(entity_id=n))
        drain()  # the fast client keeps up; the slow one is stuck in its first send
    assert [m["entity_id"] for m in fast.sent] == list(range(10))
    gate.send()  # the slow one wakes up: one in flight, three queued, six dropped
    drain()
    assert [m.get("entity_id") for m in slow.sent[:4]] == [0, 1, 2, 3]
    assert slow.sent[4:] == [{"event": "notice", "message": "dropped 6 messages"}]


def test_replies_are_sent_even_when_notifications_are_dropped():
    client = Client(1, lambda text: None, max_queue=0)
    client.subscribe("execution")
    assert client.offer("{}") is False
    client.reply({"event": "pong"})
    assert client._next() == '{"event":"pong"}'


def test_close_all_closes_every_connection_with_1001():
    hub = NotificationHub()
    recs = [Recorder(), Recorder()]
    clients = [connect(hub, tenant, rec) for tenant, rec in zip((1, 2), recs, strict=True)]
    assert hub.close_all() == 2
    assert [rec.closed_with for rec in recs] == [(1001, "server shutting down")] * 2
    assert all(client.closed for client in clients)
    assert hub.publish(1, message()) == 0


def test_unregistered_clients_are_forgotten():
    hub = NotificationHub()
    client = connect(hub, 1, Recorder())
    hub.unregister(client)
    assert hub.clients() == []


def test_nonsense_tenants_and_messages_are_ignored():
    hub = NotificationHub()
    connect(hub, 1, Recorder()).subscribe("execution")
    assert hub.publish(None, message()) == 0
    assert hub.publish("x", message()) == 0
    assert hub.publish(1, None) == 0
    assert hub.publish("1", message()) == 1  # a JSON string id is still tenant 1


def test_commands_subscribe_unsubscribe_ping_and_errors():
    client = Client(1, lambda text: None)
    assert handle_command(client, '{"action":"ping"}') == {"event": "pong"}
    assert handle_command(client, '{"action":"subscribe","entity_type":"execution",'
                                  '"entity_id":4}') is None
    assert client.subscriptions == {("execution", 4)}
    assert handle_command(client, '{"action":"unsubscribe","entity_type":"execution"}') is None
    assert client.subscriptions == set()
    for bad in ("nope", "[1]", '{"action":"dance"}',
                '{"action":"subscribe","entity_type":"user"}',
                '{"action":"subscribe","entity_type":"execution","entity_id":"4"}',
                '{"action":"subscribe","entity_type":"execution","entity_id":true}',
                '{"action":"subscribe","entity_type":"execution","extra":1}'):
        reply = handle_command(client, bad)
        assert reply["event"] == "error" and reply["message"], bad
    assert client.subscriptions == set()


def test_live_output_goes_only_to_clients_subscribed_to_that_execution_by_id():
    hub = NotificationHub()
    by_id, by_type = Recorder(), Recorder()
    connect(hub, 1, by_id).subscribe("execution", 7)
    connect(hub, 1, by_type).subscribe("execution")
    output = {**message("execution", 7, lines=["hi"]), "event": "execution.output"}
    status = {**message("execution", 7, status="running"), "event": "execution.status_changed"}
    assert hub.publish(1, output) == 1
    assert hub.publish(1, status) == 2
    drain()
    assert [m["event"] for m in by_id.sent] == ["execution.output", "execution.status_changed"]
    assert [m["event"] for m in by_type.sent] == ["execution.status_changed"]


def test_a_tenants_client_arriving_is_told_and_its_tenant_listed():
    """presence.Presence hears of each client (its tenant's news is then published), and the
    relay's timer announces the tenants that still have one."""
    arrived = []
    hub = NotificationHub(on_arrival=arrived.append)
    first = connect(hub, 1, Recorder())
    connect(hub, 2, Recorder())
    assert arrived == [1, 2]
    assert hub.tenants() == {1, 2}
    hub.unregister(first)
    assert hub.tenants() == {2}
