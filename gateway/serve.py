"""Serve the gateway: `python -m gateway.serve --config nameko.yaml`.

eventlet.wsgi in front of the Flask app, pooled RPC and an event publisher for the views, and the
notification relay: a nameko ServiceRunner in this process whose BROADCAST handler hands every
`notification.published` to the app's NotificationHub (each gateway process gets every message
on its own auto-deleted queue). SIGTERM: stop accepting, close WebSockets with 1001, stop the
relay, exit 0.
"""
# ruff: noqa: E402  (eventlet must patch the standard library before anything else is imported)

import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import eventlet

eventlet.monkey_patch()
warnings.filterwarnings("ignore", category=eventlet.EventletDeprecationWarning)

import argparse
import contextlib
import logging
import logging.config
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import eventlet.event
import eventlet.wsgi
from greenlet import GreenletExit
from nameko.events import BROADCAST
from nameko.runners import ServiceRunner

from gateway.app import create_app
from nameko_services import green
from nameko_services.config import load_config
from nameko_services.domain import messages as m
from nameko_services.domain import sandboxing
from nameko_services.domain.settings import Settings
from nameko_services.extensions import event_handler

log = logging.getLogger("gateway.serve")

SHUTDOWN_GRACE_SECONDS = 10.0
SERVER_EXITED = "server exited"


def relay_service(hub: Any) -> type:
    """A tiny nameko service that forwards notifier broadcasts to `hub`.

    BROADCAST with reliable_delivery=False: nameko names the queue with a fresh uuid per process
    (the broadcast identifier), exclusive and auto-deleted, so every gateway process receives
    every notification and nothing piles up for a process that has gone.
    """

    class GatewayRelay:
        name = "gateway_relay"

        @event_handler(m.NOTIFIER, m.NOTIFICATION_PUBLISHED, handler_type=BROADCAST,
                       reliable_delivery=False)
        def on_notification_published(self, payload: dict[str, Any]) -> None:
            for item in payload.get("notifications") or ():
                hub.publish(item.get("tenant_id"), item.get("message"))

    return GatewayRelay


def _on_signals(signums: tuple[int, ...], callback: Any) -> None:
    """Call `callback(signum)` in a greenthread as soon as one of `signums` arrives.

    A Python signal handler alone runs only when the hub's epoll wait returns by itself (PEP 475
    retries it after EINTR); the wakeup fd makes the hub see the signal at once.
    """
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    for signum in signums:
        signal.signal(signum, lambda *_args: None)

    def watch() -> None:
        wakeup = writer  # keeps the write end (hence the wakeup fd) alive as long as we watch
        while wakeup.fileno() >= 0:
            data = reader.recv(64)
            if not data:
                return
            for signum in data:
                if signum in signums:
                    callback(signum)

    eventlet.spawn_n(watch)


def _configure_logging(config: dict[str, Any]) -> None:
    if config.get("LOGGING"):
        logging.config.dictConfig(config["LOGGING"])
    else:
        logging.basicConfig(level=logging.INFO)


def main(argv: list[str] | None = None) -> int:
    """Run until SIGTERM/SIGINT; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="gateway.serve", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="nameko.yaml", help="nameko.yaml-style config file")
    args = parser.parse_args(argv)

    config = load_config(args.config)
    _configure_logging(config)
    settings = Settings.from_mapping(config)
    rpc = green.RpcPool(config, size=20, timeout=settings.rpc_timeout_seconds)
    app = create_app(config, publish=green.Publisher(config), rpc=rpc)
    gateway = app.extensions["attune"]
    hub = gateway.notifications

    runner = ServiceRunner(config)
    runner.add_service(relay_service(hub))
    runner.start()

    try:
        listeners = [eventlet.listen((settings.api_host, settings.api_port)),
                     _socket_listener(sandboxing.host(settings).api_socket)]
    except OSError as exc:
        log.error("cannot listen on %s:%s or its socket: %s", settings.api_host,
                  settings.api_port, exc)
        runner.stop()
        return 1
    access_log = settings.log_level.upper() == "DEBUG"
    servers = [eventlet.spawn(
        eventlet.wsgi.server, listener, app, max_size=2000,
        log=logging.getLogger("gateway.access"), log_output=access_log,
    ) for listener in listeners]

    stopping = eventlet.event.Event()

    def request_stop(signum: int) -> None:
        if not stopping.ready():
            log.info("received %s, shutting down", signal.Signals(signum).name)
            stopping.send(signum)

    _on_signals((signal.SIGTERM, signal.SIGINT), request_stop)
    for server in servers:
        server.link(lambda _gt: stopping.ready() or stopping.send(SERVER_EXITED))
    log.info("gateway listening on %s (WebSocket %s/ws)", settings.api_url,
             settings.api_url.replace("http", "ws", 1))

    reason = stopping.wait()
    _shutdown(servers, hub, runner, rpc, gateway)
    if reason == SERVER_EXITED:
        log.error("the HTTP server stopped unexpectedly")
        return 1
    return 0


def _socket_listener(path: Path) -> Any:
    """The unix socket sandboxed actions reach the API through (bound into each sandbox):
    a stale one is replaced; anyone may connect, as anyone may reach the TCP port."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    listener = eventlet.listen(str(path), family=socket.AF_UNIX)
    path.chmod(0o666)
    return listener


def _shutdown(servers: list[Any], hub: Any, runner: ServiceRunner, rpc: green.RpcPool,
              gateway: Any) -> None:
    for server in servers:
        server.kill()  # stop accepting; the wsgi loop now waits for requests in flight
    closed = hub.close_all(1001, "server shutting down")
    log.info("closed %d websocket(s)", closed)
    with eventlet.Timeout(SHUTDOWN_GRACE_SECONDS, False), contextlib.suppress(GreenletExit):
        for server in servers:
            server.wait()
    stopped = False
    with eventlet.Timeout(SHUTDOWN_GRACE_SECONDS, False):
        runner.stop()
        stopped = True
    if not stopped:
        runner.kill()
    rpc.close()
    gateway.engine.dispose()
    log.info("gateway stopped")


if __name__ == "__main__":
    sys.exit(main())
