"""Serve the gateway: `python -m gateway.serve --config nameko.yaml`.

eventlet.wsgi in front of the Flask app, pooled RPC and an event publisher for the views, and the
notification relay: a nameko ServiceRunner in each serving process whose BROADCAST handler hands
every `notification.published` to that process's NotificationHub and to its requests waiting on
an execution (`?wait=`, waiters.py); each gateway process gets every message on its own
auto-deleted queue. Its timer announces the tenants those have, every
`ATTUNE.news.interval_seconds` (domain/presence.py: live news nobody listens to is not sent).
A green thread deletes the rate-limit buckets that are full again (gateway/ratelimit.py).
This process binds the API port and the sandboxes' socket (one gateway per run dir: a second
one refuses to start) and builds the app; with `ATTUNE.gateway.processes`
(or --processes) above 1 it then forks that many processes serving both (each new connection on
the port goes to the process with the fewest open ones: gateway/balance.py) and supervises
them: one that ends by itself ends them all (exit 1), so that its supervisor (`attune
supervise`, systemd) starts the gateway afresh. SIGTERM: stop accepting, answer waiting
requests at once, close WebSockets with 1001, stop the relay, exit 0.
"""
# ruff: noqa: E402  (eventlet must patch the standard library before anything else is imported)

import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import eventlet

eventlet.monkey_patch()
warnings.filterwarnings("ignore", category=eventlet.EventletDeprecationWarning)

import argparse
import contextlib
import ctypes
import dataclasses
import fcntl
import gc
import logging
import logging.config
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import eventlet.event
import eventlet.hubs
import eventlet.patcher
import eventlet.wsgi
from greenlet import GreenletExit
from nameko.events import BROADCAST
from nameko.runners import ServiceRunner
from nameko.timer import timer

from gateway import ratelimit
from gateway.app import create_app
from gateway.balance import Balance
from nameko_services import green, logs, metrics, tracing
from nameko_services.config import load_config
from nameko_services.domain import messages as m
from nameko_services.domain import sandboxing
from nameko_services.domain.settings import WSGI_GREENTHREADS, GatewaySettings, Settings
from nameko_services.extensions import event_handler

log = logging.getLogger("gateway.serve")

SHUTDOWN_GRACE_SECONDS = 10.0
SERVER_EXITED = "server exited"
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)
# The supervisor blocks in waitpid: eventlet's green one polls every 10 ms.
_blocking_waitpid = eventlet.patcher.original("os").waitpid


def relay_service(hub: Any, revocations: Any, waiters: Any = None, presence: Any = None) -> type:
    """A tiny nameko service that forwards notifier broadcasts to `hub` (WebSocket clients) and
    `waiters` (requests waiting on an execution, `?wait=`), and other gateways' token
    revocations to `revocations`; with `presence`, announces the tenants those listen for.

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
                if waiters is not None:
                    waiters.publish(item.get("tenant_id"), item.get("message"))

        @event_handler(m.GATEWAY, m.TOKENS_REVOKED, handler_type=BROADCAST,
                       reliable_delivery=False)
        def on_tokens_revoked(self, payload: dict[str, Any]) -> None:
            revocations.on_broadcast(payload)

        if presence is not None:
            @timer(interval=presence.interval_seconds)
            def announce(self) -> None:
                """The tenants with a WebSocket client or a waiting request here, every
                interval."""
                presence.tick(hub.tenants()
                              | (waiters.tenants() if waiters is not None else set()))

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
    logs.set_service("gateway")
    if config.get("LOGGING"):
        logging.config.dictConfig(config["LOGGING"])
    else:
        logging.basicConfig(level=logging.INFO)


def main(argv: list[str] | None = None) -> int:
    """Run until SIGTERM/SIGINT; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="gateway.serve", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="nameko.yaml", help="nameko.yaml-style config file")
    parser.add_argument("--processes", type=int, default=None,
                        help="serving processes (default: ATTUNE.gateway.processes)")
    args = parser.parse_args(argv)

    config = load_config(args.config)
    _configure_logging(config)
    settings = Settings.from_mapping(config)
    if args.processes is not None:
        settings = dataclasses.replace(settings, gateway=GatewaySettings.from_mapping(
            {"processes": args.processes}))
    count = settings.gateway.processes
    socket_path = sandboxing.host(settings).api_socket
    try:
        _hold_socket_lock(socket_path)
    except OSError:
        log.error("another gateway serves %s (this run dir's sandbox socket): stop it first, "
                  "or give this one a run dir of its own (ATTUNE_RUN_DIR)", socket_path)
        return 1
    try:
        port = _port_listener(settings)
        api_socket = _socket_listener(socket_path)
    except OSError as exc:
        log.error("cannot listen on %s:%s or its socket: %s", settings.api_host,
                  settings.api_port, exc)
        return 1
    rpc = green.RpcPool(config, size=20, timeout=settings.rpc_timeout_seconds)
    app = create_app(config, publish=green.Publisher(config), rpc=rpc)
    log.info("gateway listening on %s (WebSocket %s/ws) with %d process(es)", settings.api_url,
             settings.api_url.replace("http", "ws", 1), count)

    if count == 1:
        return serve(config, app, [port, api_socket], 1)
    balance = Balance(count)  # shared with the forked processes: made before the fork

    def serve_one(number: int) -> int:
        return serve(config, app, [port, api_socket], number, balance)

    return supervise(count, port, serve_one)


