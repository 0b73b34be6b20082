"""GET /ws: the WebSocket notification feed (api.md "Notifications (WebSocket)")."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
from typing import Any

from flask import Blueprint, request
from flask_sock import Sock
from simple_websocket import ConnectionClosed

from nameko_services.domain.auth import Principal
from nameko_services.domain.errors import UnauthorizedError

from ..app import ctx
from ..auth import API_KEY_HEADER, PUBLIC, bearer_token, permission, principal_of
from ..notifications import ENTITY_TYPES, Client, NotificationHub

log = logging.getLogger(__name__)

bp = Blueprint("ws", __name__)
sock = Sock()

AUTH_TIMEOUT_SECONDS = 5.0
UNAUTHORIZED = 4401
RECEIVE_POLL_SECONDS = 5.0  # only to notice a hub-side close; frames wake us at once
CLOSE_GRACE_SECONDS = 2.0  # how long a peer gets to answer our close frame


def _setup(state: Any) -> None:
    """Give the app its hub (serve.py's relay feeds it) and sane socket options."""
    gateway = state.app.extensions["attune"]
    if gateway.notifications is None:
        gateway.notifications = NotificationHub(on_arrival=gateway.presence.arrived)
    state.app.config.setdefault(
        "SOCK_SERVER_OPTIONS", {"ping_interval": 25, "max_message_size": 64 * 1024}
    )


bp.record_once(_setup)


class _SendallSocket:
    """stack-notes P8: simple-websocket 1.1.0 ignores short writes, corrupting frames ≥ ~1 kB.

    Every write goes through `sendall` under a lock, so frames are whole and never interleaved.
    """

    def __init__(self, raw: Any) -> None:
        self._sock = raw
        self._lock = threading.Lock()

    def send(self, data: bytes, *flags: Any) -> int:
        with self._lock:
            self._sock.sendall(data, *flags)
        return len(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def fix_short_writes(ws: Any) -> Any:
    """Apply the P8 fix to a simple_websocket connection (idempotent)."""
    if not isinstance(ws.sock, _SendallSocket):
        ws.sock = _SendallSocket(ws.sock)
    return ws


@sock.route("/ws", bp=bp)
@permission(PUBLIC)  # authenticates itself: Bearer header on the upgrade or a first auth message
def notifications_feed(ws: Any) -> None:
    """WebSocket feed of the caller's tenant: subscribe to executions, inquiries, rules, events."""
    fix_short_writes(ws)
    try:
        _serve(ws)
    finally:
        finish(ws)


def _serve(ws: Any) -> None:
    principal = _authenticate(ws)
    if principal is None:
        ws.close(UNAUTHORIZED, "Unauthorized")
        return
    hub: NotificationHub = ctx().notifications
    client = hub.client(principal.tenant_id, ws.send, ws.close, user_id=principal.user_id)
    pump = threading.Thread(target=client.pump, name=f"ws-pump-{principal.user_id}", daemon=True)
    pump.start()
    try:
        while not client.closed and ws.connected:
            raw = ws.receive(timeout=RECEIVE_POLL_SECONDS)
            if raw is not None:
                reply = handle_command(client, raw)
                if reply is not None:
                    client.reply(reply)
    finally:
        hub.unregister(client)
        client.close()


def finish(ws: Any, grace: float = CLOSE_GRACE_SECONDS) -> None:
    """Close the connection and wait until simple-websocket's reader thread has ended.

    eventlet keeps a reader's listener on the fd number after the server closes the socket; a
    database connection that reuses the number then fails ("Second simultaneous read"). A peer
    that does not answer our close frame within `grace` has its socket shut down under it.
    """
    with contextlib.suppress(ConnectionClosed, OSError):  # closed already, by us or the peer
        ws.close()
    ws.thread.join(grace)
    if ws.thread.is_alive():
        with contextlib.suppress(OSError):
            ws.sock.shutdown(socket.SHUT_RDWR)  # wakes the reader with end-of-file
        ws.thread.join(grace)


def _verify(token: Any) -> Principal | None:
    if not isinstance(token, str) or not token:
        return None
    try:
        return principal_of(token)
    except UnauthorizedError:
        return None


def _authenticate(ws: Any) -> Principal | None:
    """The upgrade's Bearer token, else a first {"action": "auth", "token"} within 5 s."""
    header = request.headers.get(API_KEY_HEADER) or bearer_token()
    if header is not None:
        return _verify(header)
    raw = ws.receive(timeout=AUTH_TIMEOUT_SECONDS)
    if raw is None:
        return None
    command = _parse(raw)
    if not isinstance(command, dict) or command.get("action") != "auth":
        return None
    return _verify(command.get("token"))


def _parse(raw: Any) -> Any:
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        return None


def _error(text: str) -> dict[str, Any]:
    return {"event": "error", "message": text}


def handle_command(client: Client, raw: Any) -> dict[str, Any] | None:
    """Apply one client message; returns the reply to send, if any."""
    command = _parse(raw)
    if not isinstance(command, dict):
        return _error("Messages must be JSON objects")
    action = command.get("action")
    if action == "ping":
        return {"event": "pong"}
    if action == "auth":
        return None  # already authenticated; a repeat is harmless
    if action not in ("subscribe", "unsubscribe"):
        return _error(f"Unknown action {action!r}: use subscribe, unsubscribe or ping")
    entity_type = command.get("entity_type")
    entity_id = command.get("entity_id")
    unknown = sorted(set(command) - {"action", "entity_type", "entity_id"})
    if unknown:
        return _error(f"Unknown field(s): {', '.join(unknown)}")
    if entity_id is not None and (not isinstance(entity_id, int) or isinstance(entity_id, bool)):
        return _error("entity_id must be an integer")
    if action == "unsubscribe" and entity_type is None and entity_id is None:
        client.unsubscribe()
        return None
    if entity_type not in ENTITY_TYPES:
        return _error(f"entity_type must be one of: {', '.join(sorted(ENTITY_TYPES))}")
    if action == "subscribe":
        client.subscribe(entity_type, entity_id)
    else:
        client.unsubscribe(entity_type, entity_id)
    return None
