"""GET /health against the real database and broker, with real and stubbed service pings."""

import contextlib
import copy
from types import SimpleNamespace

import eventlet
import pytest
from nameko.rpc import rpc

from gateway.api import health
from gateway.app import create_app
from nameko_services import green

pytestmark = pytest.mark.integration

SERVICES = ("executor", "worker", "sensor", "notifier")


class StubPool:
    """RpcPool's interface: `with pool.get() as proxy: proxy.<service>.ping()`."""

    def __init__(self, **pings):
        self.proxy = SimpleNamespace(**{name: SimpleNamespace(ping=fn) for name, fn in
                                        pings.items()})

    @contextlib.contextmanager
    def get(self):
        yield self.proxy


@pytest.fixture(autouse=True)
def no_leftover_workers(engine):
    """Worker rows left 'online' by other modules' killed test containers are not ours."""
    from sqlalchemy import text

    with engine.begin() as conn:
        conn.execute(text("UPDATE workers SET status = 'offline' WHERE status = 'online'"))


def test_a_worker_that_stopped_heartbeating_makes_health_degraded(app, client, engine):
    from sqlalchemy import text

    app.extensions["attune"].rpc = StubPool(**dict.fromkeys(SERVICES, answer_ok))
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO workers (name, hostname, pid, status, heartbeat_at)"
            " VALUES ('ghost:1', 'ghost', 1, 'online', now() - interval '1 hour')"))
    try:
        response = client.get("/health")
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM workers WHERE name = 'ghost:1'"))
    assert response.status_code == 503
    assert "ghost:1" in response.json["checks"]["worker"]


def answer_ok():
    return {"status": "ok"}


def test_without_rpc_health_is_degraded_but_still_checks_database_and_broker(client):
    response = client.get("/health")
    assert response.status_code == 503
    body = response.json
    assert body["status"] == "degraded"
    assert set(body["checks"]) == {"database", "broker", *SERVICES}
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"] == "ok"
    for name in SERVICES:
        assert body["checks"][name].startswith("error: "), name


def test_health_is_ok_when_every_service_answers(app, client):
    app.extensions["attune"].rpc = StubPool(**dict.fromkeys(SERVICES, answer_ok))
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "checks": dict.fromkeys(
        ("database", "broker", *SERVICES), "ok"), "gateway_process": 1}


def test_a_silent_service_is_an_error_at_the_deadline_not_a_hang(app, client, monkeypatch):
    monkeypatch.setattr(health, "CHECK_TIMEOUT_SECONDS", 0.2)
    release = eventlet.event.Event()
    pings = dict.fromkeys(SERVICES, answer_ok)
    pings["worker"] = lambda: release.wait()
    app.extensions["attune"].rpc = StubPool(**pings)
    try:
        response = client.get("/health")
    finally:
        release.send({"status": "ok"})
    assert response.status_code == 503
    assert response.json["checks"]["worker"] == "error: no answer within 0.2 s"
    assert response.json["checks"]["executor"] == "ok"


def test_a_failing_or_odd_answer_is_named(app, client):
    def boom():
        raise RuntimeError("exploded")

    pings = dict.fromkeys(SERVICES, answer_ok)
    pings.update(sensor=boom, notifier=lambda: "pong")
    app.extensions["attune"].rpc = StubPool(**pings)
    checks = client.get("/health").json["checks"]
    assert checks["sensor"] == "error: RuntimeError: exploded"
    assert checks["notifier"].startswith("error: RuntimeError: unexpected answer")


def test_unreachable_database_and_broker_are_reported_without_credentials(config):
    broken = copy.deepcopy(config)
    broken["ATTUNE"]["database_url"] = "postgresql+psycopg2://attune:hunter2pw@127.0.0.1:1/x"
    broken["AMQP_URI"] = "amqp://guest:hunter2pw@127.0.0.1:1/x"
    app = create_app(broken)
    app.extensions["attune"].rpc = StubPool(**dict.fromkeys(SERVICES, answer_ok))
    response = app.test_client().get("/health")
    assert response.status_code == 503
    checks = response.json["checks"]
    assert checks["database"].startswith("error: ")
    assert checks["broker"].startswith("error: ")
    assert "hunter2pw" not in response.get_data(as_text=True)


def test_real_pooled_rpc_pings_a_running_service(app, client, config, container_factory):
    class Executor:
        name = "executor"

        @rpc
        def ping(self):
            return {"service": "executor", "status": "ok"}

    container_factory(Executor, config).start()
    pool = green.RpcPool(config, size=4, timeout=5)
    app.extensions["attune"].rpc = pool
    try:
        checks = client.get("/health").json["checks"]
    finally:
        pool.close()
    assert checks["executor"] == "ok"
    assert checks["worker"].startswith("error: ")  # nobody serves it in this test
