"""The eventlet edge: pooled RPC proxies and an event publisher usable outside nameko services.

Everything eventlet-specific that the gateway and CLI need lives here (stack-notes P3/P4/P5).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import eventlet
import eventlet.queue
import eventlet.tpool
from kombu import Exchange
from nameko.amqp.publish import Publisher as AmqpPublisher
from nameko.constants import AMQP_SSL_CONFIG_KEY, AMQP_URI_CONFIG_KEY, NON_PERSISTENT, PERSISTENT
from nameko.events import get_event_exchange
from nameko.serialization import setup as setup_serialization
from nameko.standalone.rpc import ClusterRpcProxy

from . import metrics
from .domain import backlog, executions, messages


def in_os_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """The gateway's Offload (domain/auth.py): run CPU-bound `fn` (argon2) in eventlet's pool of
    real OS threads (EVENTLET_THREADPOOL_SIZE, default 20) so the hub serves others meanwhile."""
    return eventlet.tpool.execute(fn, *args)


class RpcPool:
    """Started ClusterRpcProxy objects, one per concurrent user; broken ones are replaced."""

    def __init__(self, config: dict[str, Any], size: int = 20, timeout: float = 5.0) -> None:
        self.config, self.size, self.timeout = config, size, timeout
        self.made = 0
        self.free: eventlet.queue.LightQueue = eventlet.queue.LightQueue()

    @contextlib.contextmanager
    def get(self) -> Iterator[Any]:
        if self.free.qsize() == 0 and self.made < self.size:
            self.made += 1
            try:
                proxy = ClusterRpcProxy(self.config, timeout=self.timeout)
                self.free.put((proxy, proxy.start()))
            except Exception:
                self.made -= 1
                raise
        proxy, rpc = self.free.get()
        ok = False
        try:
            yield rpc
            ok = True
        finally:
            if ok:
                self.free.put((proxy, rpc))
            else:
                with contextlib.suppress(Exception):
                    proxy.stop()
                self.made -= 1

    def close(self) -> None:
        while self.free.qsize():
            proxy, _ = self.free.get()
            with contextlib.suppress(Exception):
                proxy.stop()
        self.made = 0


class Publisher:
    """Publish nameko events (with publisher confirms) from any process, to any source exchange.

    The exchange is declared on publish (kombu caches it), so publishing before any consumer
    exists cannot fail with "404 no exchange". A work message (messages.PRIORITISED) carries
    its tenant's priority from this process's backlog counts (domain/backlog.py). With
    `listening` (domain/presence.py), a tenant's live news nobody listens to is not sent.
    """

    def __init__(self, config: dict[str, Any],
                 listening: Callable[[Any], bool] | None = None) -> None:
        serializer, _ = setup_serialization(config)
        self._config = config
        self._backlog = backlog.from_config(config)
        self._publisher = AmqpPublisher(
            config[AMQP_URI_CONFIG_KEY], serializer=serializer, ssl=config.get(AMQP_SSL_CONFIG_KEY)
        )
        self._exchanges: dict[str, Exchange] = {}  # made once per source: ~7 % of a publish
        self._listening = listening

    def __call__(self, source_service: str, event_type: str, payload: dict[str, Any]) -> None:
        """Publish; a status change the executor acts on also goes to EXECUTION_FOLLOW_UP
        (decided here, so no publishing service can forget it, and in the same publish: the
        broker copies it to that routing key too, by RabbitMQ's `CC` header). Work messages get
        their tenant's priority here too, for the same reason, and a tenant's live news that
        nobody listens to is dropped here."""
        follow_up = ((event_type == messages.EXECUTION_STATUS_CHANGED
                      and executions.needs_follow_up(payload))
                     or (event_type == messages.EXECUTION_CREATED and "events" in payload))
        transient = event_type in messages.NEWS_ONLY and not follow_up
        if (transient and self._listening is not None and "tenant_id" in payload
                and not self._listening(payload["tenant_id"])):
            metrics.NEWS_UNWATCHED.labels(event_type).inc()
            return
        exchange = self._exchanges.get(source_service)
        if exchange is None:
            exchange = self._exchanges[source_service] = get_event_exchange(source_service,
                                                                            self._config)
        priority = (self._backlog.priority(payload["tenant_id"])
                    if self._backlog is not None and event_type in messages.PRIORITISED
                    else None)
        self._publisher.publish(
            payload, exchange=exchange, routing_key=event_type, declare=[exchange],
            headers={"CC": [messages.EXECUTION_FOLLOW_UP]} if follow_up else {},
            priority=priority, delivery_mode=NON_PERSISTENT if transient else PERSISTENT,
        )