def serve(config: dict[str, Any], app: Any, listeners: list[Any], number: int,
          balance: Balance | None = None) -> int:
    """Serve `listeners` with `app` and relay notifications to its WebSockets until SIGTERM or
    SIGINT; the exit code. `number` (1..processes) is this process's, shown by /health; with
    several, `balance` evens out their shares of the first listener's (the port's) connections."""
    tracing.configure(config, "gateway")  # in the serving process: its exporter's thread
    gateway = app.extensions["attune"]
    gateway.process = number
    hub = gateway.notifications
    runner = ServiceRunner(config)
    runner.add_service(relay_service(hub, gateway.revocations, gateway.waiters, gateway.presence))
    runner.start()
    served: list[tuple[Any, Any]] = [(listener, None) for listener in listeners]  # , its pool
    if balance is not None:
        served[0] = (balance.listener(listeners[0], number),
                     balance.pool(number, WSGI_GREENTHREADS))
    servers = [eventlet.spawn(  # the access log is the app's (request_log.py), not eventlet's
        eventlet.wsgi.server, listener, app, max_size=WSGI_GREENTHREADS, custom_pool=pool,
        log=logging.getLogger("gateway.wsgi"), log_output=False,
    ) for listener, pool in served]
    limits = app.extensions.get(ratelimit.EXTENSION)
    sweeper = eventlet.spawn(ratelimit.sweep_forever, limits) if limits else None

    stopping = eventlet.event.Event()

    def request_stop(signum: int) -> None:
        if not stopping.ready():
            log.info("received %s, shutting down", signal.Signals(signum).name)
            stopping.send(signum)

    _on_signals(tuple(STOP_SIGNALS), request_stop)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # blocked by supervise() till now
    for server in servers:
        server.link(lambda _gt: stopping.ready() or stopping.send(SERVER_EXITED))
    log.info("gateway process %d serving", number)

    reason = stopping.wait()
    if sweeper is not None:
        sweeper.kill()
    _shutdown(servers, runner, gateway)
    if reason == SERVER_EXITED:
        log.error("the HTTP server stopped unexpectedly")
        return 1
    return 0


def supervise(count: int, port: Any, serve_one: Callable[[int], int]) -> int:
    """Fork `count` processes, each running `serve_one(number)` on what this process has built
    (the port's listener among it), and wait for them: SIGTERM or SIGINT is passed on to each;
    one that ends by itself ends the others (exit 1), as a single gateway's failure ends it.
    Exit 0 when all stopped cleanly."""
    gc.freeze()  # what was built so far stays shared with the children: the collector never
    # writes to those pages again, so copy-on-write leaves them shared
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)  # until each has its own handlers
    children = {_fork(number, serve_one): number for number in range(1, count + 1)}
    port.close()  # the children hold it; this process accepts nothing
    stopping = False

    def stop(signum: int, _frame: Any = None) -> None:
        nonlocal stopping
        if not stopping:
            log.info("received %s, stopping %d gateway process(es)",
                     signal.Signals(signum).name, len(children))
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    for signum in STOP_SIGNALS:
        signal.signal(signum, stop)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    code = 0
    while children:
        pid, status = _blocking_waitpid(-1, 0)
        number = children.pop(pid)
        metrics.process_ended(pid)
        ended = os.waitstatus_to_exitcode(status)
        if not stopping:
            log.error("gateway process %d (pid %d) ended by itself (exit %d): stopping the rest",
                      number, pid, ended)
            code = 1
            stop(signal.SIGTERM)
        elif ended != 0:
            log.error("gateway process %d (pid %d) stopped with exit %d", number, pid, ended)
            code = 1
    log.info("every gateway process stopped")
    return code


def _fork(number: int, serve_one: Callable[[int], int]) -> int:
    """Start process `number`, running `serve_one(number)`; its pid. It ends when we do."""
    parent = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() == parent:  # else the parent died before prctl
            eventlet.hubs.use_hub()  # an event hub (epoll) of its own, not a copy of the parent's
            code = serve_one(number)
    except BaseException:
        log.exception("gateway process %d failed", number)
    finally:
        logging.shutdown()
        os._exit(code)


def _port_listener(settings: Settings) -> Any:
    """The listener on the API port, one for all the gateway's processes (without
    SO_REUSEPORT: no other process can join the port; gateway/balance.py spreads its
    connections). TCP_NODELAY (inherited by every accepted connection): a response goes out in
    several writes (status and headers, then the body), and with Nagle's algorithm the body
    waited for the client's delayed ACK of the headers — 40 ms on every request of a
    keep-alive connection but its first."""
    listener = eventlet.listen((settings.api_host, settings.api_port))
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return listener


def _hold_socket_lock(path: Path) -> None:
    """Take `<socket>.lock` (flock) for as long as this gateway and its forked processes live,
    or raise OSError when another gateway holds it: one gateway per run dir, so a second one
    never takes the socket over from the first (whose sandboxes would lose the API)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise
    # Kept open (not inheritable by exec'd children; forked gateway processes share it).


def _socket_listener(path: Path) -> Any:
    """The unix socket sandboxed actions reach the API through (bound into each sandbox):
    a stale one (its gateway gone: we hold the lock) is replaced; anyone may connect, as anyone
    may reach the TCP port."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    listener = eventlet.listen(str(path), family=socket.AF_UNIX)
    path.chmod(0o666)
    return listener


def _shutdown(servers: list[Any], runner: ServiceRunner, gateway: Any) -> None:
    for server in servers:
        server.kill()  # stop accepting; the wsgi loop now waits for requests in flight
    released = gateway.waiters.release_all()  # they answer now with what they have (202)
    log.info("released %d waiting request(s)", released)
    closed = gateway.notifications.close_all(1001, "server shutting down")
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
    gateway.rpc.close()
    gateway.dispose()
    tracing.shutdown()  # the spans still pending leave now
    log.info("gateway stopped")


if __name__ == "__main__":
    sys.exit(main())
