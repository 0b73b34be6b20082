"""NotificationHub: fans notifier broadcasts out to this process's WebSocket clients.

Strictly tenant-scoped (a client only sees messages of its token's tenant) and never blocking:
each client has a bounded outbox drained by its own pump; when a slow client's outbox is full,
messages are dropped and counted, and the client later gets one notice saying how many.

Plain `threading` primitives: in the gateway (monkey-patched) they are green; the hub itself
knows nothing about WebSockets, only `send(text)` and `close(code, reason)` callables.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from nameko_services import metrics

log = logging.getLogger(__name__)

ENTITY_TYPES = frozenset({"execution", "inquiry", "rule", "event", "pack"})
# Sent only to clients subscribed to the entity by its id, not to every subscriber of its type:
# a running action's lines are for whoever watches that execution, not for every live feed.
BY_ID_ONLY = frozenset({"execution.output"})
DEFAULT_MAX_QUEUE = 1000
GOING_AWAY = 1001


def encode(message: Mapping[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), default=str)


class Client:
    """One connection: its tenant, its subscriptions and a bounded outbox with a pump."""

    def __init__(
        self,
        tenant_id: int,
        send: Callable[[str], Any],
        close: Callable[[int, str], Any] | None = None,
        *,
        max_queue: int = DEFAULT_MAX_QUEUE,
        user_id: int | None = None,
    ) -> None:
        self.tenant_id = int(tenant_id)
        self.user_id = user_id
        self.max_queue = max_queue
        self.subscriptions: set[tuple[str, int | None]] = set()
        self.dropped_total = 0
        self._send, self._close = send, close
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._outbox: deque[str] = deque()
        self._replies: deque[str] = deque()
        self._dropped = 0
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def subscribe(self, entity_type: str, entity_id: int | None = None) -> None:
        self.subscriptions.add((entity_type, entity_id))

    def unsubscribe(self, entity_type: str | None = None, entity_id: int | None = None) -> None:
        """Without a type: everything; without an id: every subscription of that type."""
        if entity_type is None:
            self.subscriptions.clear()
        elif entity_id is None:
            self.subscriptions = {s for s in self.subscriptions if s[0] != entity_type}
        else:
            self.subscriptions.discard((entity_type, entity_id))

    def wants(self, message: Mapping[str, Any]) -> bool:
        entity_type = message.get("entity_type")
        if (entity_type, message.get("entity_id")) in self.subscriptions:
            return True
        return (entity_type, None) in self.subscriptions and message.get("event") not in BY_ID_ONLY

    def offer(self, text: str) -> bool:
        """Queue a notification without ever blocking; False (and counted) when full."""
        with self._lock:
            if self._closed:
                return False
            if len(self._outbox) >= self.max_queue:
                self._dropped += 1
                self.dropped_total += 1
                metrics.WS_DROPPED.inc()
                return False
            self._outbox.append(text)
        self._wake.set()
        return True

    def reply(self, message: Mapping[str, Any]) -> None:
        """Answer a client command (pong, error); replies are never dropped."""
        with self._lock:
            if self._closed:
                return
            self._replies.append(encode(message))
        self._wake.set()

    def _next(self) -> str | None:
        with self._lock:
            if self._replies:
                return self._replies.popleft()
            if self._outbox:
                return self._outbox.popleft()
            if self._dropped:
                notice = {"event": "notice", "message": f"dropped {self._dropped} messages"}
                self._dropped = 0
                return encode(notice)
            return None

    def pump(self) -> None:
        """Send queued text until closed; run it in its own (green) thread per client."""
        while not self._closed:
            self._wake.wait()
            self._wake.clear()
            while not self._closed:
                text = self._next()
                if text is None:
                    break
                try:
                    self._send(text)
                except Exception as exc:  # the connection is gone; the view cleans up
                    # A client leaving mid-send (a console changing page: 1001) is routine:
                    # its reason, not a traceback (e2e runs fail on any traceback in a log).
                    log.debug("websocket send failed (%s: %s); closing client",
                              type(exc).__name__, exc)
                    self.close()
                    return

    def close(self, code: int | None = None, reason: str = "") -> None:
        """Stop the pump; with a code, also close the connection (e.g. 1001 at shutdown)."""
        with self._lock:
            already = self._closed
            self._closed = True
            self._outbox.clear()
        self._wake.set()
        if code is not None and not already and self._close is not None:
            try:
                self._close(code, reason)
            except Exception:
                log.debug("websocket close failed", exc_info=True)


class NotificationHub:
    """Every connected client of this process, indexed by tenant. `on_arrival(tenant_id)` is
    told of each client registered (presence.Presence.arrived: its tenant's news is wanted)."""

    def __init__(self, max_queue: int = DEFAULT_MAX_QUEUE,
                 on_arrival: Callable[[int], None] | None = None) -> None:
        self.max_queue = max_queue
        self._on_arrival = on_arrival
        self._lock = threading.Lock()
        self._by_tenant: dict[int, set[Client]] = {}

    def client(self, tenant_id: int, send: Callable[[str], Any],
               close: Callable[[int, str], Any] | None = None, **kwargs: Any) -> Client:
        """Create and register a client with this hub's queue bound."""
        client = Client(tenant_id, send, close, max_queue=self.max_queue, **kwargs)
        self.register(client)
        return client

    def register(self, client: Client) -> None:
        with self._lock:
            clients = self._by_tenant.setdefault(client.tenant_id, set())
            if client not in clients:
                clients.add(client)
                metrics.WS_CLIENTS.inc()
        if self._on_arrival is not None:
            self._on_arrival(client.tenant_id)

    def unregister(self, client: Client) -> None:
        with self._lock:
            clients = self._by_tenant.get(client.tenant_id)
            if clients is not None and client in clients:
                clients.discard(client)
                metrics.WS_CLIENTS.dec()
                if not clients:
                    del self._by_tenant[client.tenant_id]

    def tenants(self) -> set[int]:
        """The tenants with a client here."""
        with self._lock:
            return set(self._by_tenant)

    def clients(self) -> list[Client]:
        with self._lock:
            return [c for group in self._by_tenant.values() for c in group]

    def publish(self, tenant_id: Any, message: Mapping[str, Any] | None) -> int:
        """Offer `message` to the tenant's subscribed clients; returns how many accepted it."""
        if tenant_id is None or not isinstance(message, Mapping):
            return 0
        try:
            tenant = int(tenant_id)
        except (TypeError, ValueError):
            return 0
        with self._lock:
            targets = [c for c in self._by_tenant.get(tenant, ()) if c.wants(message)]
        if not targets:
            return 0
        text = encode(message)  # serialised once, whatever the fan-out
        return sum(1 for client in targets if client.offer(text))

    def close_all(self, code: int = GOING_AWAY, reason: str = "server shutting down") -> int:
        """Close every connection (shutdown); returns how many there were."""
        clients = self.clients()
        for client in clients:
            client.close(code, reason)
        return len(clients)
